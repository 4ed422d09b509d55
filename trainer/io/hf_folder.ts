/**
 * Hugging Face model folders as files, whatever the architecture: the weight files (model.safetensors, or the
 * shards model.safetensors.index.json lists), the tokenizer files copied beside them, the rule that we never
 * write into a source folder, and writing a whole new folder atomically. The families' loaders
 * (models/<family>/folder.ts) read and check the tensors themselves.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoraStudioError, preview } from '../errors';
import { type HostTensor, type SafetensorsFile, type SafetensorsLayout, readSafetensors, readSafetensorsLayout, tensorToF32, writeSafetensors } from './safetensors';
import { writeDirAtomic, writeFileAtomic, writeJsonAtomic } from './atomic';
import { isPlainObject, readJsonFile } from './json';

export const WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';
/** The files besides the weights that make a folder usable by `from_pretrained`; copied as they are. */
export const TOKENIZER_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt', 'special_tokens_map.json', 'added_tokens.json',
  'generation_config.json',
];

export interface RawTensors {
  sharded: boolean;
  /** key → the file that holds it (absolute path) */
  where: Map<string, string>;
  files: Map<string, SafetensorsFile>;
}

/** Every tensor of the folder's weight files, by key, with the file that holds it (headers read, data not decoded). */
export function readRawTensors(dir: string): RawTensors {
  const single = path.join(dir, WEIGHTS_FILE);
  const index = path.join(dir, WEIGHTS_INDEX_FILE);
  const files = new Map<string, SafetensorsFile>();
  const where = new Map<string, string>();
  if (fs.existsSync(single)) {
    const st = readSafetensors(single);
    files.set(single, st);
    for (const key of st.entries.keys()) where.set(key, single);
    return { sharded: false, where, files };
  }
  if (!fs.existsSync(index)) {
    const bin = ['pytorch_model.bin', 'pytorch_model.bin.index.json'].find((f) => fs.existsSync(path.join(dir, f)));
    const note = bin ? ` It has ${bin}: PyTorch pickles are not supported (they can run code); convert it to safetensors first (e.g. save_pretrained(..., safe_serialization=True)).` : '';
    throw new LoraStudioError(`no weights: expected ${WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE} with its shards.${note}`, dir);
  }
  const root = path.resolve(dir);
  for (const [key, shard] of readShardIndex(index)) {
    const file = path.join(root, shard);
    if (!files.has(file)) {
      if (!fs.existsSync(file)) throw new LoraStudioError(`shard ${shard} is missing from the folder`, index, `weight_map.${key}`);
      files.set(file, readSafetensors(file));
    }
    if (!files.get(file)!.entries.has(key)) throw new LoraStudioError(`${WEIGHTS_INDEX_FILE} puts this tensor here, but it is not in the file`, file, key);
    where.set(key, file);
  }
  return { sharded: true, where, files };
}

/**
 * model.safetensors.index.json: its weight_map (tensor name → shard file name), checked. A shard must be a plain
 * file name in the index's own folder (no "../", no sub-folder, no absolute path), so a downloaded or hostile
 * index can never make us read or write elsewhere.
 */
export function readShardIndex(index: string): Map<string, string> {
  const json = readJsonFile(index);
  if (!isPlainObject(json)) throw new LoraStudioError(`must be a JSON object with a weight_map, got ${preview(json)}`, index);
  const map = json.weight_map;
  if (!isPlainObject(map)) throw new LoraStudioError(`must be an object of tensor name → shard file, got ${preview(map)}`, index, 'weight_map');
  const out = new Map<string, string>();
  for (const [key, shard] of Object.entries(map)) {
    const field = `weight_map.${key.length > 60 ? `${key.slice(0, 59)}…` : key}`;
    if (typeof shard !== 'string' || !shard) throw new LoraStudioError(`must be a shard file name (a string), got ${preview(shard)}`, index, field);
    if (shard === '.' || shard === '..' || shard !== path.basename(shard) || shard.includes('\\') || shard.includes('\0') || path.isAbsolute(shard)) {
      throw new LoraStudioError(`shard ${preview(shard)} must be a file name in the model folder (no folders, no "..")`, index, field);
    }
    out.set(key, shard);
  }
  if (out.size === 0) throw new LoraStudioError('lists no tensors', index, 'weight_map');
  return out;
}

