/**
 * Data parallelism and the fast path change no result: the fast kernels give the reference (unoptimised)
 * path's losses and gradients; two threads (the trainer thread plus a worker_threads replica) give the
 * single-thread loss and gradients of a batch, with dropout on, up to float rounding; shards split rows exactly.
 */
import { after, before, describe, it } from 'node:test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LLAMA_FAMILY } from '../../../trainer/models/llama/family';
import type { LlamaConfig } from '../../../trainer/models/llama/config';
import type { LlamaLoraModel } from '../../../trainer/models/llama/model';
import { namedModules } from '../../../trainer/models/llama/modules';
import { writeLlamaFolder as writeTinyLlama } from '../../util/llama_folder';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { collate } from '../../../trainer/data/collate';
import { GPT2LoraModel } from '../../../trainer/models/gpt2/model';
import { DataParallel, localLossAndGrads, plannedWorkers, WORKERS_ENV } from '../../../trainer/parallel/pool';
import { lossDenominator, shardBatch } from '../../../trainer/parallel/shard';
import { initBothBackends, PAD, randomRows, relErr, specOf, tinySetup, useBackend } from '../model/tiny';

const DROPOUT = { embd_pdrop: 0.1, attn_pdrop: 0.2, resid_pdrop: 0.1 };

function hostGrads(g: Map<string, tf.Tensor>): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [k, t] of g) out.set(k, Float32Array.from(t.dataSync() as Float32Array));
  tf.dispose([...g.values()]);
  return out;
}

function assertClose(a: Map<string, Float32Array>, b: Map<string, Float32Array>, tol: number) {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, v] of a) assert.ok(relErr(v, b.get(k)!) < tol, `${k}: relative error ${relErr(v, b.get(k)!)}`);
}

describe('shardBatch', () => {
  it('splits rows into contiguous shards with the whole batch padding, and the denominators add up', () => {
    const batch = collate(randomRows([5, 3, 7, 2, 6], 1).map((input_ids, i) => ({ input_ids, label: i % 2 })), PAD);
    const shards = shardBatch(batch, 2);
    assert.deepEqual(shards.map((s) => [s.rowOffset, s.batch.batch_size, s.batch.seq_len]), [[0, 3, 7], [3, 2, 7]]);
    assert.deepEqual(Array.from(shards[1].batch.input_ids), Array.from(batch.input_ids.slice(21)));
    assert.deepEqual(Array.from(shards[1].batch.labels!), [1, 0]);
    assert.equal(shards[0].batch.num_tokens + shards[1].batch.num_tokens, batch.num_tokens);
    assert.equal(lossDenominator(shards[0].batch, 'causal-lm') + lossDenominator(shards[1].batch, 'causal-lm'), lossDenominator(batch, 'causal-lm'));
    assert.equal(shardBatch(batch, 9).length, 5);
  });
});

describe('plannedWorkers', () => {
  it('never plans more threads than a micro-batch has rows (a thread without rows would still hold a replica)', () => {
    const big = { bodySize: 768 * 12 } as Parameters<typeof plannedWorkers>[0];
    const saved = process.env[WORKERS_ENV];
    try {
      delete process.env[WORKERS_ENV];
      const auto = plannedWorkers(big, 'wasm', 64);
      assert.ok(auto >= 1 && auto <= 4, String(auto));
      assert.equal(plannedWorkers(big, 'wasm', 1), 1);
      assert.equal(plannedWorkers(big, 'webgpu', 64), 1);
      assert.equal(plannedWorkers({ bodySize: 64 } as typeof big, 'wasm', 64), 1);
      process.env[WORKERS_ENV] = '3';
      assert.equal(plannedWorkers(big, 'wasm', 8), 3);
      assert.equal(plannedWorkers(big, 'wasm', 2), 2);
      assert.equal(plannedWorkers(big, 'wasm', 1), 1);
    } finally {
      if (saved === undefined) delete process.env[WORKERS_ENV];
      else process.env[WORKERS_ENV] = saved;
    }
  });
});

