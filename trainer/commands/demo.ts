/**
 * `lora-studio demo`, the built-in default job, offline: builds a small GPT-2-architecture model with
 * RANDOM weights (no pretrained weights can be downloaded here), writes a generated sentiment dataset
 * (2,000 training rows, 400 held-out rows), trains a LoRA adapter for sequence classification with the
 * seed recipe (r=4, the attention regex, AdamW at lr 1e-3), merges it, and checks that the merged model
 * gives the same eval accuracy as base + adapter. `--model` runs the same job on a real model of any family (GPT-2 with
 * the attention regex, the others with PEFT's default targets for their model_type).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeRandomGPT2 } from '../models/gpt2/random_init';
import { byteLevelTokenizerJson } from '../tokenizer/byte_level';
import { DEMO_WORDS, sentimentRows } from '../demo/sentiment';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic';
import { loadRunConfig } from '../config/run_config';
import { train } from '../train/trainer';
import { mergeToFolder } from './merge';
import { openModel } from '../train/session';
import { resolveModelDir } from '../io/hub_model';
import { evaluate, type SeqClsMetrics } from '../eval';
import { prepareData } from '../data/prepare';
import type { TrainEvent } from '../protocol';
import { LoraStudioError } from '../errors';
import { readModelConfig } from '../models/registry';
import { readWeightLayouts } from '../io/hf_folder';
import { relativeRef } from '../lora/base_model_ref';
import type { Output } from './output';

const SENTINEL = '.lora-studio-demo';
export const DEMO_TARGETS = 'transformer\\.h\\..*\\.attn\\.c_.*';

export interface DemoOptions {
  model?: string;
  workDir: string;
  epochs?: number;
  backend?: string;
  signal?: AbortSignal;
}

/** The demo's base model: 4 layers, 128 wide, one token a demo word; random weights (std 0.02, as GPT-2 is initialised). */
export function buildDemoBase(dir: string): void {
  const tokenizerJson = byteLevelTokenizerJson(DEMO_WORDS) as { model: { vocab: Record<string, number> } };
  writeRandomGPT2(dir, {
    task: 'causal-lm', seed: 1234, std: 0.02, tokenizerJson,
    config: { vocab_size: Object.keys(tokenizerJson.model.vocab).length, n_positions: 64, n_embd: 128, n_layer: 4, n_head: 4, resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.1 },
  });
}

