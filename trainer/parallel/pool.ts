/**
 * Data parallelism on one machine: the trainer thread plus (workers − 1) worker threads, each with its own
 * tfjs backend and a replica of the frozen model. A micro-batch is cut into row shards; the trainer thread
 * computes shard 0 while the workers compute the others; the LoRA gradients (a few hundred thousand floats)
 * are summed on the trainer thread, which alone runs the optimizer and sends the new values with the next
 * request. Every shard divides by the whole batch's count and draws the whole batch's dropout masks for its
 * rows, so the sum equals the single-thread gradient up to float rounding.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import type { Batch } from '../data/collate';
import type { LoraModel } from '../models/family';
import type { FromWorker, ToWorker } from './protocol';
import { lossDenominator, shardBatch } from './shard';
import { collectGarbage } from '../util/gc';

/** The env variable that sets the number of threads (1: no workers); default: automatic. */
export const WORKERS_ENV = 'LORA_STUDIO_WORKERS';

/** The worker script: the bundled one beside the trainer bundle, else the TypeScript source (run under tsx). */
export function workerScript(): string | null {
  for (const f of [path.join(__dirname, 'parallel_worker.js'), path.join(__dirname, 'worker.ts'), path.join(__dirname, 'parallel', 'worker.ts')]) {
    if (fs.existsSync(f)) return f;
  }
  return null;
}

/**
 * How many threads to use: LORA_STUDIO_WORKERS when set; otherwise one per core on the wasm backend for models
 * big enough that a replica pays off (n_embd·n_layer ≥ 768·6), else 1. Never more than the rows of a micro-batch
 * (`rows`): a batch is split by rows (shard.ts), so a thread beyond them would get none while holding a whole
 * replica of the model.
 */
export function plannedWorkers(model: LoraModel, backend: string, rows: number): number {
  const cap = (n: number) => Math.max(1, Math.min(n, rows));
  const env = process.env[WORKERS_ENV];
  if (env !== undefined && env !== '') {
    const n = Number(env);
    return cap(Number.isInteger(n) && n >= 1 ? n : 1);
  }
  if (backend !== 'wasm') return 1;
  if (model.bodySize < 768 * 6) return 1;
  return cap(Math.min(os.availableParallelism?.() ?? os.cpus().length, 4));
}

interface Pending {
  resolve: (m: { loss: number; grads: Record<string, Float32Array> }) => void;
  reject: (e: Error) => void;
}

export class DataParallel {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private failure: Error | null = null;

  private constructor(private readonly model: LoraModel, private readonly workers: Worker[]) {
    for (const w of workers) {
      w.on('message', (m: FromWorker) => {
        if (m.kind === 'grad') {
          this.pending.get(m.id)?.resolve(m);
          this.pending.delete(m.id);
        } else if (m.kind === 'error') {
          this.fail(new Error(`gradient worker failed: ${m.message}`));
        }
      });
      w.on('error', (e) => this.fail(e));
    }
  }

  /** Starts `threads − 1` workers, each with a replica of `model`; null when no worker script is available. */
  static async start(model: LoraModel, backend: string, threads: number): Promise<DataParallel | null> {
    const script = workerScript();
    if (!script || threads < 2) return null;
    const workers: Worker[] = [];
    // the model's source weights (the caller has let go of them) go before the replicas' buffers come
    collectGarbage();
    try {
      for (let i = 1; i < threads; i++) {
        // from source, the worker registers tsx itself (a worker does not inherit --import hooks)
        const w = script.endsWith('.ts') ? new Worker(`require('tsx/cjs'); require(${JSON.stringify(script)});`, { eval: true }) : new Worker(script);
        workers.push(w);
        // one replica at a time: the host copy of the weights exists only while a worker loads it
        const { spec, buffer } = model.replicaSpec();
        await new Promise<void>((resolve, reject) => {
          const onMessage = (m: FromWorker) => {
            if (m.kind === 'ready') resolve();
            else if (m.kind === 'error') reject(new Error(`gradient worker failed to start: ${m.message}`));
            else return;
            w.off('message', onMessage);
          };
          w.on('message', onMessage);
          w.once('error', reject);
          w.postMessage({ kind: 'init', backend, spec } satisfies ToWorker, [buffer]);
        });
      }
    } catch (e) {
      for (const w of workers) void w.terminate();
      throw e;
    }
    // the host copies made while loading (this model's source weights, the replicas' buffers) are garbage now
    collectGarbage();
    // idle workers never keep the process alive; they are ref'd only while a request is out
    for (const w of workers) w.unref();
    return new DataParallel(model, workers);
  }

  get threads(): number {
    return this.workers.length + 1;
  }

  /**
   * Loss and summed gradients (tensors by trainable key, internal layout) of one micro-batch, computed in shards
   * across the threads. The caller owns the returned tensors.
   */
  async lossAndGrads(batch: Batch, seed: number): Promise<{ loss: number; grads: Map<string, tf.Tensor> }> {
    if (this.failure) throw this.failure;
    const shards = shardBatch(batch, this.threads);
    const denominator = lossDenominator(batch, this.model.task);
    const params: Record<string, Float32Array> = {};
    for (const [k, v] of this.model.trainable) params[k] = v.dataSync() as Float32Array;
    const remote = shards.slice(1).map((s, i) => new Promise<{ loss: number; grads: Record<string, Float32Array> }>((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      this.workers[i].postMessage({ kind: 'grad', id, params, batch: s.batch, rowOffset: s.rowOffset, denominator, seed } satisfies ToWorker);
    }));
    for (const w of this.workers) w.ref();
    let results: Array<{ loss: number; grads: Record<string, Float32Array> }>;
    let local: { loss: number; grads: Map<string, tf.Tensor> };
    try {
      local = localLossAndGrads(this.model, shards[0].batch, { seed, rowOffset: 0, denominator });
      results = await Promise.all(remote);
    } finally {
      for (const w of this.workers) w.unref();
    }
    let loss = local.loss;
    for (const r of results) {
      loss += r.loss;
      for (const [k, data] of Object.entries(r.grads)) {
        const prev = local.grads.get(k)!;
        local.grads.set(k, tf.tidy(() => tf.add(prev, tf.tensor(data, prev.shape, 'float32'))));
        prev.dispose();
      }
    }
    return { loss, grads: local.grads };
  }

  async close(): Promise<void> {
    for (const w of this.workers) w.ref();
    for (const w of this.workers) w.postMessage({ kind: 'close' } satisfies ToWorker);
    await Promise.all(this.workers.map((w) => new Promise((r) => w.once('exit', r))));
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}

/** Loss and gradients of one batch on this thread (what every shard runs), gradients keyed by trainable name. */
export function localLossAndGrads(model: LoraModel, batch: Batch, opts: { seed: number; rowOffset?: number; denominator?: number }): { loss: number; grads: Map<string, tf.Tensor> } {
  const vars = [...model.trainable.values()];
  const keyOf = new Map([...model.trainable].map(([k, v]) => [v.name, k]));
  const { value, grads } = tf.variableGrads(() => model.loss(batch, { training: true, ...opts }), vars);
  const loss = value.dataSync()[0];
  value.dispose();
  const out = new Map<string, tf.Tensor>();
  for (const [name, g] of Object.entries(grads)) out.set(keyOf.get(name)!, g);
  return { loss, grads: out };
}
