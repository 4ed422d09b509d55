/**
 * Llama-family Hugging Face model folders (llama, qwen2, mistral), both directions: loads config.json plus the
 * weight files (io/hf_folder.ts reads them; F32/F16/BF16, one file or shards with the index) into canonical,
 * checked F32 host tensors that keep their stored dtype, and writes a complete new folder (config, one
 * model.safetensors with each tensor's dtype, tokenizer files) without ever touching the source. Follows
 * transformers' from_pretrained: rotary inv_freq buffers are ignored, a tied lm_head is the embedding, a missing
 * seq-cls head is newly initialised, a causal-lm load drops a score head; anything else is a named error.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoraStudioError, closestNames, preview } from '../../errors';
import { readJsonFile } from '../../io/json';
import type { HostTensor } from '../../io/safetensors';
import { initLinearHead, sameValues } from '../head_init';
import { assertNewOutDir, decodeRaw, readRawTensors, TOKENIZER_FILES, WEIGHTS_FILE, WEIGHTS_INDEX_FILE, writeHfFolder } from '../../io/hf_folder';
import { intLabelMaps } from '../../data/labels';
import type { Task } from '../../task';
import type { LoadedModel as FamilyLoadedModel, LoadModelOptions } from '../family';
import { CLASS_PREFIX, checkModelSize, configNumLabels, firstEos, type LlamaConfig, parseConfig, tiedEmbeddings } from './config';
import { llamaWeightShapes } from './weights';

/** A loaded Llama-family folder: the family-wide shape with a LlamaConfig; keys are always transformers' own. */
export interface LoadedLlama extends FamilyLoadedModel {
  config: LlamaConfig;
  layout: 'hf';
}

/** RoPE buffers that older checkpoints saved (transformers drops them as unexpected-but-ignored keys). */
export const ROTARY_BUFFER = /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/;
const EMBED = 'model.embed_tokens.weight';
const LM_HEAD = 'lm_head.weight';
const SCORE = 'score.weight';

/** The loader's key rules for merge's header scan: buffers and a tied lm_head are skipped; every other key is canonical. */
export const llamaCanonicalKey = (key: string, c: LlamaConfig): string | null => (ROTARY_BUFFER.test(key) || (key === LM_HEAD && tiedEmbeddings(c)) ? null : key);

export const seqClsArch = (c: LlamaConfig) => `${CLASS_PREFIX[c.model_type]}ForSequenceClassification`;
export const causalLmArch = (c: LlamaConfig) => `${CLASS_PREFIX[c.model_type]}ForCausalLM`;

/** The task a config was saved for: …ForSequenceClassification → seq-cls, anything else → causal-lm. */
export function taskFromConfig(c: LlamaConfig): Task {
  return Array.isArray(c.architectures) && c.architectures.includes(seqClsArch(c)) ? 'seq-cls' : 'causal-lm';
}

/** config.json of `dir`, parsed and checked (errors name the file and the field). */
export function readLlamaConfig(dir: string): LlamaConfig {
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(file)) throw new LoraStudioError('missing: a Hugging Face model folder needs config.json', file);
  return parseConfig(readJsonFile(file), file);
}

