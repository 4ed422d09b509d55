/**
 * THE ADAPTER FILE: every call the fuzz suite makes into the trainer's readers is here, so that when a reader's
 * signature changes only this file needs updating.
 *
 * A reader takes a case folder (a copy of one seed folder with one file mutated) and reads it through the trainer's
 * public entry, as a user's file would be read. It passes when it returns, or throws a LoraStudioError that names a
 * file; anything else is a finding.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inspect } from '../../../trainer/commands/inspect';
import { runInspect, type Output } from '../../../trainer/commands/run';
import { loadRunConfig } from '../../../trainer/config/run_config';
import { prepareData } from '../../../trainer/data/prepare';
import { readRows } from '../../../trainer/data/read_rows';
import type { DataSpec } from '../../../trainer/data/types';
import { loadModelFolder } from '../../../trainer/models/gpt2/folder';
import { readSafetensors, tensorToF32 } from '../../../trainer/io/safetensors';
import { adapterLabelMaps, loadAdapter } from '../../../trainer/lora/adapter_io';
import { LORA_DEFAULTS } from '../../../trainer/lora/config';
import type { Task } from '../../../trainer/task';
import { mergeToFolder } from '../../../trainer/commands/merge';
import { readConfig } from '../../../trainer/models/gpt2/config';
import { loadTokenizer, type TextTokenizer } from '../../../trainer/tokenizer/tokenizer';
import { loadCheckpoint } from '../../../trainer/train/checkpoint';
import type { SeedLibrary } from './seeds';

/** One seed of a reader: a folder, the files in it that get mutated, and how often it is picked (default 1). */
export interface ReaderSeed {
  dir: string;
  targets: string[];
  weight?: number;
  /** extra data for `run` (e.g. which base model an adapter belongs to) */
  info?: Record<string, string>;
}

export interface RunContext {
  lib: SeedLibrary;
  /** a fresh, non-existing path the reader may write to (merge's output folder) */
  scratchOut: string;
  /** the input's index, for choices that vary from input to input */
  index: number;
  info: Record<string, string>;
}

export interface Reader {
  name: string;
  seeds(lib: SeedLibrary): ReaderSeed[];
  run(caseDir: string, ctx: RunContext): Promise<unknown> | unknown;
}

const quiet: Output = { json: true, info: () => {}, warn: () => {}, result: () => {} };

const tokenizers = new Map<string, TextTokenizer>();
function seedTokenizer(lib: SeedLibrary): TextTokenizer {
  const dir = lib.dirs['model-causal'];
  let t = tokenizers.get(dir);
  if (!t) tokenizers.set(dir, (t = loadTokenizer(dir)));
  return t;
}

async function prepare(file: string, ctx: RunContext, task: Task): Promise<unknown> {
  const spec: DataSpec = {
    train: file, eval: null, text_column: 'text', label_column: 'label', max_length: 16, eval_split: ctx.index % 3 === 0 ? 0.25 : 0,
    format: null, max_bad_rows_ratio: ctx.index % 2 === 0 ? 1 : 0.1, packing: task === 'causal-lm' && ctx.index % 4 === 1,
  };
  return prepareData(spec, task, seedTokenizer(ctx.lib), { seed: 1, eos_token_id: 256, num_labels: task === 'seq-cls' && ctx.index % 2 === 1 ? 2 : undefined, env: { HF_HUB_OFFLINE: '1' } });
}

function dataReader(name: string, file: string, tasks: Task[]): Reader {
  return {
    name,
    seeds: (lib) => [{ dir: lib.dirs['data'], targets: [file] }],
    run: async (dir, ctx) => {
      const f = path.join(dir, file);
      const task = tasks[ctx.index % tasks.length];
      // readRows alone first (the same rows feed prepareData), then the whole pipeline
      await readRows(f, { field: 'data.train' });
      return prepare(f, ctx, task);
    },
  };
}

