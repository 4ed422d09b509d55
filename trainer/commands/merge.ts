/**
 * `merge`: a model folder + a PEFT adapter → a complete new Hugging Face folder, streamed tensor by tensor
 * (lora/merge_stream.ts): each weight file keeps its header and its untouched bytes, and only the tensors the
 * adapter changes are read, merged and written, so memory is about one tensor, whatever the model's size. The
 * family gives the config it saves for the task, the weight list the files are checked against (merge_scan.ts) and
 * which modules are Conv1D. The source folders are only read; on any error nothing is left at `outDir`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoraStudioError, preview } from '../errors';
import { writeDirAtomic, writeFileAtomic, writeJsonAtomic } from '../io/atomic';
import { assertNewOutDir, TOKENIZER_FILES, WEIGHTS_INDEX_FILE } from '../io/hf_folder';
import { isPlainObject, readJsonFile } from '../io/json';
import { floatItemSize, type HostTensor } from '../io/safetensors';
import { ADAPTER_WEIGHTS_FILE, adapterLabelMaps, checkAdapterFitsModel, loadAdapter } from '../lora/adapter_io';
import { type AppendedTensor, type FilePlan, MergeScratch, planPatches, type TensorPatch, writeMergedFile } from '../lora/merge_stream';
import { readRunnableModelConfig } from '../models/registry';
import { taskFromPeft, type Task } from '../task';
import { scanWeights } from './merge_scan';

export interface MergeResult {
  outDir: string;
  merged_modules: number;
  warnings: string[];
}

/** The seq-cls head's key in every family (transformers' `score`), which modules_to_save carries. */
const HEAD = 'score.weight';

/**
 * Checks the adapter against the model folder's headers (for the adapter's task; SEQ_CLS takes num_labels from the
 * adapter's score.weight), then writes a complete new Hugging Face folder at `outDir`: config.json for the task with
 * the adapter's label names, each weight file merged, the shard index, the tokenizer files.
 */
export function mergeToFolder(modelDir: string, adapterDir: string, outDir: string): MergeResult {
  assertNewOutDir(outDir, modelDir);
  const adapter = loadAdapter(adapterDir);
  const adapterFile = path.join(adapterDir, ADAPTER_WEIGHTS_FILE);
  const task: Task = taskFromPeft(adapter.config.task_type) ?? 'causal-lm';
  const score = adapter.extra.get(HEAD);
  if (!fs.existsSync(modelDir) || !fs.statSync(modelDir).isDirectory()) throw new LoraStudioError('not a folder: a Hugging Face model folder was expected', modelDir);
  const { family, config } = readRunnableModelConfig(modelDir);
  const num_labels = task === 'seq-cls' && score ? score.shape[0] : family.numLabels(config);
  if (!Number.isInteger(num_labels) || num_labels < 1) {
    throw new LoraStudioError(`num_labels must be a positive integer, got ${preview(num_labels)}`, path.join(modelDir, 'config.json'), 'num_labels');
  }
  const scan = scanWeights(modelDir, family, config, task, num_labels, HEAD);
  checkAdapterFitsModel(adapter, adapterFile, family.adapterFacts(config), scan.shapes);
  const patches = namingAdapter(adapterFile, () => planPatches(adapter, (m) => family.isConv1D(m), (k) => scan.shapes.get(k)));

  let warnings = scan.warnings;
  const append: AppendedTensor[] = [];
  if (scan.missing.includes(HEAD)) {
    // The base model has no head: the adapter's replaces the one the loader would initialise, so no warning.
    const replaced = patches.get(HEAD);
    patches.delete(HEAD);
    let values = replaced?.kind === 'replace' ? replaced.values : undefined;
    let dtype = scan.mainDtype;
    if (!values) {
      // Nothing to replace it with: the merged head is the loader's seeded initialisation, as it was before
      // streaming, so only here the whole model is loaded (a seq-cls adapter without modules_to_save is rare).
      const model = family.load(modelDir, { task, num_labels });
      const head = model.weights.get(HEAD) as HostTensor;
      values = head.data;
      dtype = head.dtype;
      warnings = model.warnings;
      warnings.push('the adapter has no score.weight and the base model has none either: the merged classifier head is random');
    }
    append.push({ key: HEAD, dtype, shape: scan.shapes.get(HEAD)!, values, name: HEAD });
  }

  const merged = family.configForTask(config, task, num_labels, warnings);
  // The head's label names travel in the adapter's safetensors metadata (written by training).
  const labels = adapterLabelMaps(adapter, adapterFile);
  if (task === 'seq-cls' && labels) Object.assign(merged, labels);

  writeDirAtomic(outDir, (tmp) => {
    writeJsonAtomic(path.join(tmp, 'config.json'), merged);
    const plans = filePlans(scan, patches, append, tmp);
    const scratch = new MergeScratch();
    namingAdapter(adapterFile, () => plans.forEach((p) => writeMergedFile(p, scratch)));
    if (scan.sharded) writeIndex(scan.mainFile, path.join(tmp, WEIGHTS_INDEX_FILE), plans);
    for (const f of TOKENIZER_FILES) {
      const src = path.join(modelDir, f);
      if (fs.existsSync(src)) writeFileAtomic(path.join(tmp, f), fs.readFileSync(src));
    }
  });
  return { outDir, merged_modules: adapter.lora.size, warnings };
}

/** Runs `fn`; an error that names a module but no file (merge_stream's) gets the adapter file, where it came from. */
function namingAdapter<T>(adapterFile: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof LoraStudioError && !e.file) throw new LoraStudioError(e.message, adapterFile, e.field);
    throw e;
  }
}

/** One plan per weight file: its patches by stored key; an appended head goes into the last file. */
function filePlans(scan: ReturnType<typeof scanWeights>, patches: Map<string, TensorPatch>, append: AppendedTensor[], tmp: string): FilePlan[] {
  const plans = new Map<string, FilePlan>();
  for (const [file, layout] of scan.files) plans.set(file, { src: file, layout, out: path.join(tmp, path.basename(file)), patches: new Map(), append: [] });
  for (const [key, p] of patches) {
    const at = scan.stored.get(key)!; // planPatches checked the key against scan.shapes, and the scan found each one
    plans.get(at.file)!.patches.set(at.key, p);
  }
  const list = [...plans.values()];
  list.at(-1)!.append.push(...append);
  return list;
}

/** The shard index, with an appended tensor added to weight_map (and metadata.total_size when the source has it). */
function writeIndex(src: string, out: string, plans: FilePlan[]): void {
  const added = plans.flatMap((p) => p.append.map((t) => ({ key: t.key, shard: path.basename(p.out), bytes: t.values.length * floatItemSize(t.dtype) })));
  if (added.length === 0) {
    writeFileAtomic(out, fs.readFileSync(src));
    return;
  }
  const index = readJsonFile(src) as Record<string, unknown>; // readShardIndex checked it when the scan read it
  const weightMap = { ...(index.weight_map as Record<string, string>) };
  for (const a of added) weightMap[a.key] = a.shard;
  const metadata = isPlainObject(index.metadata) ? { ...index.metadata } : undefined;
  if (metadata && typeof metadata.total_size === 'number') metadata.total_size += added.reduce((s, a) => s + a.bytes, 0);
  writeJsonAtomic(out, { ...index, ...(metadata ? { metadata } : {}), weight_map: weightMap });
}