export function loadLlamaFolder(dir: string, opts: LoadModelOptions = {}): LoadedLlama {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new LoraStudioError('not a folder: a Hugging Face model folder was expected', dir);
  const configFile = path.join(dir, 'config.json');
  const config = readLlamaConfig(dir);
  const name = CLASS_PREFIX[config.model_type];
  const task = opts.task ?? taskFromConfig(config);
  const num_labels = task === 'seq-cls' ? (opts.num_labels ?? configNumLabels(config)) : configNumLabels(config);
  if (!Number.isInteger(num_labels) || num_labels < 1) {
    throw new LoraStudioError(`num_labels must be a positive integer, got ${preview(num_labels)}`, configFile, 'num_labels');
  }
  // The head is part of the size bound: a newly initialised score.weight is num_labels × hidden_size.
  checkModelSize(config, task === 'seq-cls' ? num_labels : 0, configFile);
  const raw = readRawTensors(dir);
  const mainFile = path.join(dir, raw.sharded ? WEIGHTS_INDEX_FILE : WEIGHTS_FILE);
  const expected = llamaWeightShapes(config, task, num_labels);
  const weights = new Map<string, HostTensor>();
  const warnings: string[] = [];
  const unused: string[] = [];
  const unexpected: string[] = [];
  let tiedHead: HostTensor | undefined;

  for (const [key, file] of raw.where) {
    if (ROTARY_BUFFER.test(key)) continue;
    const shape = raw.files.get(file)!.entries.get(key)!.shape;
    const want = expected.get(key);
    if (want) {
      if (!sameShape(shape, want)) {
        const hint = key === SCORE ? ` (a head for ${shape[0]} labels, but num_labels is ${num_labels})` : '';
        throw new LoraStudioError(`shape ${preview(shape)} does not fit this config, which needs ${JSON.stringify(want)}${hint}`, file, key);
      }
      weights.set(key, decodeRaw(raw, key));
    } else if (key === LM_HEAD && task === 'causal-lm') {
      // tie_word_embeddings: transformers ties lm_head to the embedding and ignores the stored copy
      const embed = [config.vocab_size, config.hidden_size];
      if (!sameShape(shape, embed)) {
        throw new LoraStudioError(`shape ${preview(shape)} does not match ${EMBED} ${JSON.stringify(embed)}, to which tie_word_embeddings ties it`, file, key);
      }
      tiedHead = decodeRaw(raw, key);
    } else if ((key === LM_HEAD && task === 'seq-cls') || (key === SCORE && task === 'causal-lm')) {
      unused.push(key);
    } else {
      unexpected.push(key);
    }
  }
  if (unexpected.length) {
    const shown = unexpected.slice(0, 5).join(', ') + (unexpected.length > 5 ? `, … (${unexpected.length} in all)` : '');
    throw new LoraStudioError(
      `holds tensors that a ${name} model (model_type "${config.model_type}") does not have: ${shown}. Is this a model of another architecture?`,
      raw.where.get(unexpected[0]) ?? mainFile,
      unexpected[0],
    );
  }
  for (const [key, shape] of expected) {
    if (weights.has(key)) continue;
    if (key === SCORE) {
      weights.set(key, initLinearHead(shape, config.initializer_range, opts.seed ?? 42, weights.get(EMBED)?.dtype ?? 'F32'));
      warnings.push(`Some weights of ${seqClsArch(config)} were not initialized from the model checkpoint at ${dir} and are newly initialized: ['${SCORE}']. Train them before using the model for predictions.`);
      continue;
    }
    if (key === LM_HEAD) {
      throw new LoraStudioError(`missing tensor ${LM_HEAD}: config.json has tie_word_embeddings false, so the output head must be stored (set tie_word_embeddings to true if it shares ${EMBED})`, mainFile, LM_HEAD);
    }
    throw new LoraStudioError(`missing tensor ${key}, which a ${name} model with this config needs`, mainFile, key);
  }
  if (tiedHead && !sameStored(tiedHead, weights.get(EMBED)!)) {
    warnings.push(`${LM_HEAD} differs from ${EMBED}; config.json ties them (tie_word_embeddings), so ${EMBED} is used for both`);
  }
  if (unused.length) warnings.push(`Some weights of the model checkpoint at ${dir} were not used when loading it for ${task}: ${JSON.stringify(unused).replace(/"/g, "'")}`);
  const tokenizerFiles = TOKENIZER_FILES.filter((f) => fs.existsSync(path.join(dir, f)));
  return { dir, config, task, num_labels, weights, layout: 'hf', sharded: raw.sharded, tokenizerFiles, warnings };
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Writes a complete Hugging Face folder into the NEW directory `outDir` (built under a temporary name, then
 * renamed): config.json as in `src.config`, ONE model.safetensors (also for a sharded source: the tensors are
 * written chunk by chunk, and from_pretrained reads either form) with each tensor's dtype, and byte copies of
 * src's tokenizer files. `weights` uses canonical keys and must match the config exactly.
 */
export function writeLlamaFolder(outDir: string, src: FamilyLoadedModel, weights: Map<string, HostTensor>): void {
  assertNewOutDir(outDir, src.dir);
  const config = src.config as LlamaConfig;
  const file = path.join(outDir, WEIGHTS_FILE);
  const expected = llamaWeightShapes(config, src.task, src.num_labels);
  for (const key of weights.keys()) {
    if (!expected.has(key)) throw new LoraStudioError(`not a weight of this ${CLASS_PREFIX[config.model_type]} model${hint(key, expected.keys())}`, file, key);
  }
  const ordered = new Map<string, HostTensor>();
  for (const [key, shape] of expected) {
    const t = weights.get(key);
    if (!t) throw new LoraStudioError('missing tensor; refusing to write an incomplete model', file, key);
    if (!sameShape(t.shape, shape)) throw new LoraStudioError(`shape ${JSON.stringify(t.shape)} but the config needs ${JSON.stringify(shape)}`, file, key);
    ordered.set(key, t);
  }
  writeHfFolder(outDir, src.dir, config, ordered, src.tokenizerFiles);
}

function hint(key: string, names: Iterable<string>): string {
  const close = closestNames(key, names);
  return close.length ? ` (did you mean ${close.join(', ')}?)` : '';
}

/**
 * The config to save with a model for `task`: architectures `<Prefix>ForCausalLM` / `<Prefix>ForSequenceClassification`
 * and, for seq-cls, num_labels with a matching id2label/label2id and a pad_token_id (the first eos_token_id when
 * unset, with a warning pushed to `warnings`).
 */
export function llamaConfigForTask(src: LlamaConfig, task: Task, numLabels: number, warnings: string[]): LlamaConfig {
  const config: LlamaConfig = { ...src, architectures: [task === 'seq-cls' ? seqClsArch(src) : causalLmArch(src)] };
  if (task !== 'seq-cls') return config;
  config.num_labels = numLabels;
  if (!config.id2label || Object.keys(config.id2label).length !== numLabels) Object.assign(config, intLabelMaps(numLabels - 1, numLabels));
  if (config.pad_token_id === undefined || config.pad_token_id === null) {
    const eos = firstEos(config);
    if (eos === undefined) throw new LoraStudioError(`neither pad_token_id nor eos_token_id is set; ${seqClsArch(config)} needs a pad token for batches`, 'config.json', 'pad_token_id');
    config.pad_token_id = eos;
    warnings.push(`config.json had no pad_token_id; set it to eos_token_id (${eos}), which ${seqClsArch(config)} needs for batches`);
  }
  return config;
}

/** Whether two tensors hold the same values; two 16-bit ones are compared as stored (no float32 copy of either). */
function sameStored(a: HostTensor, b: HostTensor): boolean {
  if (a.bits && b.bits && a.dtype === b.dtype) {
    return a.bits.length === b.bits.length && Buffer.compare(Buffer.from(a.bits.buffer, a.bits.byteOffset, a.bits.byteLength), Buffer.from(b.bits.buffer, b.bits.byteOffset, b.bits.byteLength)) === 0;
  }
  return sameValues(a.data, b.data);
}
