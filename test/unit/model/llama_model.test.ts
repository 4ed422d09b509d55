/**
 * LlamaLoraModel (trainer/models/llama/model.ts) on tiny random models, on the cpu and wasm backends: shapes; the
 * fast kernels (one-op RMSNorm, SwiGLU, RoPE, blockwise head, GEMM) against the plain tf-op composition, loss and
 * every LoRA gradient; training lowers the loss; the KV-cache decoder against the full pass (GQA, a sliding window
 * shorter than the sequence, an untied head); trainable keys are PEFT's; adapter and replica round trips; refusals.
 * The float64 numerics live in llama_numerics.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { collate, type Batch } from '../../../trainer/data/collate';
import { encodeFloatsInto, halfHost, type HostTensor } from '../../../trainer/io/safetensors';
import type { LoraModel, ModelSpec } from '../../../trainer/models/family';
import { type LlamaConfig, parseConfig } from '../../../trainer/models/llama/config';
import { namedModules } from '../../../trainer/models/llama/modules';
import { llamaWeightShapes } from '../../../trainer/models/llama/weights';
import { LlamaLoraModel } from '../../../trainer/models/llama/model';
import { checkFitsHeap, heapWeights } from '../../../trainer/models/llama/memory';
import { LLAMA_FAMILY } from '../../../trainer/models/llama/family';
import { QWEN25_05B, SMOLLM2_135M } from '../../util/llama_configs';
import { LoraStudioError } from '../../../trainer/errors';
import type { LoraTarget } from '../../../trainer/protocol';
import type { Task } from '../../../trainer/task';
import { Rng } from '../../../trainer/util/rng';
import { gemmAvailable } from '../../../trainer/ops/gemm';
import { adapterConfig, randomRows, relErr, useBackend } from './tiny';

const PAD = 0;

function tinyConfig(over: Record<string, unknown> = {}): LlamaConfig {
  return parseConfig({
    model_type: 'llama', vocab_size: 61, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, max_position_embeddings: 40, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true, ...over,
  }, 'config.json');
}

function randomWeights(c: LlamaConfig, task: Task, numLabels: number, seed: number): Map<string, HostTensor> {
  const rng = new Rng(seed);
  const out = new Map<string, HostTensor>();
  for (const [key, shape] of llamaWeightShapes(c, task, numLabels)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const norm = key.endsWith('layernorm.weight') || key === 'model.norm.weight';
    const data = Float32Array.from({ length: n }, () => (norm ? 1 + 0.2 * rng.normal() : 0.25 * rng.normal()));
    out.set(key, { shape, data, dtype: 'F32' });
  }
  return out;
}

/** LoRA targets for every Linear module whose name ends with one of `suffixes`, r 4, alpha 8. */
function targetsOf(c: LlamaConfig, task: Task, numLabels: number, suffixes: string[]): LoraTarget[] {
  return namedModules(c, task, numLabels)
    .filter((m) => m.type === 'Linear' && suffixes.some((s) => m.name === s || m.name.endsWith(`.${s}`)))
    .map((m) => ({ name: m.name, type: 'Linear', in_features: m.in_features!, out_features: m.out_features!, r: 4, lora_alpha: 8, scaling: 2 }));
}

const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

function specOf(c: LlamaConfig, over: Partial<ModelSpec> & { suffixes?: string[] } = {}): ModelSpec {
  const task = over.task ?? 'causal-lm';
  const numLabels = over.num_labels ?? 3;
  const { suffixes, ...rest } = over;
  return {
    config: c, task, num_labels: numLabels, weights: randomWeights(c, task, numLabels, 3), targets: targetsOf(c, task, numLabels, suffixes ?? ALL),
    modules_to_save: task === 'seq-cls' ? ['score'] : [], bias: 'none', lora_dropout: 0, init_lora_weights: false, seed: 11, pad_token_id: PAD, ...rest,
  };
}

