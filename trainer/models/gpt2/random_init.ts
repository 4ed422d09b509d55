/**
 * Builds a GPT-2 model folder in Hugging Face format with random weights: config.json,
 * model.safetensors (or shards with model.safetensors.index.json) and tokenizer.json.
 * Tests use it for tiny models, and the demo uses it for its built-in base model.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type GPT2Config, GPT2_DEFAULTS } from './config';
import { gpt2WeightShapes, PREFIX } from './weights';
import type { Task } from '../../task';
import { type FloatDType, type HostTensor, writeSafetensors } from '../../io/safetensors';
import { writeJsonAtomic } from '../../io/atomic';
import { Rng } from '../../util/rng';
import { byteLevelTokenizerJson } from '../../tokenizer/byte_level';
import { intLabelMaps } from '../../data/labels';

export interface RandomModelOptions {
  config?: Partial<GPT2Config>;
  task?: Task;
  num_labels?: number;
  seed?: number;
  /** 'prefixed' writes `transformer.h.0…` (transformers' layout); 'bare' writes `h.0…` (the original gpt2 checkpoint). */
  layout?: 'prefixed' | 'bare';
  dtype?: FloatDType;
  /** split the weights over this many shards, with model.safetensors.index.json */
  shards?: number;
  /** also write the `attn.bias` causal-mask buffers that old checkpoints carry */
  withAttnBias?: boolean;
  /** std of the normal init (GPT-2 uses 0.02); LayerNorms get 1 ± std and biases ± std, so tests see every term */
  std?: number;
  /** write this tokenizer.json instead of the 257-token byte-level one */
  tokenizerJson?: object;
}

/** A tiny config that the byte-level tokenizer fits (vocab 257). */
export const TINY_CONFIG: Partial<GPT2Config> = {
  vocab_size: 257, n_positions: 64, n_embd: 32, n_layer: 2, n_head: 4, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0,
  bos_token_id: 256, eos_token_id: 256,
};

export function randomGPT2Weights(config: GPT2Config, task: Task, numLabels: number, seed: number, std: number, dtype: FloatDType): Map<string, HostTensor> {
  const rng = new Rng(seed);
  const out = new Map<string, HostTensor>();
  const shapes = gpt2WeightShapes(config, task, numLabels);
  // one buffer with a view per tensor, as a safetensors file is read (not one allocation per tensor)
  const buffer = new Float32Array([...shapes.values()].reduce((n, shape) => n + shape.reduce((a, b) => a * b, 1), 0));
  let offset = 0;
  for (const [key, shape] of shapes) {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = buffer.subarray(offset, offset + size);
    offset += size;
    const isLn = /ln_[12f]\.weight$/.test(key);
    for (let i = 0; i < data.length; i++) data[i] = (isLn ? 1 : 0) + std * rng.normal();
    out.set(key, { shape, data, dtype });
  }
  return out;
}

export function writeRandomGPT2(dir: string, opts: RandomModelOptions = {}): GPT2Config {
  const task = opts.task ?? 'causal-lm';
  const numLabels = opts.num_labels ?? 2;
  const config: GPT2Config = {
    model_type: 'gpt2',
    ...GPT2_DEFAULTS,
    ...TINY_CONFIG,
    ...opts.config,
    architectures: [task === 'seq-cls' ? 'GPT2ForSequenceClassification' : 'GPT2LMHeadModel'],
  } as GPT2Config;
  if (task === 'seq-cls') {
    config.num_labels = numLabels;
    Object.assign(config, intLabelMaps(numLabels - 1, numLabels));
    config.pad_token_id = config.eos_token_id;
  }
  const weights = randomGPT2Weights(config, task, numLabels, opts.seed ?? 0, opts.std ?? 0.02, opts.dtype ?? 'F32');
  const named = new Map<string, HostTensor>();
  for (const [k, t] of weights) named.set(opts.layout === 'bare' && k.startsWith(PREFIX) ? k.slice(PREFIX.length) : k, t);
  if (opts.withAttnBias) {
    const P = config.n_positions;
    const mask = new Float32Array(P * P);
    for (let i = 0; i < P; i++) for (let j = 0; j <= i; j++) mask[i * P + j] = 1;
    for (let i = 0; i < config.n_layer; i++) {
      const p = opts.layout === 'bare' ? '' : PREFIX;
      named.set(`${p}h.${i}.attn.bias`, { shape: [1, 1, P, P], data: mask, dtype: opts.dtype ?? 'F32' });
    }
  }
  fs.mkdirSync(dir, { recursive: true });
  writeJsonAtomic(path.join(dir, 'config.json'), config);
  writeJsonAtomic(path.join(dir, 'tokenizer.json'), opts.tokenizerJson ?? byteLevelTokenizerJson());
  const shards = opts.shards ?? 1;
  if (shards <= 1) {
    writeSafetensors(path.join(dir, 'model.safetensors'), named, { format: 'pt' });
  } else {
    const keys = [...named.keys()];
    const per = Math.ceil(keys.length / shards);
    const weight_map: Record<string, string> = {};
    let total = 0;
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = new Map(keys.slice(s * per, (s + 1) * per).map((k) => [k, named.get(k)!]));
      for (const [k, t] of part) {
        weight_map[k] = file;
        total += t.data.length * (t.dtype === 'F32' ? 4 : 2);
      }
      writeSafetensors(path.join(dir, file), part, { format: 'pt' });
    }
    writeJsonAtomic(path.join(dir, 'model.safetensors.index.json'), { metadata: { total_size: total }, weight_map });
  }
  return config;
}