export const READERS: Reader[] = [
  {
    // config.json through `inspect` (readConfig, the module table, targets and the PEFT line)
    name: 'config.json (inspect)',
    seeds: (lib) => [
      { dir: lib.dirs['model-causal'], targets: ['config.json'] },
      { dir: lib.dirs['model-seqcls'], targets: ['config.json'] },
    ],
    run: (dir) => {
      readConfig(dir);
      return inspect({ modelDir: dir, lora: { ...LORA_DEFAULTS, target_modules: ['c_attn', 'c_proj'] } });
    },
  },
  {
    name: 'safetensors',
    seeds: (lib) => [
      { dir: lib.dirs['model-causal'], targets: ['model.safetensors'] },
      { dir: lib.dirs['adapter-seqcls'], targets: ['adapter_model.safetensors'] },
      { dir: lib.dirs['checkpoint'], targets: ['optimizer.safetensors'] },
    ],
    run: (dir) => {
      const file = fs.readdirSync(dir).find((f) => f.endsWith('.safetensors'))!;
      const st = readSafetensors(path.join(dir, file));
      for (const name of st.entries.keys()) tensorToF32(st, name);
      return st.entries.size;
    },
  },
  {
    name: 'model folder (loadModelFolder)',
    seeds: (lib) => [
      { dir: lib.dirs['model-causal'], targets: ['config.json', 'model.safetensors'] },
      { dir: lib.dirs['model-seqcls'], targets: ['config.json', 'model.safetensors'] },
      { dir: lib.dirs['model-sharded'], targets: ['model.safetensors.index.json', 'model-00002-of-00003.safetensors', 'config.json'] },
    ],
    run: (dir) => loadModelFolder(dir).weights.size,
  },
  {
    name: 'adapter (loadAdapter)',
    seeds: (lib) => [
      { dir: lib.dirs['adapter-causal'], targets: ['adapter_config.json', 'adapter_model.safetensors'], weight: 2 },
      { dir: lib.dirs['adapter-seqcls'], targets: ['adapter_config.json', 'adapter_model.safetensors'], weight: 2 },
      ...(lib.fixtures
        ? [
            { dir: lib.dirs['fixture-adapter-causal'], targets: ['adapter_config.json', 'adapter_model.safetensors'] },
            { dir: lib.dirs['fixture-adapter-seqcls'], targets: ['adapter_config.json', 'adapter_model.safetensors'] },
          ]
        : []),
    ],
    run: (dir) => {
      const a = loadAdapter(dir);
      // the label names in the metadata are part of what loading promises (merge and eval read them)
      adapterLabelMaps(a);
      return a.lora.size;
    },
  },
  {
    name: 'merge (mergeToFolder)',
    seeds: (lib) => [
      { dir: lib.dirs['adapter-causal'], targets: ['adapter_config.json', 'adapter_model.safetensors'], info: { base: 'model-causal' } },
      { dir: lib.dirs['adapter-seqcls'], targets: ['adapter_config.json', 'adapter_model.safetensors'], info: { base: 'model-seqcls' } },
    ],
    run: (dir, ctx) => mergeToFolder(ctx.lib.dirs[ctx.info.base], dir, ctx.scratchOut).merged_modules,
  },
  {
    name: 'lora-run.json (loadRunConfig + inspect --config)',
    seeds: (lib) => [
      { dir: lib.dirs['run-seqcls'], targets: ['lora-run.json'], weight: 3 },
      { dir: lib.dirs['run-causal'], targets: ['lora-run.json'] },
    ],
    run: async (dir) => {
      const file = path.join(dir, 'lora-run.json');
      loadRunConfig(file);
      await runInspect(undefined, { config: file }, quiet);
    },
  },
  {
    name: 'checkpoint (loadCheckpoint)',
    seeds: (lib) => [
      { dir: lib.dirs['checkpoint'], targets: ['trainer_state.json', 'trainer_state.json', 'trainer_state.json', 'rng_state.json', 'optimizer.safetensors', 'adapter_config.json'] },
    ],
    run: (dir) => loadCheckpoint(dir).state.global_step,
  },
  {
    name: 'tokenizer (loadTokenizer)',
    seeds: (lib) => [
      { dir: lib.dirs['tokenizer-tiny'], targets: ['tokenizer.json', 'tokenizer.json', 'tokenizer_config.json'], weight: 12 },
      ...(lib.fixtures ? [{ dir: lib.dirs['fixture-tokenizer'], targets: ['tokenizer.json'], weight: 1 }] : []),
    ],
    run: (dir) => {
      const t = loadTokenizer(dir);
      const ids = t.encode('Hello world, "quoted" text');
      t.decode(ids);
      return ids.length;
    },
  },
  dataReader('dataset JSONL', 'train.jsonl', ['seq-cls', 'causal-lm']),
  dataReader('dataset JSONL (string labels)', 'strings.jsonl', ['seq-cls']),
  dataReader('dataset JSON array', 'train.json', ['seq-cls', 'causal-lm']),
  dataReader('dataset CSV', 'train.csv', ['seq-cls', 'causal-lm']),
  dataReader('dataset TSV', 'train.tsv', ['seq-cls']),
  dataReader('dataset text', 'train.txt', ['causal-lm']),
  dataReader('dataset Parquet', 'train.parquet', ['seq-cls', 'causal-lm']),
  dataReader('dataset Parquet (ClassLabel metadata)', 'classlabel.parquet', ['seq-cls']),
];

export function readerByName(name: string): Reader {
  const r = READERS.find((x) => x.name === name);
  if (!r) throw new Error(`no fuzz reader named ${JSON.stringify(name)}; readers: ${READERS.map((x) => x.name).join(', ')}`);
  return r;
}