export async function runDemoJob(o: DemoOptions, out: Output, onEvent: (e: TrainEvent) => void): Promise<void> {
  const work = path.resolve(o.workDir);
  if (fs.existsSync(work) && fs.readdirSync(work).length > 0 && !fs.existsSync(path.join(work, SENTINEL))) {
    throw new LoraStudioError('exists and was not made by the demo; choose another folder with --out (the demo deletes and rebuilds what is in its folder)', work, '--out');
  }
  fs.mkdirSync(work, { recursive: true });
  writeFileAtomic(path.join(work, SENTINEL), 'made by `lora-studio demo`; the demo may delete and rebuild what is in this folder\n');
  for (const d of ['run', 'merged']) fs.rmSync(path.join(work, d), { recursive: true, force: true });

  // --model: a local folder or a Hub id (downloaded to the cache). The run config names a local folder relative to
  // itself, so the adapter's base_model_name_or_path is relative too (to the adapter folder) and the demo folder can move.
  let model = o.model && (await resolveModelDir(fs.existsSync(o.model) ? path.resolve(o.model) : o.model, '--model', { log: out.info }));
  if (!model) {
    model = path.join(work, 'base');
    if (!fs.existsSync(path.join(model, 'model.safetensors'))) {
      fs.rmSync(model, { recursive: true, force: true });
      buildDemoBase(model);
      out.info(`built a GPT-2-architecture model with random weights in ${model}`);
    }
  }
  const toJsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  writeFileAtomic(path.join(work, 'data', 'train.jsonl'), toJsonl(sentimentRows(2000, 1)));
  writeFileAtomic(path.join(work, 'data', 'eval.jsonl'), toJsonl(sentimentRows(400, 2)));
  const configFile = path.join(work, 'lora-run.json');
  writeJsonAtomic(configFile, {
    model: path.isAbsolute(model) ? relativeRef(work, model) : model, task: 'seq-cls', num_labels: 2,
    data: { train: 'data/train.jsonl', eval: 'data/eval.jsonl', text_column: 'text', label_column: 'label', max_length: 32 },
    // GPT-2: the seed recipe's attention regex; another family (a Llama-family --model): PEFT's default for it (null)
    lora: { r: 4, lora_alpha: 8, lora_dropout: 0.0, target_modules: readModelConfig(model).config.model_type === 'gpt2' ? DEMO_TARGETS : null, modules_to_save: ['score'] },
    training: {
      output_dir: 'run', eval_on_start: true, num_train_epochs: o.epochs ?? 3, per_device_train_batch_size: 32, per_device_eval_batch_size: 100,
      learning_rate: 1e-3, weight_decay: 1e-5, lr_scheduler_type: 'linear', warmup_ratio: 0, eval_strategy: 'epoch', save_strategy: 'epoch',
      save_total_limit: 2, logging_steps: 10, load_best_model_at_end: true, metric_for_best_model: 'accuracy', seed: 42,
      ...(o.backend ? { backend: o.backend } : {}),
    },
  });
  out.info(`run config: ${configFile}`);
  const cfg = loadRunConfig(configFile);
  const done = await train(cfg, { onEvent, signal: o.signal, configFile });
  if (done.stopped) return;

  const mergedDir = path.join(work, 'merged');
  const merged = mergeToFolder(model, cfg.training.output_dir, mergedDir);
  merged.warnings.forEach((w) => out.warn(w));
  out.info(`merged ${merged.merged_modules} LoRA modules into ${mergedDir}`);

  const accuracyOf = async (modelDir: string, adapterDir?: string) => {
    const m = await openModel({ modelDir, adapterDir, task: 'seq-cls', backend: o.backend });
    try {
      const data = await prepareData({ ...cfg.data, train: path.join(work, 'data', 'eval.jsonl'), eval: null, eval_split: 0 }, 'seq-cls', m.tokenizer,
        { seed: 0, eos_token_id: m.family.eosTokenId(m.loaded.config), num_labels: 2 });
      return (await evaluate(m.model, data.train, { batch_size: 100, pad_token_id: m.pad_token_id })) as SeqClsMetrics;
    } finally {
      m.model.dispose();
    }
  };
  const withAdapter = await accuracyOf(model, cfg.training.output_dir);
  const fromMerged = await accuracyOf(mergedDir);
  // An F32 base merges exactly. A 16-bit base stores the merged weights rounded to its dtype (as PEFT's
  // merge_and_unload + save_pretrained do), so an example at a near tie may flip: up to 1 % of them, loss within 1e-4.
  const sixteenBit = [...readWeightLayouts(model).files.values()].some((f) => [...f.entries.values()].some((e) => e.dtype !== 'F32'));
  const accuracyTolerance = sixteenBit ? 0.01 : 1e-9;
  const same = Math.abs(withAdapter.accuracy - fromMerged.accuracy) <= accuracyTolerance && Math.abs(withAdapter.loss - fromMerged.loss) < 1e-4;
  out.info(`eval accuracy, base + adapter: ${withAdapter.accuracy.toFixed(4)} (loss ${withAdapter.loss.toFixed(6)})`);
  out.info(`eval accuracy, merged model:   ${fromMerged.accuracy.toFixed(4)} (loss ${fromMerged.loss.toFixed(6)}) ${same ? (sixteenBit ? '— the same, within the rounding of 16-bit weights' : '— the same') : '— DIFFERENT'}`);
  out.result({ event: 'demo', adapter_dir: cfg.training.output_dir, merged_dir: mergedDir, adapter_accuracy: withAdapter.accuracy, merged_accuracy: fromMerged.accuracy, adapter_loss: withAdapter.loss, merged_loss: fromMerged.loss, same });
  if (!same) throw new LoraStudioError('the merged model does not reproduce base + adapter (this is a bug; please report it)', mergedDir);
}
