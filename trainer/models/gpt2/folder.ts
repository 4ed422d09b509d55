/**
 * GPT-2's Hugging Face model folders, both directions: loads config.json plus the weight files (io/hf_folder.ts
 * reads them) into canonical, checked F32 host tensors, and writes a complete new folder (config, weights in the
 * input's key layout and dtypes, tokenizer files) without ever touching the source.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoraStudioError, closestNames, preview } from '../../errors';
import { type GPT2Config, checkModelSize, configNumLabels, readConfig } from './config';
import { IGNORED_BUFFER, PREFIX, gpt2WeightShapes } from './weights';
import type { Task } from '../../task';
import type { LoadedModel as FamilyLoadedModel, LoadModelOptions } from '../family';
import { intLabelMaps } from '../../data/labels';
import type { HostTensor } from '../../io/safetensors';
import { initLinearHead, sameValues } from '../head_init';
import { assertNewOutDir, decodeRaw, readRawTensors, TOKENIZER_FILES, WEIGHTS_FILE, WEIGHTS_INDEX_FILE, writeHfFolder } from '../../io/hf_folder';

/** GPT-2's loaded folder: the family-wide shape with GPT-2's config and key layouts. */
export interface LoadedModel extends FamilyLoadedModel {
  config: GPT2Config;
  /** canonical keys of gpt2WeightShapes (`transformer.` prefix; `score.weight` bare), values in F32, dtype as stored */
  weights: Map<string, HostTensor>;
  /** whether the input's keys carried `transformer.` (transformers' layout) or not (the original gpt2 checkpoint) */
  layout: 'prefixed' | 'bare';
}

const SEQ_CLS_ARCH = 'GPT2ForSequenceClassification';

/** The task a config was saved for: GPT2ForSequenceClassification → seq-cls, anything else → causal-lm. */
export function taskFromConfig(config: GPT2Config): Task {
  return Array.isArray(config.architectures) && config.architectures.includes(SEQ_CLS_ARCH) ? 'seq-cls' : 'causal-lm';
}

