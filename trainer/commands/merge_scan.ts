/**
 * A model folder's weight files read as headers only and checked against its family's weight list, for merge
 * (commands/merge.ts), which streams the tensors instead of loading them: every weight the config needs is there
 * with its shape and a float dtype, each key maps to one canonical key (the family's canonicalKey, e.g. GPT-2's
 * optional `transformer.` prefix), and nothing foreign is in the files. The checks and messages are the loaders'
 * (models/<family>/folder.ts) where they do not need values.
 */
import { LoraStudioError, preview } from '../errors';
import { type WeightLayouts, readWeightLayouts } from '../io/hf_folder';
import { isFloatDType, type FloatDType } from '../io/safetensors';
import type { ModelConfig, ModelFamily } from '../models/family';
import type { Task } from '../task';

export interface StoredTensor {
  /** the weight file */
  file: string;
  /** the key as that file spells it */
  key: string;
  dtype: FloatDType;
}

export interface ScannedWeights extends WeightLayouts {
  /** the family's weight list for the task: canonical key → shape */
  shapes: Map<string, number[]>;
  /** where each canonical key of `shapes` is stored; a key missing here is not in the files */
  stored: Map<string, StoredTensor>;
  /** canonical keys of `shapes` that the files lack (at most the seq-cls head once the scan returns) */
  missing: string[];
  /** the dtype of the largest weight, which a newly added head takes (the loaders give it the embedding's) */
  mainDtype: FloatDType;
  /** the loaders' warnings that need no values (a head of the other task, kept but not used) */
  warnings: string[];
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Reads `dir`'s weight headers and checks them against `family.weightShapes(config, task, numLabels)`. A missing
 * tensor is an error except the seq-cls head (which `missing` lists); `head` names it.
 */
export function scanWeights(dir: string, family: ModelFamily, config: ModelConfig, task: Task, numLabels: number, head: string): ScannedWeights {
  const layouts = readWeightLayouts(dir);
  const shapes = family.weightShapes(config, task, numLabels);
  const other = family.weightShapes(config, task === 'seq-cls' ? 'causal-lm' : 'seq-cls', numLabels);
  const name = family.adapterFacts(config).name;
  const stored = new Map<string, StoredTensor>();
  const storedAs = new Map<string, string>();
  const unused: string[] = [];
  const unexpected: string[] = [];
  let largest = -1;
  let mainDtype: FloatDType = 'F32';
  for (const [key, file] of layouts.where) {
    const canonical = family.canonicalKey ? family.canonicalKey(key, config) : key;
    if (canonical === null) continue;
    const want = shapes.get(canonical);
    if (!want) {
      (other.has(canonical) ? unused : unexpected).push(key);
      continue;
    }
    const before = storedAs.get(canonical);
    if (before !== undefined) throw new LoraStudioError(`holds ${canonical} twice (as ${before} and ${key})`, file, key);
    storedAs.set(canonical, key);
    const e = layouts.files.get(file)!.entries.get(key)!;
    if (!sameShape(e.shape, want)) {
      const hint = canonical === head ? ` (a head for ${e.shape[0]} labels, but num_labels is ${numLabels})` : '';
      throw new LoraStudioError(`shape ${preview(e.shape)} does not fit this config, which needs ${JSON.stringify(want)}${hint}`, file, key);
    }
    if (!isFloatDType(e.dtype)) throw new LoraStudioError(`dtype ${e.dtype} is not a float weight type (F32, F16, BF16)`, file, `${key}.dtype`);
    stored.set(canonical, { file, key, dtype: e.dtype });
    if (e.end - e.begin > largest) {
      largest = e.end - e.begin;
      mainDtype = e.dtype;
    }
  }
  if (unexpected.length) {
    const shown = unexpected.slice(0, 5).join(', ') + (unexpected.length > 5 ? `, … (${unexpected.length} in all)` : '');
    throw new LoraStudioError(`holds tensors that a ${name} model does not have: ${shown}. Is this a model of another architecture?`, layouts.where.get(unexpected[0])!, unexpected[0]);
  }
  const missing: string[] = [];
  for (const key of shapes.keys()) {
    if (stored.has(key)) continue;
    if (key !== head || task !== 'seq-cls') throw new LoraStudioError(`missing tensor ${key}, which a ${name} model with this config needs`, layouts.mainFile, key);
    missing.push(key);
  }
  const warnings: string[] = [];
  if (unused.length) warnings.push(`Some weights of the model checkpoint at ${dir} were not used when loading it for ${task}: ${JSON.stringify(unused).replace(/"/g, "'")}`);
  return { ...layouts, shapes, stored, missing, mainDtype, warnings };
}