function batchOf(lengths: number[], seed: number, vocab: number, labels = false): Batch {
  return collate(randomRows(lengths, seed, vocab - 1).map((ids, i) => ({ input_ids: ids.map((t) => t + 1), label: labels ? i % 3 : undefined })), PAD);
}

async function values(t: tf.Tensor): Promise<Float32Array> {
  const d = (await t.data()) as Float32Array;
  t.dispose();
  return d;
}

async function lossAndGrads(m: LoraModel, batch: Batch): Promise<{ loss: number; grads: Map<string, Float32Array> }> {
  const keys = [...m.trainable.keys()];
  const { value, grads } = tf.variableGrads(() => m.loss(batch, { training: false }), [...m.trainable.values()]);
  const out = new Map<string, Float32Array>();
  for (const key of keys) out.set(key, await values(grads[m.trainable.get(key)!.name]));
  return { loss: (await values(value))[0], grads: out };
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`LlamaLoraModel on ${backend}`, () => {
    it('shapes of logits, lastLogits and the seq-cls head', async () => {
      await useBackend(backend);
      const c = tinyConfig();
      const m = LlamaLoraModel.create(specOf(c));
      const batch = batchOf([5, 3], 1, c.vocab_size);
      assert.deepEqual(m.logits(batch).shape, [2, 5, 61]);
      assert.deepEqual(m.lastLogits(batch).shape, [2, 61]);
      assert.equal(m.maxPositions, 40);
      assert.equal(m.bodySize, 32);
      m.dispose();
      const s = LlamaLoraModel.create(specOf(c, { task: 'seq-cls', num_labels: 3 }));
      assert.deepEqual(s.logits(batchOf([5, 3], 1, c.vocab_size, true)).shape, [2, 3]);
      s.dispose();
    });

    for (const [name, over] of [
      ['llama, tied, GQA', {}],
      ['qwen2 biases, untied, sliding window 3 on layer 1', { model_type: 'qwen2', tie_word_embeddings: false, use_sliding_window: true, sliding_window: 3, max_window_layers: 1 }],
      ['mistral, window 4, llama3 rope, head_dim 6', { model_type: 'mistral', sliding_window: 4, head_dim: 6, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8 } }],
      ['llama attention_bias + mlp_bias, v5 rope_parameters linear', { attention_bias: true, mlp_bias: true, rope_parameters: { rope_type: 'linear', factor: 2, rope_theta: 500 } }],
    ] as Array<[string, Record<string, unknown>]>) {
      it(`fast kernels equal the plain composition: loss and every gradient (${name})`, async () => {
        await useBackend(backend);
        const c = tinyConfig(over);
        const batch = batchOf([7, 4, 6], 2, c.vocab_size);
        const fast = LlamaLoraModel.create(specOf(c, { kernels: 'fast', bias: 'lora_only' }));
        const ref = LlamaLoraModel.create(specOf(c, { kernels: 'reference', bias: 'lora_only' }));
        const a = await lossAndGrads(fast, batch);
        const b = await lossAndGrads(ref, batch);
        assert.ok(Number.isFinite(a.loss) && Math.abs(a.loss - b.loss) < 1e-4 * Math.max(1, b.loss), `${a.loss} vs ${b.loss}`);
        assert.deepEqual([...a.grads.keys()], [...b.grads.keys()]);
        let nonzero = 0;
        for (const [key, g] of a.grads) {
          assert.ok(relErr(g, b.grads.get(key)!) < 1e-4, `${key}: ${relErr(g, b.grads.get(key)!)}`);
          if (g.some((v) => v !== 0)) nonzero++;
        }
        assert.equal(nonzero, a.grads.size, 'every trainable tensor gets a gradient');
        assert.ok(relErr(await values(fast.logits(batch)), await values(ref.logits(batch))) < 1e-5);
        fast.dispose();
        ref.dispose();
        if (backend === 'wasm') assert.ok(gemmAvailable(), 'the fast path ran through the GEMM');
      });

      it(`dropout (attention 0.3, LoRA 0.2) draws the same masks on both paths; a seed fixes them (${name})`, async () => {
        await useBackend(backend);
        const c = tinyConfig({ ...over, attention_dropout: 0.3 });
        const batch = batchOf([7, 4, 6], 2, c.vocab_size);
        const fast = LlamaLoraModel.create(specOf(c, { kernels: 'fast', lora_dropout: 0.2 }));
        const ref = LlamaLoraModel.create(specOf(c, { kernels: 'reference', lora_dropout: 0.2 }));
        const loss = async (m: LoraModel, seed: number) => (await values(m.loss(batch, { training: true, seed })))[0];
        const a = await loss(fast, 5);
        assert.ok(Math.abs(a - (await loss(ref, 5))) < 1e-4 * Math.max(1, a));
        assert.equal(await loss(fast, 5), a);
        assert.notEqual(await loss(fast, 6), a);
        assert.notEqual(a, (await values(fast.loss(batch, { training: false })))[0]);
        fast.dispose();
        ref.dispose();
      });

      it(`the KV-cache decoder gives the full pass's last logits (${name})`, async () => {
        await useBackend(backend);
        const c = tinyConfig(over);
        const m = LlamaLoraModel.create(specOf(c));
        const ids = randomRows([9], 5, c.vocab_size)[0];
        const dec = m.decoder();
        let last = await dec.feed(ids.slice(0, 4));
        const first = await values(m.lastLogits(collate([{ input_ids: ids.slice(0, 4) }], PAD)));
        assert.ok(relErr(last, first) < 1e-4, `prompt: ${relErr(last, first)}`);
        for (let t = 4; t < ids.length; t++) last = await dec.feed([ids[t]]);
        const full = await values(m.lastLogits(collate([{ input_ids: ids }], PAD)));
        assert.ok(relErr(last, full) < 1e-4, `${relErr(last, full)}`);
        dec.dispose();
        dec.dispose();
        m.dispose();
      });
    }

    it('a few steps of plain SGD lower the loss (causal-lm and seq-cls)', async () => {
      await useBackend(backend);
      for (const task of ['causal-lm', 'seq-cls'] as const) {
        const c = tinyConfig({ model_type: 'qwen2' });
        const m = LlamaLoraModel.create(specOf(c, { task, suffixes: ['q_proj', 'v_proj', 'down_proj'], init_lora_weights: true }));
        const batch = batchOf([8, 6, 8], 4, c.vocab_size, true);
        const losses: number[] = [];
        for (let step = 0; step < 6; step++) {
          const { value, grads } = tf.variableGrads(() => m.loss(batch, { training: true }), [...m.trainable.values()]);
          losses.push((await values(value))[0]);
          for (const v of m.trainable.values()) tf.tidy(() => v.assign(tf.sub(v, tf.mul(grads[v.name], 0.5))));
          tf.dispose(Object.values(grads));
        }
        assert.ok(losses.every(Number.isFinite), `${losses}`);
        assert.ok(losses[5] < losses[0] - 0.01, `${task}: ${losses.join(', ')}`);
        m.dispose();
      }
    });

    it('exportAdapter → loadAdapter and replicaSpec → create give identical logits; PEFT layout', async () => {
      await useBackend(backend);
      const c = tinyConfig({ model_type: 'qwen2', tie_word_embeddings: false });
      const spec = specOf(c, { suffixes: ['q_proj', 'o_proj', 'up_proj', 'lm_head'], bias: 'all', modules_to_save: ['post_attention_layernorm'] });
      const m = LlamaLoraModel.create(spec);
      const batch = batchOf([6, 3], 7, c.vocab_size);
      const want = await values(m.logits(batch));
      const exported = await m.exportAdapter(adapterConfig('causal-lm'));
      const q = exported.lora.get('model.layers.0.self_attn.q_proj')!;
      assert.deepEqual([q.A.shape, q.B.shape], [[4, 16], [16, 4]]);
      assert.deepEqual(exported.lora.get('lm_head')!.B.shape, [61, 4]);
      assert.deepEqual(exported.extra.get('model.layers.1.self_attn.k_proj.bias')!.shape, [8]);
      assert.ok(exported.extra.has('model.layers.0.post_attention_layernorm.weight'));
      const other = LlamaLoraModel.create({ ...spec, seed: 99, init_lora_weights: true });
      assert.ok(relErr(await values(other.logits(batch)), want) > 1e-3);
      other.loadAdapter(exported);
      assert.ok(relErr(await values(other.logits(batch)), want) < 1e-6);
      const { spec: rs } = m.replicaSpec();
      const replica = LlamaLoraModel.create(rs);
      assert.deepEqual(await values(replica.logits(batch)), want);
      assert.deepEqual([...replica.trainable.keys()], [...m.trainable.keys()]);
      for (const x of [m, other, replica]) x.dispose();
    });

    it('trainable keys are PEFT\'s names for the targets; modules_to_save and bias modes', async () => {
      await useBackend(backend);
      const c = tinyConfig({ model_type: 'qwen2', num_hidden_layers: 1 });
      const m = LlamaLoraModel.create(specOf(c, { task: 'seq-cls', suffixes: ['q_proj', 'v_proj'], bias: 'lora_only' }));
      assert.deepEqual([...m.trainable.keys()].sort(), [
        'model.layers.0.self_attn.q_proj.bias', 'model.layers.0.self_attn.q_proj.lora_A.weight', 'model.layers.0.self_attn.q_proj.lora_B.weight',
        'model.layers.0.self_attn.v_proj.bias', 'model.layers.0.self_attn.v_proj.lora_A.weight', 'model.layers.0.self_attn.v_proj.lora_B.weight',
        'score.weight',
      ]);
      // q_proj 16 → 16 (4 heads × 4), v_proj 16 → 8 (2 key/value heads × 4), r 4, with their biases; score 3 × 16
      assert.equal(m.trainableParamCount(), (4 * 16 + 16 * 4 + 16) + (4 * 16 + 8 * 4 + 8) + 3 * 16);
      m.dispose();
    });
  });
}

