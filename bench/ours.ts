/**
 * Our side of `npm run bench`, run as its own process (so its peak RSS is its own): GPT-2 small shapes with
 * random weights, LoRA r=8 on c_attn and attn.c_proj, training steps as the trainer runs them (data-parallel
 * threads when planned, clipping, AdamW). Prints one JSON line: tokens/s (median step) and peak RSS.
 * Usage: node --import tsx bench/ours.ts <causal-lm|seq-cls> <batch> <seq_len> <steps> [backend]
 * With a backend (e.g. webgpu), only that one is tried. On webgpu a step is timed up to reading its loss, its
 * gradient norm and one updated LoRA factor (GPU work is queued, so the read is where it finishes), and the line
 * also gives the adapter and GPU memory as tfjs counts it: `gpu_peak_mb`, the largest size of tfjs-webgpu's
 * buffer pool seen after a step (buffers in use plus freed ones kept for reuse; the pool only grows, so this is its
 * high-water mark), and `tensors_mb`, the bytes of live tensors after the last step (tf.memory().numBytes:
 * weights, LoRA factors, optimizer state). Neither includes Dawn's or the driver's own allocations.
 * BENCH_VOCAB=<n> cuts the vocabulary; BENCH_DROPOUT=0 turns every dropout off.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../trainer/backend';
import { GPT2LoraModel } from '../trainer/models/gpt2/model';
import { collate } from '../trainer/data/collate';
import { AdamW, decayParameterNames } from '../trainer/train/optimizer';
import { clipByGlobalNorm } from '../trainer/train/clip';
import { DataParallel, localLossAndGrads, plannedWorkers } from '../trainer/parallel/pool';
import type { Task } from '../trainer/task';
import { benchExamples, benchSpec, smallConfig } from './setup';
import type { BackendName } from '../trainer/backend';

/** what tf.memory() adds on webgpu (tfjs-backend-webgpu's memory()) */
interface WebGpuMemory {
  numBytes: number;
  numBytesAllocatedInGPU?: number;
}

async function main(): Promise<void> {
  const [task, B, T, steps] = [process.argv[2] as Task, Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])];
  const preferred = (process.argv[6] || undefined) as BackendName | undefined;
  const info = await initBackend(preferred);
  const onGpu = info.backend === 'webgpu';
  // BENCH_VOCAB: a smaller vocabulary, for adapters whose storage-buffer binding limit is under GPT-2's 147 MiB wte
  // (llvmpipe: 128 MiB); everything else stays GPT-2 small
  const vocab = Number(process.env.BENCH_VOCAB ?? 0) || undefined;
  // BENCH_DROPOUT=0: no dropout anywhere (masks are made on the host; this shows what they cost on a GPU)
  const noDropout = process.env.BENCH_DROPOUT === '0';
  const spec = benchSpec(task, smallConfig({ ...(vocab ? { vocab_size: vocab } : {}), ...(noDropout ? { attn_pdrop: 0, resid_pdrop: 0, embd_pdrop: 0 } : {}) }));
  if (noDropout) spec.lora_dropout = 0;
  const model = GPT2LoraModel.create(spec);
  spec.weights.clear();
  const threads = plannedWorkers(model, info.backend, B);
  const dp = await DataParallel.start(model, info.backend, threads);
  const optimizer = new AdamW(model.trainable, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0, decay: decayParameterNames([...model.trainable.keys()]) });
  const batch = collate(benchExamples(B, T, model.config.vocab_size, 3), model.config.eos_token_id);
  const times: number[] = [];
  let loss = 0;
  let gpuPeak = 0;
  const firstFactor = [...model.trainable.values()][0];
  for (let i = 0; i <= steps; i++) {
    const t0 = performance.now();
    const r = dp ? await dp.lossAndGrads(batch, i) : onGpu ? await gpuLossAndGrads(model, batch, i) : localLossAndGrads(model, batch, { seed: i });
    const { grads } = await clipByGlobalNorm(r.grads, 1.0);
    optimizer.step(grads, 1e-4);
    tf.dispose([...grads.values(), ...r.grads.values()].filter((g) => !g.isDisposed));
    if (onGpu) await firstFactor.data();
    loss = r.loss;
    if (i > 0) times.push((performance.now() - t0) / 1000);
    if (onGpu) gpuPeak = Math.max(gpuPeak, (tf.memory() as WebGpuMemory).numBytesAllocatedInGPU ?? 0);
    if (preferred) process.stderr.write(`bench: ${info.backend} ${task} ${B}×${T} step ${i}${i === 0 ? ' (warm-up, not timed)' : ''}: ${((performance.now() - t0) / 1000).toFixed(2)} s, loss ${loss.toFixed(4)}\n`);
  }
  await dp?.close();
  const sorted = [...times].sort((a, b) => a - b);
  const med = sorted[Math.floor(sorted.length / 2)];
  const gpu = onGpu ? { adapter: info.adapter, gpu: info.gpu, gpu_peak_mb: gpuPeak / 2 ** 20, tensors_mb: tf.memory().numBytes / 2 ** 20 } : {};
  console.log(JSON.stringify({ tokens_per_s: (B * T) / med, step_s: times, peak_rss_mb: process.resourceUsage().maxRSS / 1024, threads: dp?.threads ?? 1, backend: info.backend, vocab_size: model.config.vocab_size, loss, ...gpu }));
  model.dispose();
}

/** localLossAndGrads with the loss read by the async data(): tfjs-webgpu has no synchronous read in Node. */
async function gpuLossAndGrads(model: GPT2LoraModel, batch: ReturnType<typeof collate>, seed: number): Promise<{ loss: number; grads: Map<string, tf.Tensor> }> {
  const vars = [...model.trainable.values()];
  const keyOf = new Map([...model.trainable].map(([k, v]) => [v.name, k]));
  const { value, grads } = tf.variableGrads(() => model.loss(batch, { training: true, seed }), vars);
  const loss = (await value.data())[0];
  value.dispose();
  return { loss, grads: new Map(Object.entries(grads).map(([name, g]) => [keyOf.get(name)!, g])) };
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
