/**
 * Valid seed inputs for the fuzzer, built by the project's own writers in a scratch folder: tiny GPT-2 model folders
 * (single file and sharded, causal-lm and seq-cls), PEFT adapters, a run config, a checkpoint, and datasets in every
 * format. The real files of ../shared/fixtures (two PEFT adapters, GPT-2's tokenizer.json) are added when present.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TINY_CONFIG, writeRandomGPT2 } from '../../../trainer/models/gpt2/random_init';
import { gpt2WeightShapes } from '../../../trainer/models/gpt2/weights';
import { loadAdapter, saveAdapter } from '../../../trainer/lora/adapter_io';
import { saveCheckpoint, type TrainerState } from '../../../trainer/train/checkpoint';
import type { HostTensor } from '../../../trainer/io/safetensors';
import { GPT2_DEFAULTS, type GPT2Config } from '../../../trainer/models/gpt2/config';
import { Rng } from '../../../trainer/util/rng';
import { randomAdapter } from '../io/helpers';
import { writeParquet } from '../../util/parquet_writer';

export const FIXTURES = path.resolve(__dirname, '..', '..', '..', '..', 'shared', 'fixtures');
export const FIXTURES_PRESENT = fs.existsSync(FIXTURES);
export const FIXTURES_ABSENT_MESSAGE = '../shared/fixtures is absent: the seeds from real PEFT adapters and GPT-2\'s tokenizer.json are skipped';

/** The tiny model every seed is built around (16 wide, 2 layers, 257-token byte-level vocabulary). */
export const TINY: Partial<GPT2Config> = { n_embd: 16, n_head: 2, n_layer: 2, n_positions: 32 };

/** What the mutators should treat a file as. */
export type FileKind = 'json' | 'jsonl' | 'csv' | 'tsv' | 'text' | 'safetensors' | 'parquet';

export function kindOf(file: string): FileKind {
  if (file.endsWith('.safetensors')) return 'safetensors';
  if (file.endsWith('.parquet')) return 'parquet';
  if (file.endsWith('.jsonl')) return 'jsonl';
  if (file.endsWith('.json')) return 'json';
  if (file.endsWith('.csv')) return 'csv';
  if (file.endsWith('.tsv')) return 'tsv';
  return 'text';
}

/** The seed library: named folders under `root`. */
export interface SeedLibrary {
  root: string;
  /** folder name → absolute path */
  dirs: Record<string, string>;
  fixtures: boolean;
}

const TOKENIZER_CONFIG = {
  add_prefix_space: false, bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>',
  model_max_length: 1024, tokenizer_class: 'GPT2Tokenizer', clean_up_tokenization_spaces: false,
};

function writeJson(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(value, null, 2));
}

function tinyModel(dir: string, task: 'causal-lm' | 'seq-cls', shards = 1): void {
  writeRandomGPT2(dir, { task, num_labels: 2, seed: 5, std: 0.05, shards, config: TINY });
  writeJson(path.join(dir, 'tokenizer_config.json'), TOKENIZER_CONFIG);
}

function tinyAdapter(dir: string, task: 'causal-lm' | 'seq-cls', labels: boolean): void {
  const config = { model_type: 'gpt2', ...GPT2_DEFAULTS, ...TINY_CONFIG, ...TINY } as GPT2Config;
  const shapes = gpt2WeightShapes(config, task, 2);
  const modules = ['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_attn', 'transformer.h.0.mlp.c_proj', 'transformer.h.1.mlp.c_proj'];
  const adapter = randomAdapter(shapes, modules, task, { r: 2, lora_alpha: 4, modules_to_save: task === 'seq-cls' ? ['score'] : null, rank_pattern: { 'h.1.mlp.c_proj': 3 }, alpha_pattern: { c_attn: 8 } }, 3);
  if (task === 'seq-cls') {
    const rng = new Rng(9);
    const data = new Float32Array(2 * 16).map(() => 0.1 * rng.normal());
    adapter.extra.set('score.weight', { shape: [2, 16], data, dtype: 'F32' });
  }
  if (labels) adapter.metadata = { id2label: JSON.stringify({ 0: 'neg', 1: 'pos' }), label2id: JSON.stringify({ neg: 0, pos: 1 }) };
  saveAdapter(dir, adapter);
}

function checkpoint(outputDir: string): string {
  const adapterDir = path.join(outputDir, '..', 'ck-adapter');
  tinyAdapter(adapterDir, 'seq-cls', true);
  // the adapter as saveAdapter wrote it, read back through the folder so the checkpoint holds the same bytes
  const adapter = loadAdapter(adapterDir);
  fs.rmSync(adapterDir, { recursive: true, force: true });
  const tensors = new Map<string, HostTensor>();
  for (const [m, { A, B }] of adapter.lora) {
    for (const [n, t] of [['A', A], ['B', B]] as const) {
      tensors.set(`${m}.lora_${n}.exp_avg`, { shape: t.shape, data: new Float32Array(t.data.length).fill(0.01), dtype: 'F32' });
      tensors.set(`${m}.lora_${n}.exp_avg_sq`, { shape: t.shape, data: new Float32Array(t.data.length).fill(0.001), dtype: 'F32' });
    }
  }
  const state: TrainerState = {
    global_step: 4, epoch: 1, max_steps: 8, num_train_epochs: 2, logging_steps: 1, eval_steps: null, save_steps: null, train_batch_size: 8,
    best_metric: 0.75, best_model_checkpoint: path.join(outputDir, 'checkpoint-4'),
    log_history: [{ loss: 0.69, learning_rate: 0.001, epoch: 0.25, step: 1 }, { eval_accuracy: 0.75, epoch: 1, step: 4 }],
    num_input_tokens_seen: 512, total_flos: 0, is_local_process_zero: true, is_world_process_zero: true, is_hyper_param_search: false,
    trial_name: null, trial_params: null,
  };
  return saveCheckpoint(outputDir, { adapter, optimizer: { tensors, metadata: { step: '4' } }, rng: { seed: 3, global_step: 4, epoch: 1, backend: 'cpu' }, state }, { model: './model' });
}