/**
 * The weights of `spec` as a 16-bit file would give them (halfHost: stored bits, F32 decoded on read), and the
 * same values as plain F32 tensors: rounded to the format first, so that both models hold equal values.
 */
function asStored(weights: Map<string, HostTensor>, dtype: 'BF16' | 'F16'): { half: Map<string, HostTensor>; f32: Map<string, HostTensor> } {
  const half = new Map<string, HostTensor>();
  const f32 = new Map<string, HostTensor>();
  for (const [key, t] of weights) {
    const bytes = new Uint8Array(t.data.length * 2);
    encodeFloatsInto(t.data, dtype, bytes);
    const h = halfHost(t.shape, new Uint16Array(bytes.buffer), dtype);
    half.set(key, h);
    f32.set(key, { shape: t.shape, data: Float32Array.from(h.data), dtype: 'F32' });
  }
  return { half, f32 };
}

describe('16-bit frozen weights (wasm)', () => {
  for (const dtype of ['BF16', 'F16'] as const) {
    for (const tied of [true, false]) {
      it(`${dtype}, ${tied ? 'tied' : 'untied'} head: the matrices stay in 16 bits; loss, gradients and logits bit-equal to float32 weights of the same values`, async () => {
        await useBackend('wasm');
        assert.ok(gemmAvailable());
        const c = tinyConfig({ model_type: 'qwen2', tie_word_embeddings: tied });
        const base = specOf(c, { suffixes: tied ? ['q_proj', 'v_proj', 'down_proj'] : ['q_proj', 'lm_head'] });
        const { half, f32 } = asStored(base.weights, dtype);
        // the model must take the stored bits of every matrix and never decode it to float32 on the host
        for (const [key, t] of half) {
          if (/_proj\.weight$|embed_tokens|lm_head/.test(key)) Object.defineProperty(t, 'data', { get: () => assert.fail(`${key} was decoded to float32`) });
        }
        const m16 = LlamaLoraModel.create({ ...base, weights: half });
        const m32 = LlamaLoraModel.create({ ...base, weights: f32 });
        // 7 Linear weights × 2 layers, embed_tokens, and the untied lm_head
        assert.equal(m16.halfWeights, 14 + 1 + (tied ? 0 : 1));
        assert.equal(m32.halfWeights, 0);
        const batch = batchOf([7, 4, 6], 5, c.vocab_size);
        const [a, b] = [await lossAndGrads(m16, batch), await lossAndGrads(m32, batch)];
        assert.equal(a.loss, b.loss);
        for (const [key, g] of b.grads) assert.deepEqual(a.grads.get(key), g, key);
        assert.deepEqual(await values(m16.logits(batch)), await values(m32.logits(batch)));
        // decoding (KV cache, the embedding lookup of one token at a time) too
        const [d16, d32] = [m16.decoder(), m32.decoder()];
        assert.deepEqual(await d16.feed([3, 9, 4]), await d32.feed([3, 9, 4]));
        assert.deepEqual(await d16.feed([5]), await d32.feed([5]));
        d16.dispose();
        d32.dispose();
        // a replica (data-parallel worker) gets the stored bits and holds them in 16 bits too
        const { spec: rs } = m16.replicaSpec();
        assert.equal(rs.weights.get('model.embed_tokens.weight')!.bits!.length, c.vocab_size * c.hidden_size);
        const replica = LlamaLoraModel.create(rs);
        assert.equal(replica.halfWeights, m16.halfWeights);
        assert.deepEqual(await values(replica.logits(batch)), await values(m32.logits(batch)));
        for (const x of [m16, m32, replica]) x.dispose();
      });
    }
  }

  it('a trained bias, a module trained in full, or the cpu backend keep float32', async () => {
    const c = tinyConfig({ model_type: 'qwen2', tie_word_embeddings: false });
    const base = specOf(c, { suffixes: ['q_proj'] });
    const { half } = asStored(base.weights, 'BF16');
    await useBackend('wasm');
    const biasAll = LlamaLoraModel.create({ ...base, weights: half, bias: 'all' });
    // q/k/v carry biases in qwen2: with bias "all" their weights stay float32 (6), the other 8 matrices do not
    assert.equal(biasAll.halfWeights, 8 + 2);
    const saved = LlamaLoraModel.create({ ...base, weights: half, modules_to_save: ['lm_head'] });
    assert.equal(saved.halfWeights, 14 + 1);
    const batch = batchOf([5, 3], 2, c.vocab_size);
    for (const m of [biasAll, saved]) assert.ok(Number.isFinite((await lossAndGrads(m, batch)).loss));
    biasAll.dispose();
    saved.dispose();
    await useBackend('cpu');
    const onCpu = LlamaLoraModel.create({ ...base, weights: half });
    assert.equal(onCpu.halfWeights, 0);
    onCpu.dispose();
  });
});

