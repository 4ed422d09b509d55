/**
 * Our side of `npm run bench`'s llama case, run as its own process (so its peak RSS is its own): SmolLM2-135M's
 * shapes with random weights (bench/llama_setup.ts), LoRA r=8 on q_proj and v_proj, causal-lm training steps as the
 * trainer runs them (the model from its family's createModel, data-parallel threads when planned, clipping, AdamW).
 * Prints one JSON line: tokens/s (median step) and peak RSS.
 * Usage: node dist/bench/ours_llama.js causal-lm <batch> <seq_len> <steps> [backend]   (bundled by bench/run.ts)
 */
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../trainer/backend';
import { familyFor } from '../trainer/models/registry';
import { collate } from '../trainer/data/collate';
import { AdamW, decayParameterNames } from '../trainer/train/optimizer';
import { clipByGlobalNorm } from '../trainer/train/clip';
import { DataParallel, localLossAndGrads, plannedWorkers } from '../trainer/parallel/pool';
import { benchExamples } from './setup';
import { benchLlamaDtype, llamaBenchSpec } from './llama_setup';

async function main(): Promise<void> {
  const [task, B, T, steps] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])];
  if (task !== 'causal-lm') throw new Error('ours_llama: only causal-lm');
  const info = await initBackend((process.argv[6] || 'wasm') as BackendName);
  const spec = llamaBenchSpec();
  const vocab = spec.config.vocab_size as number;
  const model = familyFor(spec.config).createModel(spec);
  spec.weights.clear();
  const threads = plannedWorkers(model, info.backend, B);
  const dp = await DataParallel.start(model, info.backend, threads);
  const optimizer = new AdamW(model.trainable, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0, decay: decayParameterNames([...model.trainable.keys()]) });
  const batch = collate(benchExamples(B, T, vocab, 3), model.pad_token_id);
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
    if (process.env.BENCH_VERBOSE) process.stderr.write(`bench llama: step ${i}${i === 0 ? ' (warm-up)' : ''} ${((performance.now() - t0) / 1000).toFixed(2)} s, loss ${loss.toFixed(4)}, rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB\n`);
  }
  await dp?.close();
  const sorted = [...times].sort((a, b) => a - b);
  const med = sorted[Math.floor(sorted.length / 2)];
  console.log(JSON.stringify({
    tokens_per_s: (B * T) / med, step_s: times, peak_rss_mb: peakRssMb(), threads: dp?.threads ?? 1,
    backend: info.backend, trainable: model.trainableParamCount(), loss, weights_dtype: benchLlamaDtype(),
  }));
  model.dispose();
}

/**
 * This process's own peak RSS (VmHWM; worker threads included): getrusage's maxRSS would start at the parent's RSS,
 * which a child inherits across fork + exec.
 */
function peakRssMb(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.existsSync('/proc/self/status') ? fs.readFileSync('/proc/self/status', 'utf8') : '');
  return (m ? Number(m[1]) : process.resourceUsage().maxRSS) / 1024;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
