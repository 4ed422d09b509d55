/**
 * Tiny GPT-2 + LoRA setups shared by the model tests: random weights (std 0.2, so every term matters),
 * LoRA factors with non-zero B, a model spec, the float64 reference built from the same host values,
 * and a helper that runs a test body on the cpu, wasm and webgpu backends (webgpu: any adapter Dawn offers, here
 * Mesa's llvmpipe; skipped with a message where it offers none).
 */
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { type GPT2Config, GPT2_DEFAULTS } from '../../../trainer/models/gpt2/config';
import { randomGPT2Weights, TINY_CONFIG } from '../../../trainer/models/gpt2/random_init';
import type { Task } from '../../../trainer/task';
import type { AdapterConfigJson, AdapterWeights } from '../../../trainer/lora/types';
import type { LoraTarget } from '../../../trainer/protocol';
import type { HostTensor } from '../../../trainer/io/safetensors';
import { initialLoraFactors } from '../../../trainer/lora/layer';
import type { ModelSpec } from '../../../trainer/models/family';
import { initBackend } from '../../../trainer/backend';
import { webgpuSkipReason } from './webgpu_probe';
import { Rng } from '../../../trainer/util/rng';
import { refModel, type RefModel } from '../../reference/gpt2_f64';
import type { Batch } from '../../../trainer/data/collate';

export const BACKENDS = ['cpu', 'wasm', 'webgpu'] as const;

let ready: Promise<void> | null = null;
/** Initializes both backends once per process. */
export function initBothBackends(): Promise<void> {
  ready ??= (async () => {
    await initBackend('wasm');
    await initBackend('cpu');
  })();
  return ready;
}

let webgpuReady: Promise<unknown> | null = null;

export async function useBackend(name: string): Promise<void> {
  await initBothBackends();
  // webgpu, forced (so llvmpipe is taken), started once per process
  if (name === 'webgpu') await (webgpuReady ??= initBackend('webgpu'));
  if (!(await tf.setBackend(name))) throw new Error(`cannot switch to ${name}`);
}

/**
 * Inside a describe: one nested describe per backend, each switching to it first (each is set up once). Read
 * values with the async data()/array(): webgpu has no synchronous read in Node.
 */
export function onEachBackend(body: (backend: (typeof BACKENDS)[number]) => void): void {
  before(initBothBackends);
  for (const backend of BACKENDS) {
    describe(backend, async () => {
      const skip = backend === 'webgpu' && (await webgpuSkipReason());
      if (skip) {
        it(skip, { skip }, () => {});
        return;
      }
      before(() => useBackend(backend));
      body(backend);
    });
  }
}

export const PAD = 256;

export function tinyConfig(over: Partial<GPT2Config> = {}): GPT2Config {
  return { model_type: 'gpt2', ...GPT2_DEFAULTS, ...TINY_CONFIG, n_embd: 16, n_head: 2, n_layer: 2, n_positions: 32, ...over } as GPT2Config;
}

export interface TinySetup {
  config: GPT2Config;
  task: Task;
  num_labels: number;
  weights: Map<string, HostTensor>;
  targets: LoraTarget[];
  adapter: AdapterWeights;
}

/** LoRA on every Conv1D kind (different r and scaling per kind), plus lm_head when `headLora`. */
export function tinyTargets(config: GPT2Config, task: Task, numLabels: number, headLora = false): LoraTarget[] {
  const C = config.n_embd;
  const I = config.n_inner ?? 4 * C;
  const out: LoraTarget[] = [];
  const add = (name: string, inF: number, outF: number, r: number, alpha: number) =>
    out.push({ name, type: name === 'lm_head' || name === 'score' ? 'Linear' : 'Conv1D', in_features: inF, out_features: outF, r, lora_alpha: alpha, scaling: alpha / r });
  for (let i = 0; i < config.n_layer; i++) {
    const h = `transformer.h.${i}.`;
    add(`${h}attn.c_attn`, C, 3 * C, 4, 8);
    add(`${h}attn.c_proj`, C, C, 2, 2);
    add(`${h}mlp.c_fc`, C, I, 3, 6);
    add(`${h}mlp.c_proj`, I, C, 2, 1);
  }
  if (headLora && task === 'causal-lm') add('lm_head', C, config.vocab_size, 2, 4);
  if (headLora && task === 'seq-cls') add('score', C, numLabels, 2, 4);
  return out;
}

export function adapterConfig(task: Task): AdapterConfigJson {
  return {
    peft_type: 'LORA', task_type: task === 'seq-cls' ? 'SEQ_CLS' : 'CAUSAL_LM', base_model_name_or_path: null, r: 4, lora_alpha: 8,
    lora_dropout: 0, target_modules: ['c_attn', 'c_proj', 'c_fc'], modules_to_save: task === 'seq-cls' ? ['score'] : null, bias: 'none',
    use_rslora: false, fan_in_fan_out: true, init_lora_weights: false, rank_pattern: {}, alpha_pattern: {}, inference_mode: false,
  };
}

export function tinySetup(task: Task, opts: { config?: Partial<GPT2Config>; num_labels?: number; seed?: number; headLora?: boolean } = {}): TinySetup {
  const config = tinyConfig(opts.config);
  const num_labels = opts.num_labels ?? 3;
  const weights = randomGPT2Weights(config, task, num_labels, opts.seed ?? 1, 0.2, 'F32');
  const targets = tinyTargets(config, task, num_labels, opts.headLora);
  const rng = new Rng((opts.seed ?? 1) + 100);
  const lora = new Map<string, { A: HostTensor; B: HostTensor }>();
  for (const t of targets) lora.set(t.name, initialLoraFactors(t.in_features, t.out_features, t.r, false, rng));
  return { config, task, num_labels, weights, targets, adapter: { config: adapterConfig(task), lora, extra: new Map() } };
}

export function specOf(s: TinySetup, over: Partial<ModelSpec> = {}): ModelSpec {
  return {
    config: s.config, task: s.task, num_labels: s.num_labels, weights: s.weights, targets: s.targets,
    modules_to_save: s.task === 'seq-cls' ? ['score'] : [], bias: 'none', lora_dropout: 0, init_lora_weights: false, seed: 7,
    adapter: s.adapter, pad_token_id: PAD, ...over,
  };
}

/** The float64 reference of a setup, with LoRA factors from `adapter` (default: the setup's own). */
export function refOf(s: TinySetup, adapter: AdapterWeights = s.adapter, weights: Map<string, HostTensor> = s.weights): RefModel {
  const lora = new Map<string, { A: HostTensor; B: HostTensor; scaling: number }>();
  for (const t of s.targets) lora.set(t.name, { ...adapter.lora.get(t.name)!, scaling: t.scaling });
  const w = new Map(weights);
  for (const [k, v] of adapter.extra) w.set(k, v);
  return refModel(s.config, s.task, s.num_labels, w, lora);
}

/** Uneven rows of token ids (never the pad id), seeded. */
export function randomRows(lengths: number[], seed: number, vocab = 256): number[][] {
  const rng = new Rng(seed);
  return lengths.map((n) => Array.from({ length: n }, () => rng.int(vocab)));
}

/** max |a − b| / max(1, max |b|) */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let diff = 0;
  let scale = 1;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

export async function lossOf(model: { loss(b: Batch, o: { training: boolean; seed?: number }): tf.Scalar }, batch: Batch, opts: { training: boolean; seed?: number } = { training: false }): Promise<number> {
  const l = model.loss(batch, opts);
  const v = (await l.data())[0];
  l.dispose();
  return v;
}