describe('LlamaLoraModel refusals', () => {
  it('a bad target, an embedding trained in full, a long sequence, an unknown token: LoraStudioErrors naming the field', async () => {
    await useBackend('cpu');
    const c = tinyConfig();
    const throwsField = (f: () => unknown, field: string, text: RegExp) =>
      assert.throws(f, (e: unknown) => e instanceof LoraStudioError && e.field === field && text.test(e.message));
    const head: LoraTarget = { name: 'lm_head', type: 'Linear', in_features: 16, out_features: 61, r: 2, lora_alpha: 2, scaling: 1 };
    throwsField(() => LlamaLoraModel.create(specOf(c, { targets: [head] })), 'lm_head', /tied to model\.embed_tokens/);
    const typo: LoraTarget = { ...head, name: 'model.layers.0.self_attn.q_prj', in_features: 16, out_features: 16 };
    throwsField(() => LlamaLoraModel.create(specOf(c, { targets: [typo] })), typo.name, /did you mean model\.layers\.0\.self_attn\.q_proj/);
    const norm: LoraTarget = { ...head, name: 'model.norm', in_features: 16, out_features: 16 };
    throwsField(() => LlamaLoraModel.create(specOf(c, { targets: [norm] })), 'model.norm', /Linear layers/);
    throwsField(() => LlamaLoraModel.create(specOf(c, { modules_to_save: ['embed_tokens'] })), 'modules_to_save', /embed_tokens/);
    const m = LlamaLoraModel.create(specOf(c));
    throwsField(() => m.logits(batchOf([41], 1, c.vocab_size)), 'max_position_embeddings', /41 tokens/);
    throwsField(() => m.logits(collate([{ input_ids: [1, 61] }], PAD)), 'input_ids', /outside the vocabulary/);
    const dec = m.decoder();
    await dec.feed(Array.from({ length: 38 }, (_, i) => 1 + (i % 50)));
    await assert.rejects(dec.feed([1, 2, 3]), (e: unknown) => e instanceof LoraStudioError && e.field === 'max_position_embeddings');
    dec.dispose();
    m.dispose();
  });

  it('weights beyond the wasm heap are refused from config.json alone, naming the float32 size and the 4 GiB heap', () => {
    // Llama-3.2-1B's published shapes (tied): 1,235,814,400 weights, 4.60 GiB as float32
    const llama1b = parseConfig({ ...SMOLLM2_135M, hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, vocab_size: 128256, max_position_embeddings: 131072, rope_theta: 500000, rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } }, 'config.json');
    const refuses = (e: unknown) => e instanceof LoraStudioError && /1,235,814,400 weights, 4\.60 GiB as float32/.test(e.message) && /4 GiB/.test(e.message) && e.file === '/m/config.json' && e.field === 'hidden_size';
    assert.throws(() => LLAMA_FAMILY.assertFitsBackend!(llama1b, 'wasm', '/m/config.json'), refuses);
    assert.doesNotThrow(() => LLAMA_FAMILY.assertFitsBackend!(llama1b, 'webgpu', '/m/config.json'));
    assert.doesNotThrow(() => LLAMA_FAMILY.assertFitsBackend!(parseConfig(QWEN25_05B, 'config.json'), 'wasm', '/m/config.json'), 'Qwen2.5-0.5B fits');
    assert.throws(() => checkFitsHeap(tinyConfig(), { count: 1_235_814_400, bytes: 4 * 1_235_814_400 }, 'config.json', 'wasm'), (e: unknown) => e instanceof LoraStudioError && e.file === 'config.json' && /use the BF16 release/.test(e.message));
    // as published (BF16), every matrix is held in 16 bits: 2.30 GiB, which fits; norms stay float32
    const bf16 = () => 'BF16';
    assert.doesNotThrow(() => LLAMA_FAMILY.assertFitsBackend!(llama1b, 'wasm', '/m/config.json', bf16));
    const held = heapWeights(llamaWeightShapes(llama1b, 'causal-lm'), bf16);
    assert.equal(held.count, 1_235_814_400);
    assert.equal(held.bytes, 2 * 1_235_814_400 + 2 * 2048 * (2 * 16 + 1), 'matrices at 2 bytes, the 33 norm vectors at 4');
    // a model twice that size (Llama-3.2-3B-like) does not fit even in 16 bits, and the message says how it was counted
    const big = parseConfig({ ...SMOLLM2_135M, hidden_size: 3072, intermediate_size: 8192, num_hidden_layers: 28, num_attention_heads: 24, num_key_value_heads: 8, head_dim: 128, vocab_size: 128256 }, 'config.json');
    assert.throws(() => LLAMA_FAMILY.assertFitsBackend!(big, 'wasm', '/m/config.json', bf16), (e: unknown) => e instanceof LoraStudioError && /GiB as held \(16 bits where the file stores them so\)/.test(e.message));
  });

  it('the family builds it', async () => {
    await useBackend('cpu');
    const m = LLAMA_FAMILY.createModel(specOf(tinyConfig()));
    assert.ok(m instanceof LlamaLoraModel);
    m.dispose();
  });
});
