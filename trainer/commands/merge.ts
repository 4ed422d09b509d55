/**
 * `merge`: a model folder + a PEFT adapter → a complete new Hugging Face folder, through the model's family
 * (its loader, its Conv1D modules, the config it saves for the task). The source folders are only read.
 */
import * as path from 'node:path';
import { LoraStudioError } from '../errors';
import type { HostTensor } from '../io/safetensors';
import { assertNewOutDir } from '../io/hf_folder';
import { ADAPTER_WEIGHTS_FILE, adapterLabelMaps, checkAdapterFitsModel, loadAdapter } from '../lora/adapter_io';
import { mergeAdapter } from '../lora/merge';
import { familyForDir } from '../models/registry';
import { taskFromPeft, type Task } from '../task';

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
  const family = familyForDir(modelDir);
  const model = family.load(modelDir, { task, num_labels: task === 'seq-cls' && score ? score.shape[0] : undefined });
  const newHead = (w: string) => w.includes("newly initialized: ['score.weight']");
  // The adapter's score.weight replaces a head the loader had to initialise, so that warning does not apply.
  const warnings = model.warnings.filter((w) => !(score && newHead(w)));
  if (task === 'seq-cls' && !score && model.warnings.some(newHead)) {
    warnings.push('the adapter has no score.weight and the base model has none either: the merged classifier head is random');
  }
  const adapterFile = path.join(adapterDir, ADAPTER_WEIGHTS_FILE);
  checkAdapterFitsModel(adapter, adapterFile, family.adapterFacts(model.config), model.weights);
  let merged: Map<string, HostTensor>;
  try {
    merged = mergeAdapter(model.weights, adapter, (m) => family.isConv1D(m));
  } catch (e) {
    // mergeAdapter works on maps and names only the module; here we know the file it came from.
    if (e instanceof LoraStudioError && !e.file) throw new LoraStudioError(e.message, adapterFile, e.field);
    throw e;
  }
  const config = family.configForTask(model.config, task, model.num_labels, warnings);
  // The head's label names travel in the adapter's safetensors metadata (written by training).
  const labels = adapterLabelMaps(adapter, adapterFile);
  if (task === 'seq-cls' && labels) Object.assign(config, labels);
  family.write(outDir, { ...model, config }, merged);
  return { outDir, merged_modules: adapter.lora.size, warnings };
}