/** One tensor of `raw`, decoded to F32 (its stored dtype is kept in the result). */
export function decodeRaw(raw: RawTensors, key: string): HostTensor {
  return tensorToF32(raw.files.get(raw.where.get(key)!)!, key);
}

/** Real path of `p`, resolving the deepest part that exists (the rest need not exist yet). */
function realPathLoose(p: string): string {
  const abs = path.resolve(p);
  let head = abs;
  const tail: string[] = [];
  while (!fs.existsSync(head)) {
    const parent = path.dirname(head);
    if (parent === head) break;
    tail.unshift(path.basename(head));
    head = parent;
  }
  return path.join(fs.existsSync(head) ? fs.realpathSync(head) : head, ...tail);
}

/**
 * Refuses an output folder that exists already, or that is the source folder or lies inside it:
 * we never write in place. Cheap, so callers run it before any heavy work.
 */
export function assertNewOutDir(outDir: string, srcDir: string): void {
  if (fs.existsSync(outDir)) throw new LoraStudioError('already exists; choose a new output folder (we never overwrite or write in place)', outDir);
  const src = realPathLoose(srcDir);
  const out = realPathLoose(outDir);
  const rel = path.relative(src, out);
  if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) {
    throw new LoraStudioError(`must not be the model folder ${srcDir} or lie inside it; choose a new folder elsewhere`, outDir);
  }
}


/**
 * Writes a complete Hugging Face folder into the NEW directory `outDir` (built under a temporary name, then
 * renamed): config.json, model.safetensors with `weights` as given (keys and dtypes), and byte copies of the
 * tokenizer files `tokenizerFiles` of `srcDir`. The caller has checked the weights against the config.
 */
export function writeHfFolder(outDir: string, srcDir: string, config: object, weights: Map<string, HostTensor>, tokenizerFiles: string[]): void {
  writeDirAtomic(outDir, (tmp) => {
    writeJsonAtomic(path.join(tmp, 'config.json'), config);
    writeSafetensors(path.join(tmp, WEIGHTS_FILE), weights, { format: 'pt' });
    for (const f of tokenizerFiles) writeFileAtomic(path.join(tmp, f), fs.readFileSync(path.join(srcDir, f)));
  });
}

export interface WeightLayouts {
  sharded: boolean;
  /** model.safetensors, or model.safetensors.index.json for a sharded folder (absolute paths as joined from dir) */
  mainFile: string;
  /** key → the file that holds it; for a sharded folder, the index's weight_map order */
  where: Map<string, string>;
  /** each weight file's header, in the order the files are first named */
  files: Map<string, SafetensorsLayout>;
}

/**
 * readRawTensors without the data: every weight file's header only (shapes, dtypes, byte ranges), so that a job
 * that streams the tensors (merge) never holds the model in memory. Same files, same checks, same errors.
 */
export function readWeightLayouts(dir: string): WeightLayouts {
  const single = path.join(dir, WEIGHTS_FILE);
  const index = path.join(dir, WEIGHTS_INDEX_FILE);
  const files = new Map<string, SafetensorsLayout>();
  const where = new Map<string, string>();
  if (fs.existsSync(single)) {
    const st = readSafetensorsLayout(single);
    files.set(single, st);
    for (const key of st.entries.keys()) where.set(key, single);
    return { sharded: false, mainFile: single, where, files };
  }
  if (!fs.existsSync(index)) readRawTensors(dir); // throws its "no weights" error
  const root = path.resolve(dir);
  for (const [key, shard] of readShardIndex(index)) {
    const file = path.join(root, shard);
    if (!files.has(file)) {
      if (!fs.existsSync(file)) throw new LoraStudioError(`shard ${shard} is missing from the folder`, index, `weight_map.${key}`);
      files.set(file, readSafetensorsLayout(file));
    }
    if (!files.get(file)!.entries.has(key)) throw new LoraStudioError(`${WEIGHTS_INDEX_FILE} puts this tensor here, but it is not in the file`, file, key);
    where.set(key, file);
  }
  return { sharded: true, mainFile: index, where, files };
}
