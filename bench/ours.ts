/**
 * Our side of `npm run bench`, run as its own process (so its peak RSS is its own): GPT-2 small shapes with
 * random weights, LoRA r=8 on c_attn and attn.c_proj, training steps as the trainer runs them (data-parallel
 * threads when planned, clipping, AdamW). Prints one JSON line: tokens/s (median step) and peak RSS.
 * Usage: node --import tsx bench/ours.ts <causal-lm|seq-cls> <batch> <seq_len> <steps>
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../trainer/backend';
import { GPT2LoraModel } from '../trainer/models/gpt2/model';
import { collate } from '../trainer/data/collate';
import { AdamW, decayParameterNames } from '../trainer/train/optimizer';
import { clipByGlobalNorm } from '../trainer/train/clip';
import { DataParallel, localLossAndGrads, plannedWorkers } from '../trainer/parallel/pool';
import type { Task } from '../trainer/task';
import { benchExamples, benchSpec } from './setup';

async function main(): Promise<void> {
  const [task, B, T, steps] = [process.argv[2] as Task, Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])];
  const info = await initBackend();
  const spec = benchSpec(task);
  const model = GPT2LoraModel.create(spec);
  spec.weights.clear();
  const threads = plannedWorkers(model, info.backend);
  const dp = await DataParallel.start(model, info.backend, threads);
  const optimizer = new AdamW(model.trainable, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0, decay: decayParameterNames([...model.trainable.keys()]) });
  const batch = collate(benchExamples(B, T, model.config.vocab_size, 3), model.config.eos_token_id);
  const times: number[] = [];
  let loss = 0;
  for (let i = 0; i <= steps; i++) {
    const t0 = performance.now();
    const r = dp ? await dp.lossAndGrads(batch, i) : localLossAndGrads(model, batch, { seed: i });
    const { grads } = await clipByGlobalNorm(r.grads, 1.0);
    optimizer.step(grads, 1e-4);
    tf.dispose([...grads.values(), ...r.grads.values()].filter((g) => !g.isDisposed));
    loss = r.loss;
    if (i > 0) times.push((performance.now() - t0) / 1000);
  }
  await dp?.close();
  const sorted = [...times].sort((a, b) => a - b);
  const med = sorted[Math.floor(sorted.length / 2)];
  console.log(JSON.stringify({ tokens_per_s: (B * T) / med, step_s: times, peak_rss_mb: process.resourceUsage().maxRSS / 1024, threads: dp?.threads ?? 1, backend: info.backend, loss }));
  model.dispose();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
