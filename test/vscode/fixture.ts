/**
 * The workspace the VS Code suites open: a tiny GPT-2 (random weights, Hugging Face folder layout), a little
 * causal-lm text set, and two run configs that use them. Written by the session runner before code-server
 * starts, into a scratch folder, so every session begins from the same files.
 *
 * - `lora-run.json`: a short run (2 epochs × 4 steps), a checkpoint per epoch; targets start as ["c_attn"].
 * - `long.lora-run.json`: a long run (1,200 steps) to stop, resume and crash while it is going.
 * - `llama/` and `llama.lora-run.json`: a tiny random Llama (test/util/llama_folder.ts: 2 layers, hidden 32, 4 heads,
 *   2 KV heads, untied lm_head) and a short run on it (1 epoch × 4 steps); targets start as ["o_proj"].
 *
 * The end-to-end variant (`e2e: true`) has one run config, `lora-run.json`, for a run of 8,000 steps that names
 * no model yet: opening the model in the UI fills in "model" and the targets.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeRandomGPT2 } from '../../trainer/models/gpt2/random_init';
import { writeLlamaFolder } from '../util/llama_folder';

/** What the suites read back from the fixture (also passed to the tests in the environment). */
export interface Fixture {
  workspace: string;
  modelDir: string;
  shortConfig: string;
  longConfig: string;
  /** the tiny Llama and its run config (absent in the end-to-end variant) */
  llamaDir?: string;
  llamaConfig?: string;
}

/** Steps of the short run: 32 rows, batch 8, 2 epochs. */
export const SHORT_RUN_STEPS = 8;

const WORDS = ['red', 'blue', 'tall', 'small', 'cat', 'dog', 'sun', 'rain', 'yes', 'no', 'river', 'stone'];

function rows(n: number, offset: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    const k = i + offset;
    return JSON.stringify({ text: [0, 1, 2, 3, 4].map((j) => WORDS[(k * (j + 3) + j) % WORDS.length]).join(' ') });
  });
}

export function writeFixture(workspace: string, opts: { e2e?: boolean } = {}): Fixture {
  fs.mkdirSync(workspace, { recursive: true });
  const modelDir = path.join(workspace, 'model');
  // causal-lm, 2 layers, n_embd 32: every module name of GPT2LMHeadModel, in a few kB
  writeRandomGPT2(modelDir, { seed: 5, std: 0.05, task: 'causal-lm' });
  fs.writeFileSync(path.join(workspace, 'train.jsonl'), rows(32, 0).join('\n') + '\n');
  fs.writeFileSync(path.join(workspace, 'eval.jsonl'), rows(8, 100).join('\n') + '\n');

  const base = {
    model: './model',
    task: 'causal-lm',
    data: { train: 'train.jsonl', eval: 'eval.jsonl', max_length: 16 },
    lora: { r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ['c_attn'] },
  };
  const shortConfig = path.join(workspace, 'lora-run.json');
  const longConfig = path.join(workspace, 'long.lora-run.json');
  if (opts.e2e) {
    const { model: _model, lora, ...rest } = base;
    fs.writeFileSync(shortConfig, JSON.stringify({
      ...rest,
      lora: { r: lora.r, lora_alpha: lora.lora_alpha, lora_dropout: lora.lora_dropout },
      training: {
        output_dir: 'runs/e2e', num_train_epochs: 1000, per_device_train_batch_size: 4, learning_rate: 1e-3, logging_steps: 1,
        eval_strategy: 'no', save_strategy: 'steps', save_steps: 1000, seed: 4, backend: 'wasm',
      },
    }, null, 2) + '\n');
    return { workspace, modelDir, shortConfig, longConfig: shortConfig };
  }
  fs.writeFileSync(shortConfig, JSON.stringify({
    ...base,
    training: {
      output_dir: 'runs/short', num_train_epochs: 2, per_device_train_batch_size: 8, per_device_eval_batch_size: 8,
      learning_rate: 5e-3, logging_steps: 1, eval_strategy: 'epoch', save_strategy: 'epoch', seed: 1, backend: 'wasm',
    },
  }, null, 2) + '\n');
  fs.writeFileSync(longConfig, JSON.stringify({
    ...base,
    training: {
      output_dir: 'runs/long', num_train_epochs: 150, per_device_train_batch_size: 4, per_device_eval_batch_size: 8,
      learning_rate: 1e-3, logging_steps: 1, eval_strategy: 'no', save_strategy: 'steps', save_steps: 50, save_total_limit: 2, seed: 2,
      backend: 'wasm',
    },
  }, null, 2) + '\n');
  const llamaDir = path.join(workspace, 'llama');
  writeLlamaFolder(llamaDir, { model_type: 'llama', seed: 7, std: 0.05 });
  const llamaConfig = path.join(workspace, 'llama.lora-run.json');
  fs.writeFileSync(llamaConfig, JSON.stringify({
    ...base,
    model: './llama',
    lora: { ...base.lora, target_modules: ['o_proj'] },
    training: {
      output_dir: 'runs/llama', num_train_epochs: 1, per_device_train_batch_size: 8, per_device_eval_batch_size: 8,
      learning_rate: 5e-3, logging_steps: 1, eval_strategy: 'epoch', save_strategy: 'no', seed: 3, backend: 'wasm',
    },
  }, null, 2) + '\n');
  return { workspace, modelDir, shortConfig, longConfig, llamaDir, llamaConfig };
}