const WORDS = ['red', 'blue', 'tall', 'small', 'cat', 'dog', 'sun', 'rain'];
export function seqClsRows(n: number, stringLabels: boolean): Array<{ text: string; label: number | string }> {
  return Array.from({ length: n }, (_, i) => ({ text: `${WORDS[i % 8]} ${i % 2 ? 'yes' : 'no'} ${WORDS[(i * 3) % 8]}`, label: stringLabels ? (i % 2 ? 'pos' : 'neg') : i % 2 }));
}

const csvCell = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

function datasets(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const rows = seqClsRows(12, false);
  const srows = seqClsRows(12, true);
  fs.writeFileSync(path.join(dir, 'train.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'strings.jsonl'), srows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'train.json'), JSON.stringify(srows, null, 1));
  fs.writeFileSync(path.join(dir, 'train.csv'), 'text,label\n' + rows.map((r) => `${csvCell(`${r.text}, "quoted"`)},${r.label}`).join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'train.tsv'), 'text\tlabel\n' + srows.map((r) => `${r.text}\t${r.label}`).join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'train.txt'), rows.map((r) => r.text).join('\n') + '\n');
  fs.writeFileSync(
    path.join(dir, 'train.parquet'),
    writeParquet([{ name: 'text', type: 'string', values: rows.map((r) => r.text) }, { name: 'label', type: 'int64', values: rows.map((r) => r.label as number) }]),
  );
  fs.writeFileSync(
    path.join(dir, 'classlabel.parquet'),
    writeParquet([{ name: 'text', type: 'string', values: rows.map((r) => r.text) }, { name: 'label', type: 'int64', values: rows.map((r) => r.label as number) }], {
      huggingface: JSON.stringify({ info: { features: { text: { dtype: 'string', _type: 'Value' }, label: { names: ['neg', 'pos'], _type: 'ClassLabel' } } } }),
    }),
  );
}

export function runConfigJson(task: 'causal-lm' | 'seq-cls'): Record<string, unknown> {
  return {
    model: './model', task, ...(task === 'seq-cls' ? { num_labels: 2 } : {}),
    data: { train: 'train.jsonl', eval: null, text_column: 'text', label_column: 'label', max_length: 16, eval_split: 0 },
    lora: { r: 2, lora_alpha: 4, lora_dropout: 0, target_modules: ['c_attn', 'c_proj'], rank_pattern: { 'h.0.attn.c_attn': 4 }, alpha_pattern: {}, modules_to_save: task === 'seq-cls' ? ['score'] : null },
    training: {
      output_dir: 'out', num_train_epochs: 1, max_steps: 1, per_device_train_batch_size: 4, learning_rate: 1e-3, lr_scheduler_type: 'linear',
      eval_strategy: 'no', save_strategy: 'no', logging_steps: 1, seed: 3, backend: 'cpu',
    },
  };
}

/** A run folder: lora-run.json, ./model (tiny), train.jsonl. */
function runFolder(dir: string, task: 'causal-lm' | 'seq-cls'): void {
  tinyModel(path.join(dir, 'model'), task);
  const rows = seqClsRows(8, false);
  fs.writeFileSync(path.join(dir, 'train.jsonl'), rows.map((r) => JSON.stringify(task === 'seq-cls' ? r : { text: r.text })).join('\n') + '\n');
  writeJson(path.join(dir, 'lora-run.json'), runConfigJson(task));
}

/** Builds every seed under `root` (deterministic: the same bytes each time). */
export function buildSeeds(root: string): SeedLibrary {
  fs.mkdirSync(root, { recursive: true });
  const dirs: Record<string, string> = {};
  const at = (name: string) => (dirs[name] = path.join(root, name));
  tinyModel(at('model-causal'), 'causal-lm');
  tinyModel(at('model-seqcls'), 'seq-cls');
  tinyModel(at('model-sharded'), 'causal-lm', 3);
  tinyAdapter(at('adapter-causal'), 'causal-lm', false);
  tinyAdapter(at('adapter-seqcls'), 'seq-cls', true);
  runFolder(at('run-seqcls'), 'seq-cls');
  runFolder(at('run-causal'), 'causal-lm');
  dirs['checkpoint'] = checkpoint(path.join(root, 'ckpt-out'));
  datasets(at('data'));
  const tok = at('tokenizer-tiny');
  fs.mkdirSync(tok, { recursive: true });
  fs.copyFileSync(path.join(dirs['model-causal'], 'tokenizer.json'), path.join(tok, 'tokenizer.json'));
  fs.copyFileSync(path.join(dirs['model-causal'], 'tokenizer_config.json'), path.join(tok, 'tokenizer_config.json'));
  const fixtures = FIXTURES_PRESENT;
  if (fixtures) {
    dirs['fixture-adapter-causal'] = path.join(FIXTURES, 'peft-adapters', 'causal-gpt2-r8');
    dirs['fixture-adapter-seqcls'] = path.join(FIXTURES, 'peft-adapters', 'seqcls-gpt2-r8');
    dirs['fixture-tokenizer'] = path.join(FIXTURES, 'gpt2-tokenizer');
  }
  return { root, dirs, fixtures };
}