describe('fast kernels vs the reference path (wasm)', () => {
  before(async () => {
    await initBothBackends();
    await useBackend('wasm');
  });
  const cases = [
    { task: 'causal-lm', config: DROPOUT, what: '' },
    { task: 'seq-cls', config: DROPOUT, what: '' },
    // 5000 rows of wte are three blocks of the K-blocked head product p · wte (HEAD_K_BLOCK = 2048)
    { task: 'causal-lm', config: { ...DROPOUT, vocab_size: 5000 }, what: ', vocabulary of three head blocks' },
  ] as const;
  for (const { task, config, what } of cases) {
    it(`${task}: same training loss and gradients with dropout on${what}`, async () => {
      const s = tinySetup(task, { config, seed: 11 });
      const batch = collate(randomRows([9, 4, 7], 3).map((input_ids, i) => ({ input_ids, label: i % 3 })), PAD);
      const results = [];
      for (const kernels of ['reference', 'fast'] as const) {
        const model = GPT2LoraModel.create(specOf(s, { kernels, lora_dropout: 0.1 }));
        const r = localLossAndGrads(model, batch, { seed: 5 });
        const evalLoss = (await model.nllSum(batch)).nll;
        results.push({ loss: r.loss, evalLoss, grads: hostGrads(r.grads) });
        model.dispose();
      }
      assert.ok(Math.abs(results[0].loss - results[1].loss) < 1e-5, `${results[0].loss} vs ${results[1].loss}`);
      assert.ok(Math.abs(results[0].evalLoss - results[1].evalLoss) < 1e-4);
      assertClose(results[1].grads, results[0].grads, 1e-4);
    });
  }
});

describe('data-parallel workers equal one thread (wasm)', () => {
  before(async () => {
    await initBothBackends();
    await useBackend('wasm');
  });
  let dp: DataParallel | null = null;
  after(async () => dp?.close());

  for (const task of ['causal-lm', 'seq-cls'] as const) {
    it(`${task}: loss and LoRA gradients of a sharded batch, dropout on, 2 threads`, async () => {
      const s = tinySetup(task, { config: DROPOUT, seed: 12 });
      const model = GPT2LoraModel.create(specOf(s, { lora_dropout: 0.1 }));
      const batch = collate(randomRows([8, 5, 3, 8, 6], 4).map((input_ids, i) => ({ input_ids, label: i % 3 })), PAD);
      const one = localLossAndGrads(model, batch, { seed: 77 });
      const single = { loss: one.loss, grads: hostGrads(one.grads) };
      const pool = await DataParallel.start(model, 'wasm', 2);
      assert.ok(pool, 'the worker script is found');
      dp = pool;
      assert.equal(pool.threads, 2);
      const r = await pool.lossAndGrads(batch, 77);
      assert.ok(Math.abs(r.loss - single.loss) < 1e-5, `${r.loss} vs ${single.loss}`);
      assertClose(hostGrads(r.grads), single.grads, 1e-5);
      await pool.close();
      dp = null;
      model.dispose();
    });
  }

  it('a Llama with BF16 weights: the worker gets the stored bits, holds them in 16 bits, and equals one thread', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-dp-llama-'));
    try {
      writeTinyLlama(dir, { model_type: 'qwen2', dtype: 'BF16', seed: 3 });
      const loaded = LLAMA_FAMILY.load(dir, { task: 'causal-lm' });
      const c = loaded.config as LlamaConfig;
      const targets = namedModules(c, 'causal-lm', 2).filter((m) => /\.(q|v)_proj$/.test(m.name))
        .map((m) => ({ name: m.name, type: 'Linear' as const, in_features: m.in_features!, out_features: m.out_features!, r: 4, lora_alpha: 8, scaling: 2 }));
      const model = LLAMA_FAMILY.createModel({
        config: c, task: 'causal-lm', num_labels: 2, weights: loaded.weights, targets, modules_to_save: [], bias: 'none',
        lora_dropout: 0.1, init_lora_weights: false, seed: 5, pad_token_id: 0,
      }) as LlamaLoraModel;
      assert.ok(model.halfWeights > 0, 'the BF16 matrices are held in 16 bits');
      const batch = collate(randomRows([7, 5, 3, 6], 9, c.vocab_size - 1).map((ids) => ({ input_ids: ids.map((t) => t + 1) })), 0);
      const one = localLossAndGrads(model, batch, { seed: 31 });
      const single = { loss: one.loss, grads: hostGrads(one.grads) };
      const pool = await DataParallel.start(model, 'wasm', 2);
      assert.ok(pool);
      dp = pool;
      const r = await pool.lossAndGrads(batch, 31);
      assert.ok(Math.abs(r.loss - single.loss) < 1e-5, `${r.loss} vs ${single.loss}`);
      assertClose(hostGrads(r.grads), single.grads, 1e-5);
      await pool.close();
      dp = null;
      model.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
