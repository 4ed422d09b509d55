/**
 * Folds a LoRA adapter into base weights (W' = W + scaling · transpose(B·A, fan_in_fan_out)) and back out,
 * refusing non-finite results as PEFT's safe_merge does; and the whole "model folder + adapter → new folder" step.
 */
import * as path from 'node:path';
import { LoraStudioError, preview } from '../errors';
import { type HostTensor, f16ToF32, f32ToF16, f32ToBf16 } from '../io/safetensors';
import { assertNewOutDir } from '../io/hf_folder';
import { loadModelFolder, writeModelFolder } from '../models/gpt2/folder';
import type { GPT2Config } from '../models/gpt2/config';
import { isConv1D } from '../models/gpt2/weights';
import { taskFromPeft, type Task } from '../task';
import { ADAPTER_WEIGHTS_FILE, adapterLabelMaps, checkAdapterFitsModel, loadAdapter } from './adapter_io';
import { rankTable } from './patterns';
import type { AdapterWeights } from './types';
import { intLabelMaps } from '../data/labels';

/**
 * Returns a NEW map with every LoRA module merged and `extra` tensors (modules_to_save, biases) put in place of
 * the base tensors of the same key. Inputs are not modified; untouched tensors are shared with `weights`.
 * Each tensor keeps its dtype. Throws (naming the module) if any merged value is not finite in that dtype.
 */
export function mergeAdapter(weights: Map<string, HostTensor>, adapter: AdapterWeights): Map<string, HostTensor> {
  const out = applyDeltas(weights, adapter, +1);
  for (const [key, t] of adapter.extra) {
    const base = out.get(key);
    if (!base) throw new LoraStudioError(`the adapter replaces ${key}, which the model does not have`, undefined, key);
    if (!sameShape(base.shape, t.shape)) {
      throw new LoraStudioError(`the adapter's ${preview(t.shape)} does not match the model's ${JSON.stringify(base.shape)}`, undefined, key);
    }
    const data = Float32Array.from(t.data);
    checkFinite(data, base.dtype, key);
    out.set(key, { shape: [...base.shape], data, dtype: base.dtype });
  }
  return out;
}

/**
 * W = W' − scaling · transpose(B·A): takes the LoRA deltas back out. `extra` tensors cannot be restored
 * (the replaced base values are not in the adapter), so they are left as they are in `weights`.
 */
export function unmergeAdapter(weights: Map<string, HostTensor>, adapter: AdapterWeights): Map<string, HostTensor> {
  return applyDeltas(weights, adapter, -1);
}

function applyDeltas(weights: Map<string, HostTensor>, adapter: AdapterWeights, sign: 1 | -1): Map<string, HostTensor> {
  const out = new Map(weights);
  const ranks = rankTable(adapter.config, [...adapter.lora.keys()]).byName;
  for (const [module, { A, B }] of adapter.lora) {
    const key = `${module}.weight`;
    const W = weights.get(key);
    if (!W) throw new LoraStudioError(`module ${module} has LoRA weights but the model has no ${key}`, undefined, module);
    const { scaling } = ranks.get(module)!;
    const fanInFanOut = isConv1D(module);
    const [r, inF] = A.shape;
    const outF = B.shape[0];
    const want = fanInFanOut ? [inF, outF] : [outF, inF];
    if (B.shape[1] !== r || !sameShape(W.shape, want)) {
      throw new LoraStudioError(
        `lora_A ${JSON.stringify(A.shape)} and lora_B ${JSON.stringify(B.shape)} need a weight of shape ${JSON.stringify(want)}, the model has ${JSON.stringify(W.shape)}`,
        undefined,
        module,
      );
    }
    const a = A.data;
    const b = B.data;
    const w = W.data;
    const data = new Float32Array(w.length);
    const s = sign * scaling;
    const bRow = new Float64Array(r);
    for (let o = 0; o < outF; o++) {
      for (let k = 0; k < r; k++) bRow[k] = b[o * r + k];
      for (let i = 0; i < inF; i++) {
        let dot = 0;
        for (let k = 0; k < r; k++) dot += bRow[k] * a[k * inF + i];
        const idx = fanInFanOut ? i * outF + o : o * inF + i;
        data[idx] = w[idx] + s * dot;
      }
    }
    checkFinite(data, W.dtype, module);
    out.set(key, { shape: [...W.shape], data, dtype: W.dtype });
  }
  return out;
}

/** safe_merge: every value must stay finite once stored in the tensor's dtype (F16 overflows above 65504). */
function checkFinite(data: Float32Array, dtype: HostTensor['dtype'], name: string): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    const stored = dtype === 'F32' ? v : dtype === 'F16' ? f16ToF32(f32ToF16(v)) : bf16Round(v);
    if (!Number.isFinite(stored)) {
      throw new LoraStudioError(
        `merging gives a non-finite value (${v} at flat index ${i}${dtype === 'F32' ? '' : `, stored as ${dtype}`}); the adapter is broken or does not belong to this model. Nothing was written`,
        undefined,
        name,
      );
    }
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bf16Round(v: number): number {
  u32[0] = f32ToBf16(v) << 16;
  return f32[0];
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

export interface MergeResult {
  outDir: string;
  merged_modules: number;
  warnings: string[];
}

/**
 * Loads the model folder (for the adapter's task; SEQ_CLS takes num_labels from the adapter's score.weight),
 * checks the adapter fits, merges, and writes a complete new Hugging Face folder at `outDir`.
 * The model folder is only read; on any error nothing is left at `outDir`.
 */
export function mergeToFolder(modelDir: string, adapterDir: string, outDir: string): MergeResult {
  assertNewOutDir(outDir, modelDir);
  const adapter = loadAdapter(adapterDir);
  const task: Task = taskFromPeft(adapter.config.task_type) ?? 'causal-lm';
  const score = adapter.extra.get('score.weight');
  const model = loadModelFolder(modelDir, { task, num_labels: task === 'seq-cls' && score ? score.shape[0] : undefined });
  const newHead = (w: string) => w.includes("newly initialized: ['score.weight']");
  // The adapter's score.weight replaces a head the loader had to initialise, so that warning does not apply.
  const warnings = model.warnings.filter((w) => !(score && newHead(w)));
  if (task === 'seq-cls' && !score && model.warnings.some(newHead)) {
    warnings.push('the adapter has no score.weight and the base model has none either: the merged classifier head is random');
  }
  const adapterFile = path.join(adapterDir, ADAPTER_WEIGHTS_FILE);
  checkAdapterFitsModel(adapter, adapterFile, model.config, model.weights);
  let merged: Map<string, HostTensor>;
  try {
    merged = mergeAdapter(model.weights, adapter);
  } catch (e) {
    // mergeAdapter works on maps and names only the module; here we know the file it came from.
    if (e instanceof LoraStudioError && !e.file) throw new LoraStudioError(e.message, adapterFile, e.field);
    throw e;
  }
  const config = configForTask(model.config, task, model.num_labels, warnings);
  // The head's label names travel in the adapter's safetensors metadata (written by training).
  const labels = adapterLabelMaps(adapter, adapterFile);
  if (task === 'seq-cls' && labels) Object.assign(config, labels);
  writeModelFolder(outDir, { ...model, config }, merged);
  return { outDir, merged_modules: adapter.lora.size, warnings };
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
