/**
 * Minimal inputs for the bug classes the fuzz campaign found (issue 11), one line each. Every case starts from a
 * valid seed folder, changes one thing, and runs through a reader of readers.ts. By default it must end in a
 * LoraStudioError naming `file` (its basename) whose describe() mentions `field`, within the watchdog's time.
 * `expect: 'read'` cases must read without error; `check` looks at a successful result.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { PreparedData } from '../../../trainer/data/types';
import { deepObjectText } from './mutate';
import { seqClsRows, type SeedLibrary } from './seeds';
import { writeParquet } from '../../util/parquet_writer';

export interface RegressionCase {
  name: string;
  /** a reader name from readers.ts */
  reader: string;
  seed(lib: SeedLibrary): string;
  /** changes the copy of the seed */
  build(dir: string, lib: SeedLibrary): void;
  /** the file the error must name (basename) */
  file: string;
  /** what describe() must mention */
  field: string;
  expect?: 'error' | 'read' | 'read-or-error';
  /** for a successful read: a problem with the result, or null */
  check?(result: unknown): string | null;
  /** RunContext.index (data readers pick task and options by it) */
  index?: number;
  info?: Record<string, string>;
}

const DEEP = '\u0000DEEP\u0000';

function editJson(file: string, edit: (v: Record<string, unknown>) => void): void {
  const v = JSON.parse(fs.readFileSync(file, 'utf8').replace(/^\ufeff/, '')) as Record<string, unknown>;
  edit(v);
  fs.writeFileSync(file, JSON.stringify(v, null, 2).split(JSON.stringify(DEEP)).join(deepObjectText()));
}

function setPath(v: Record<string, unknown>, dotted: string, value: unknown): void {
  const keys = dotted.split('.');
  let o = v;
  for (const k of keys.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
  Object.defineProperty(o, keys[keys.length - 1], { value, enumerable: true, writable: true, configurable: true });
}

function editSafetensorsHeader(file: string, edit: (h: Record<string, unknown>) => void): void {
  const buf = fs.readFileSync(file);
  const len = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + len).toString('utf8')) as Record<string, unknown>;
  edit(header);
  const text = Buffer.from(JSON.stringify(header));
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(text.length));
  fs.writeFileSync(file, Buffer.concat([lenBuf, text, buf.subarray(8 + len)]));
}

const bom = (file: string) => fs.writeFileSync(file, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), fs.readFileSync(file)]));
const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

const ADAPTER = 'adapter (loadAdapter)';
const MERGE = 'merge (mergeToFolder)';
const CONFIG = 'config.json (inspect)';
const FOLDER = 'model folder (loadModelFolder)';
const RUN = 'lora-run.json (loadRunConfig + inspect --config)';
const CKPT = 'checkpoint (loadCheckpoint)';
const DATA = 'dataset JSONL (string labels)';

function adapterCfg(name: string, key: string, value: unknown, field = key.split('.').pop()!): RegressionCase {
  return { name, reader: ADAPTER, seed: (l) => l.dirs['adapter-seqcls'], build: (d) => editJson(path.join(d, 'adapter_config.json'), (v) => setPath(v, key, value)), file: 'adapter_config.json', field };
}
function modelCfg(name: string, key: string, value: unknown, reader = FOLDER, seed = 'model-seqcls'): RegressionCase {
  return { name, reader, seed: (l) => l.dirs[seed], build: (d) => editJson(path.join(d, 'config.json'), (v) => setPath(v, key, value)), file: 'config.json', field: key.split('.').pop()! };
}
function runCfg(name: string, key: string, value: unknown, field = key.split('.').pop()!): RegressionCase {
  return { name, reader: RUN, seed: (l) => l.dirs['run-seqcls'], build: (d) => editJson(path.join(d, 'lora-run.json'), (v) => setPath(v, key, value)), file: 'lora-run.json', field };
}
function state(name: string, key: string, value: unknown): RegressionCase {
  return { name, reader: CKPT, seed: (l) => l.dirs['checkpoint'], build: (d) => editJson(path.join(d, 'trainer_state.json'), (v) => setPath(v, key, value)), file: 'trainer_state.json', field: key };
}
function metadata(name: string, key: string, value: string): RegressionCase {
  return {
    name, reader: MERGE, seed: (l) => l.dirs['adapter-seqcls'], info: { base: 'model-seqcls' }, file: 'adapter_model.safetensors', field: key,
    build: (d) => editSafetensorsHeader(path.join(d, 'adapter_model.safetensors'), (h) => ((h.__metadata__ as Record<string, string>)[key] = value)),
  };
}
function data(name: string, rows: unknown[], index: number, field: string, extra: Partial<RegressionCase> = {}): RegressionCase {
  return { name, reader: DATA, seed: (l) => l.dirs['data'], build: (d) => fs.writeFileSync(path.join(d, 'strings.jsonl'), jsonl(rows)), file: 'strings.jsonl', field, index, ...extra };
}