export function loadModelFolder(dir: string, opts: LoadModelOptions = {}): LoadedModel {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new LoraStudioError('not a folder: a Hugging Face model folder was expected', dir);
  const config = readConfig(dir);
  const task = opts.task ?? taskFromConfig(config);
  const num_labels = task === 'seq-cls' ? (opts.num_labels ?? configNumLabels(config)) : configNumLabels(config);
  if (!Number.isInteger(num_labels) || num_labels < 1) {
    throw new LoraStudioError(`num_labels must be a positive integer, got ${preview(num_labels)}`, path.join(dir, 'config.json'), 'num_labels');
  }
  // The head is part of the size bound: a newly initialised score.weight is num_labels × n_embd.
  checkModelSize(config, task === 'seq-cls' ? num_labels : 0, path.join(dir, 'config.json'));
  const warnings: string[] = [];
  const raw = readRawTensors(dir);
  const expected = gpt2WeightShapes(config, task, num_labels);
  const weights = new Map<string, HostTensor>();
  let prefixed = 0;
  let bare = 0;
  const unexpected: string[] = [];
  let lmHead: { key: string; file: string; t: HostTensor } | undefined;
  let droppedScore = false;

  for (const [key, file] of raw.where) {
    if (IGNORED_BUFFER.test(key)) continue;
    if (key === 'lm_head.weight') {
      const want = [config.vocab_size, config.n_embd];
      const shape = raw.files.get(file)!.entries.get(key)!.shape;
      if (!sameShape(shape, want)) {
        throw new LoraStudioError(`shape ${preview(shape)} does not match wte ${JSON.stringify(want)}, to which GPT-2 ties it`, file, key);
      }
      lmHead = { key, file, t: decodeRaw(raw, key) };
      continue;
    }
    if (key === 'score.weight' && task === 'causal-lm') {
      droppedScore = true;
      continue;
    }
    let canonical: string;
    if (key === 'score.weight') canonical = key;
    else if (key.startsWith(PREFIX) && expected.has(key)) { canonical = key; prefixed++; }
    else if (expected.has(PREFIX + key)) { canonical = PREFIX + key; bare++; }
    else { unexpected.push(key); continue; }
    if (weights.has(canonical)) throw new LoraStudioError(`holds ${canonical} twice (with and without the "${PREFIX}" prefix)`, file, key);
    const shape = expected.get(canonical)!;
    const entry = raw.files.get(file)!.entries.get(key)!;
    if (!sameShape(entry.shape, shape)) {
      const hint = canonical === 'score.weight' ? ` (a head for ${entry.shape[0]} labels, but num_labels is ${num_labels})` : '';
      throw new LoraStudioError(`shape ${preview(entry.shape)} does not fit this config, which needs ${JSON.stringify(shape)}${hint}`, file, key);
    }
    weights.set(canonical, decodeRaw(raw, key));
  }
  const layout: LoadedModel['layout'] = prefixed >= bare ? 'prefixed' : 'bare';
  const mainFile = raw.sharded ? path.join(dir, WEIGHTS_INDEX_FILE) : path.join(dir, WEIGHTS_FILE);

  if (unexpected.length) {
    const shown = unexpected.slice(0, 5).join(', ') + (unexpected.length > 5 ? `, … (${unexpected.length} in all)` : '');
    throw new LoraStudioError(
      `holds tensors that a GPT-2 model does not have: ${shown}. Is this a model of another architecture?`,
      raw.where.get(unexpected[0]) ?? mainFile,
      unexpected[0],
    );
  }
  for (const [key, shape] of expected) {
    if (weights.has(key)) continue;
    if (key === 'score.weight') {
      weights.set(key, initLinearHead(shape, config.initializer_range, opts.seed ?? 42, weights.get(`${PREFIX}wte.weight`)?.dtype ?? 'F32'));
      warnings.push(`Some weights of ${SEQ_CLS_ARCH} were not initialized from the model checkpoint at ${dir} and are newly initialized: ['score.weight']. Train them before using the model for predictions.`);
      continue;
    }
    const asStored = layout === 'bare' ? key.slice(PREFIX.length) : key;
    throw new LoraStudioError(`missing tensor ${asStored}, which a GPT-2 model with this config needs`, mainFile, asStored);
  }
  if (lmHead) {
    const wte = weights.get(`${PREFIX}wte.weight`)!.data;
    if (!sameValues(wte, lmHead.t.data)) warnings.push(`lm_head.weight differs from wte.weight; GPT-2 ties them, so wte.weight is used for both`);
  }
  if (droppedScore) warnings.push(`Some weights of the model checkpoint at ${dir} were not used when loading it for causal-lm: ['score.weight']`);
  const tokenizerFiles = TOKENIZER_FILES.filter((f) => fs.existsSync(path.join(dir, f)));
  return { dir, config, task, num_labels, weights, layout, sharded: raw.sharded, tokenizerFiles, warnings };
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Writes a complete Hugging Face folder into the NEW directory `outDir` (built under a temporary name, then
 * renamed): config.json as in `src.config`, model.safetensors with `src.layout`'s keys and each tensor's dtype,
 * and byte copies of src's tokenizer files. `weights` uses canonical keys and must match the config exactly.
 */
export function writeModelFolder(outDir: string, src: LoadedModel, weights: Map<string, HostTensor>): void {
  assertNewOutDir(outDir, src.dir);
  const expected = gpt2WeightShapes(src.config, src.task, src.num_labels);
  for (const key of weights.keys()) {
    if (!expected.has(key)) {
      throw new LoraStudioError(`not a weight of this GPT-2 model${hint(key, expected.keys())}`, path.join(outDir, WEIGHTS_FILE), key);
    }
  }
  for (const [key, shape] of expected) {
    const t = weights.get(key);
    if (!t) throw new LoraStudioError('missing tensor; refusing to write an incomplete model', path.join(outDir, WEIGHTS_FILE), key);
    if (!sameShape(t.shape, shape)) throw new LoraStudioError(`shape ${JSON.stringify(t.shape)} but the config needs ${JSON.stringify(shape)}`, path.join(outDir, WEIGHTS_FILE), key);
  }
  const named = new Map<string, HostTensor>();
  for (const key of expected.keys()) {
    named.set(src.layout === 'bare' && key.startsWith(PREFIX) ? key.slice(PREFIX.length) : key, weights.get(key)!);
  }
  writeHfFolder(outDir, src.dir, src.config, named, src.tokenizerFiles);
}

function hint(key: string, names: Iterable<string>): string {
  const close = closestNames(key, names);
  return close.length ? ` (did you mean ${close.join(', ')}?)` : '';
}

/**
 * The config to save with a model for `task`: architectures for the task and, for seq-cls, num_labels with a
 * matching id2label/label2id and a pad_token_id (eos when unset, with a warning pushed to `warnings`).
 */
export function configForTask(src: GPT2Config, task: Task, numLabels: number, warnings: string[]): GPT2Config {
  const config: GPT2Config = { ...src, architectures: [task === 'seq-cls' ? 'GPT2ForSequenceClassification' : 'GPT2LMHeadModel'] };
  if (task !== 'seq-cls') return config;
  config.num_labels = numLabels;
  if (!config.id2label || Object.keys(config.id2label).length !== numLabels) {
    Object.assign(config, intLabelMaps(numLabels - 1, numLabels));
  }
  if (config.pad_token_id === undefined || config.pad_token_id === null) {
    config.pad_token_id = config.eos_token_id;
    warnings.push(`config.json had no pad_token_id; set it to eos_token_id (${config.eos_token_id}), which GPT2ForSequenceClassification needs for batches`);
  }
  return config;
}