export const CASES: RegressionCase[] = [
  // regular expressions from users: syntax errors and catastrophic backtracking
  adapterCfg('adapter_config.json rank_pattern {"(": 4}', 'rank_pattern', { '(': 4 }),
  adapterCfg('adapter_config.json rank_pattern {"(.*)*X": 4}', 'rank_pattern', { '(.*)*X': 4 }),
  runCfg('lora-run.json lora.rank_pattern {"(": 4}', 'lora.rank_pattern', { '(': 4 }),
  runCfg('lora-run.json lora.rank_pattern {"(.*)*X": 4}', 'lora.rank_pattern', { '(.*)*X': 4 }),
  runCfg('lora-run.json lora.target_modules "(.*)*X"', 'lora.target_modules', '(.*)*X'),
  // the seq-cls label names in the adapter's safetensors metadata
  metadata('adapter metadata id2label "{bad" (merge)', 'id2label', '{bad'),
  metadata('adapter metadata id2label "5" (merge)', 'id2label', '5'),
  metadata('adapter metadata label2id "{bad" (merge)', 'label2id', '{bad'),
  // values nested 5,000 deep
  modelCfg('config.json with a value nested 5,000 deep', 'task_specific_params', DEEP, CONFIG, 'model-causal'),
  adapterCfg('adapter_config.json with a value nested 5,000 deep', 'eva_config', DEEP),
  runCfg('lora-run.json with a value nested 5,000 deep', 'lora.loftq_config', DEEP, 'loftq_config'),
  // trainer_state.json of a checkpoint
  state('trainer_state.json log_history: null', 'log_history', null),
  state('trainer_state.json best_model_checkpoint: 123', 'best_model_checkpoint', 123),
  state('trainer_state.json global_step: 1.5', 'global_step', 1.5),
  state('trainer_state.json global_step: "abc"', 'global_step', 'abc'),
  state('trainer_state.json global_step: -5', 'global_step', -5),
  state('trainer_state.json global_step: []', 'global_step', []),
  // config.json sizes and types
  modelCfg('config.json n_layer 2**31', 'n_layer', 2 ** 31, CONFIG, 'model-causal'),
  modelCfg('config.json n_layer 1e6', 'n_layer', 1e6, CONFIG, 'model-causal'),
  modelCfg('config.json num_labels 5e6', 'num_labels', 5e6),
  modelCfg('config.json pad_token_id false', 'pad_token_id', false),
  modelCfg('config.json eos_token_id "gpt2"', 'eos_token_id', 'gpt2'),
  modelCfg('config.json label2id 0', 'label2id', 0),
  runCfg('lora-run.json training.num_train_epochs 1e300', 'training.num_train_epochs', 1e300),
  adapterCfg('adapter_config.json use_dora 1', 'use_dora', 1),
  adapterCfg('adapter_config.json lora_bias 1', 'lora_bias', 1),
  // a BOM is accepted (trainer/io/json.ts): the file reads as without it
  { name: 'config.json with a BOM reads', reader: FOLDER, seed: (l) => l.dirs['model-seqcls'], build: (d) => bom(path.join(d, 'config.json')), file: 'config.json', field: '', expect: 'read' },
  { name: 'adapter_config.json with a BOM reads', reader: ADAPTER, seed: (l) => l.dirs['adapter-seqcls'], build: (d) => bom(path.join(d, 'adapter_config.json')), file: 'adapter_config.json', field: '', expect: 'read' },
  // datasets
  data('label "__proto__" is a label like any other', seqClsRows(6, true).map((r, i) => ({ ...r, label: i % 2 ? '__proto__' : 'constructor' })), 2, 'label', {
    expect: 'read-or-error',
    check: (res) => {
      const d = res as PreparedData;
      const names = Object.values(d.id2label ?? {}).sort();
      if (names.join() !== '__proto__,constructor') return `id2label is ${JSON.stringify(d.id2label)}, not the two labels`;
      const ids = new Set(d.train.map((e) => e.label));
      if (ids.size !== 2 || [...ids].some((x) => !Number.isInteger(x))) return `example labels are ${JSON.stringify([...ids])}`;
      return null;
    },
  }),
  // valid data that crashed training (Math.max(...labels) overflowed the stack): it must read, with both labels
  data('130,000 rows with integer labels in a seq-cls dataset', Array.from({ length: 130_000 }, (_, i) => ({ text: i % 2 ? 'red yes' : 'blue no', label: i % 2 })), 2, 'label', {
    expect: 'read',
    check: (res) => {
      const d = res as PreparedData;
      if (d.train.length + d.eval.length !== 130_000) return `${d.train.length + d.eval.length} examples, not 130,000`;
      const ids = new Set(d.train.map((e) => e.label));
      return ids.size === 2 && ids.has(0) && ids.has(1) ? null : `example labels are ${JSON.stringify([...ids])}`;
    },
  }),
  data('object labels', seqClsRows(6, false).map((r) => ({ ...r, label: { a: 1 } })), 1, 'label'),
  {
    name: 'corrupt Parquet footer (length 0xffffffff)', reader: 'dataset Parquet', seed: (l) => l.dirs['data'], file: 'train.parquet', field: 'data.train', index: 0,
    build: (d) => {
      const buf = writeParquet([{ name: 'text', type: 'string', values: ['a b', 'c d'] }, { name: 'label', type: 'int64', values: [0, 1] }]);
      buf.writeUInt32LE(0xffffffff, buf.length - 8);
      fs.writeFileSync(path.join(d, 'train.parquet'), buf);
    },
  },
  {
    name: 'a FIFO as the data file', reader: DATA, seed: (l) => l.dirs['data'], file: 'strings.jsonl', field: 'data.train', index: 2,
    build: (d) => {
      fs.rmSync(path.join(d, 'strings.jsonl'));
      execFileSync('mkfifo', [path.join(d, 'strings.jsonl')]);
    },
  },
];
