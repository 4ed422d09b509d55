/**
 * The float64 Llama-family reference (test/reference/llama_f64.ts) checked on its own, against facts that do not
 * come from it: RoPE is a rotation (norms kept, scores depend only on the relative position); llama3/linear
 * frequencies equal values worked out by hand; rope_parameters (v5) reads like rope_scaling (4.x); grouped-query
 * attention equals multi-head attention whose k/v heads are copied per group; a window of 1 makes each position
 * a function of its own token only; a window ≥ T changes nothing; which layers slide (Mistral, Qwen2); right
 * padding is invisible; merging equals the unmerged forward; RMSNorm and the tied head by hand.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../../trainer/util/rng';
import {
  type LlamaRefConfig, type LlamaRefModel, llamaRefModel, logSoftmaxAt, refApplyRope, refInvFreq, refLlamaCausalLogits, refLlamaCausalLoss,
  refLlamaHidden, refLlamaSeqClsLogits, refMerged, refRmsNorm, refSlidingWindow,
} from '../../reference/llama_f64';

const TINY: LlamaRefConfig = {
  model_type: 'llama', vocab_size: 23, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 2, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false,
};

/** Random weights for every key the config implies (norm weights around 1), seeded. */
function randomWeights(c: LlamaRefConfig, task: 'causal-lm' | 'seq-cls', numLabels: number, seed: number, biases: string[] = []): Map<string, Float64Array> {
  const rng = new Rng(seed);
  const H = c.hidden_size;
  const D = c.head_dim ?? H / c.num_attention_heads;
  const q = c.num_attention_heads * D;
  const kv = (c.num_key_value_heads ?? c.num_attention_heads) * D;
  const I = c.intermediate_size;
  const w = new Map<string, Float64Array>();
  const rand = (n: number, base = 0) => Float64Array.from({ length: n }, () => base + 0.3 * rng.normal());
  w.set('model.embed_tokens.weight', rand(c.vocab_size * H));
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const dims: Record<string, [number, number]> = {
      'self_attn.q_proj': [q, H], 'self_attn.k_proj': [kv, H], 'self_attn.v_proj': [kv, H], 'self_attn.o_proj': [H, q],
      'mlp.gate_proj': [I, H], 'mlp.up_proj': [I, H], 'mlp.down_proj': [H, I],
    };
    for (const [name, [o, i]] of Object.entries(dims)) {
      w.set(`${p}${name}.weight`, rand(o * i));
      if (biases.includes(name)) w.set(`${p}${name}.bias`, rand(o));
    }
    w.set(`${p}input_layernorm.weight`, rand(H, 1));
    w.set(`${p}post_attention_layernorm.weight`, rand(H, 1));
  }
  w.set('model.norm.weight', rand(H, 1));
  if (task === 'seq-cls') w.set('score.weight', rand(numLabels * H));
  else if (!c.tie_word_embeddings) w.set('lm_head.weight', rand(c.vocab_size * H));
  return w;
}

function model(c: LlamaRefConfig, opts: { seed?: number; task?: 'causal-lm' | 'seq-cls'; biases?: string[] } = {}): LlamaRefModel {
  const task = opts.task ?? 'causal-lm';
  return llamaRefModel(c, task, 3, randomWeights(c, task, 3, opts.seed ?? 1, opts.biases));
}

const rows = (lengths: number[], seed: number, vocab = TINY.vocab_size) => {
  const rng = new Rng(seed);
  return lengths.map((n) => Array.from({ length: n }, () => rng.int(vocab)));
};

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
};
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((s, v, i) => s + v * b[i], 0);

describe('llama_f64 reference: RoPE', () => {
  const inv = refInvFreq({ ...TINY, head_dim: 8 });

  it('is a rotation: norms are kept, and q·k depends only on the relative position', () => {
    const rng = new Rng(4);
    const q = Array.from({ length: 8 }, () => rng.normal());
    const k = Array.from({ length: 8 }, () => rng.normal());
    for (const pos of [0, 1, 7, 33]) assert.ok(Math.abs(Math.hypot(...refApplyRope(q, pos, inv)) - Math.hypot(...q)) < 1e-12);
    assert.deepEqual([...refApplyRope(q, 0, inv)], q, 'position 0 is the identity');
    const score = (m: number, n: number) => dot(refApplyRope(q, m, inv), refApplyRope(k, n, inv));
    for (const [m, n] of [[5, 2], [9, 1], [3, 3]]) {
      for (const shift of [1, 4, 20]) assert.ok(Math.abs(score(m, n) - score(m + shift, n + shift)) < 1e-12, `(${m}, ${n}) + ${shift}`);
    }
    assert.ok(Math.abs(score(5, 2) - score(6, 2)) > 1e-3, 'and it does depend on the relative position');
  });

  it('rotates the pair (d, d + D/2) by pos·inv_freq[d] (rotate_half, not interleaved pairs)', () => {
    const x = [1, 0, 0, 0, 0, 0, 0, 0];
    const y = refApplyRope(x, 3, inv);
    assert.ok(Math.abs(y[0] - Math.cos(3)) < 1e-15 && Math.abs(y[4] - Math.sin(3)) < 1e-15, `${[...y]}`);
    assert.ok([1, 2, 3, 5, 6, 7].every((i) => y[i] === 0));
    const z = refApplyRope([0, 0, 0, 0, 0, 1, 0, 0], 2, inv); // x₂ part of pair 1: [−sin, cos] with angle 2·0.1
    assert.ok(Math.abs(z[1] + Math.sin(0.2)) < 1e-15 && Math.abs(z[5] - Math.cos(0.2)) < 1e-15, `${[...z]}`);
  });

  it('inv_freq: default 1/θ^(2i/D); linear divides by factor; llama3 equals the values worked out by hand', () => {
    const c = { ...TINY, head_dim: 8 };
    assert.deepEqual([...refInvFreq(c)].map((v) => +v.toPrecision(12)), [1, 0.1, 0.01, 0.001]);
    assert.deepEqual([...refInvFreq({ ...c, rope_scaling: { type: 'linear', factor: 4 } })].map((v) => +v.toPrecision(12)), [0.25, 0.025, 0.0025, 0.00025]);
    // θ 10000, D 8, factor 8, low 2, high 32, original 256: wavelengths 2π/f = 6.28, 62.8, 628, 6283 against
    // high_freq_wavelen 256/32 = 8 and low_freq_wavelen 256/2 = 128:
    //   i=0: 6.28 < 8, kept: 1
    //   i=1: medium, smooth = (256/62.83 − 2)/30 = 0.06914555, (1 − smooth)·0.1/8 + smooth·0.1 = 0.01855023575
    //   i=2, 3: > 128, divided by 8: 0.00125, 0.000125
    const llama3 = { rope_type: 'llama3', factor: 8, low_freq_factor: 2, high_freq_factor: 32, original_max_position_embeddings: 256 };
    const want = [1, 0.01855023575, 0.00125, 0.000125];
    const got = refInvFreq({ ...c, rope_scaling: llama3 });
    want.forEach((v, i) => assert.ok(Math.abs(got[i] - v) < 1e-10 * v, `inv_freq[${i}] ${got[i]} vs ${v}`));
    // v5: the same fields and rope_theta inside rope_parameters (the top-level rope_theta is then not read)
    const v5 = refInvFreq({ ...c, rope_theta: 77, rope_parameters: { ...llama3, rope_theta: 10000 } });
    assert.deepEqual([...v5], [...got]);
    assert.deepEqual([...refInvFreq({ ...c, rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 100 } })].map((v) => +v.toPrecision(12)), [1, 0.316227766017, 0.1, 0.0316227766017]);
  });
});

describe('llama_f64 reference: blocks', () => {
  it('RMSNorm by hand: [3, 4] · w / sqrt(12.5 + eps)', () => {
    const y = refRmsNorm(Float64Array.from([3, 4]), 1, 2, Float64Array.from([2, -1]), 0.5);
    assert.ok(maxDiff(y, [6 / Math.sqrt(13), -4 / Math.sqrt(13)]) < 1e-15);
  });

  it('grouped-query attention equals multi-head attention with each k/v head copied to its group', () => {
    const gqa = model(TINY, { seed: 2 });
    const mha = llamaRefModel({ ...TINY, num_key_value_heads: 4 }, 'causal-lm', 3, gqa.weights);
    const D = 4;
    const H = TINY.hidden_size;
    for (let l = 0; l < TINY.num_hidden_layers; l++) {
      for (const kind of ['k_proj', 'v_proj']) {
        const key = `model.layers.${l}.self_attn.${kind}.weight`;
        const w = gqa.weights.get(key)!;
        // query heads 0, 1 read kv head 0; query heads 2, 3 read kv head 1 (repeat_kv is repeat_interleave)
        const full = new Float64Array(4 * D * H);
        for (let h = 0; h < 4; h++) full.set(w.subarray(Math.floor(h / 2) * D * H, (Math.floor(h / 2) + 1) * D * H), h * D * H);
        mha.weights.set(key, full);
      }
    }
    const [ids] = rows([9], 3);
    assert.ok(maxDiff(refLlamaCausalLogits(gqa, ids), refLlamaCausalLogits(mha, ids)) < 1e-12);
    // tiling instead of interleaving (head h reads kv head h mod 2) is a different model
    const tiled = llamaRefModel({ ...TINY, num_key_value_heads: 4 }, 'causal-lm', 3, gqa.weights);
    for (let l = 0; l < TINY.num_hidden_layers; l++) {
      for (const kind of ['k_proj', 'v_proj']) {
        const key = `model.layers.${l}.self_attn.${kind}.weight`;
        const w = gqa.weights.get(key)!;
        tiled.weights.set(key, Float64Array.from([...w, ...w]));
      }
    }
    assert.ok(maxDiff(refLlamaCausalLogits(gqa, ids), refLlamaCausalLogits(tiled, ids)) > 1e-3);
  });

  it('head_dim when given (q width ≠ hidden_size)', () => {
    const c = { ...TINY, head_dim: 6 };
    const m = model(c, { seed: 8 });
    assert.equal(m.weights.get('model.layers.0.self_attn.q_proj.weight')!.length, 24 * 16);
    assert.equal(refLlamaCausalLogits(m, [1, 2, 3]).length, 3 * TINY.vocab_size);
  });

  it('right padding is invisible to the real positions; seq-cls reads the last real token', () => {
    const m = model(TINY, { seed: 5, task: 'seq-cls' });
    const [ids] = rows([6], 6);
    const padded = [...ids, 0, 0, 0];
    const H = TINY.hidden_size;
    assert.ok(maxDiff(refLlamaHidden(m, padded, 6).subarray(0, 6 * H), refLlamaHidden(m, ids)) < 1e-12);
    assert.ok(maxDiff(refLlamaSeqClsLogits(m, padded, 6), refLlamaSeqClsLogits(m, ids)) < 1e-12);
    assert.ok(maxDiff(refLlamaSeqClsLogits(m, ids), refLlamaSeqClsLogits(m, ids.slice(0, 5))) > 1e-3);
  });

  it('tied: the head is the embedding; untied: lm_head.weight', () => {
    const tied = model({ ...TINY, tie_word_embeddings: true }, { seed: 9 });
    const [ids] = rows([4], 1);
    const h = refLlamaHidden(tied, ids);
    const E = tied.weights.get('model.embed_tokens.weight')!;
    const H = TINY.hidden_size;
    const logits = refLlamaCausalLogits(tied, ids);
    assert.ok(Math.abs(logits[2 * TINY.vocab_size + 7] - dot(h.subarray(2 * H, 3 * H), E.subarray(7 * H, 8 * H))) < 1e-12);
    const untied = model(TINY, { seed: 9 });
    assert.ok(untied.weights.has('lm_head.weight'));
  });

  it('refuses weights that contradict the config about biases', () => {
    const qwen = { ...TINY, model_type: 'qwen2' as const };
    assert.throws(() => refLlamaCausalLogits(model(qwen), [1, 2]), /q_proj has a bias, the weights have none/);
    const ok = model(qwen, { biases: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'] });
    assert.equal(refLlamaCausalLogits(ok, [1, 2]).length, 2 * TINY.vocab_size);
    assert.throws(() => refLlamaCausalLogits(model(TINY, { biases: ['mlp.up_proj'] }), [1, 2]), /up_proj has no bias/);
    const llamaBias = model({ ...TINY, attention_bias: true, mlp_bias: true }, { biases: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'] });
    assert.equal(refLlamaCausalLogits(llamaBias, [3]).length, TINY.vocab_size);
  });
});

describe('llama_f64 reference: sliding window', () => {
  const mistral: LlamaRefConfig = { ...TINY, model_type: 'mistral' };

  it('a window ≥ T changes nothing; a shorter one does', () => {
    const weights = model(mistral, { seed: 3 }).weights;
    const at = (sliding_window: number | null) => llamaRefModel({ ...mistral, sliding_window }, 'causal-lm', 3, weights);
    const [ids] = rows([8], 2);
    const full = refLlamaCausalLogits(at(null), ids);
    assert.ok(maxDiff(refLlamaCausalLogits(at(8), ids), full) < 1e-12);
    assert.ok(maxDiff(refLlamaCausalLogits(at(100), ids), full) < 1e-12);
    const w7 = refLlamaCausalLogits(at(7), ids);
    const V = TINY.vocab_size;
    // kv > q − 7: position 6 still sees 0..6, position 7 loses key 0
    assert.ok(maxDiff(w7.subarray(0, 7 * V), full.subarray(0, 7 * V)) < 1e-12);
    assert.ok(maxDiff(w7.subarray(7 * V), full.subarray(7 * V)) > 1e-6);
  });

  it('a window of 1: each position sees only itself, so its logits are those of its token alone at position 0', () => {
    const m = llamaRefModel({ ...mistral, sliding_window: 1 }, 'causal-lm', 3, model(mistral, { seed: 4 }).weights);
    const [ids] = rows([5], 9);
    const V = TINY.vocab_size;
    const logits = refLlamaCausalLogits(m, ids);
    ids.forEach((id, t) => assert.ok(maxDiff(logits.subarray(t * V, (t + 1) * V), refLlamaCausalLogits(m, [id])) < 1e-12, `position ${t}`));
  });

  it('which layers slide: Mistral every layer; Qwen2 only with use_sliding_window, from max_window_layers, or per layer_types; Llama never', () => {
    assert.deepEqual([0, 1].map((l) => refSlidingWindow({ ...mistral, sliding_window: 4 }, l)), [4, 4]);
    assert.deepEqual([0, 1].map((l) => refSlidingWindow({ ...mistral, sliding_window: null }, l)), [null, null]);
    const qwen: LlamaRefConfig = { ...TINY, model_type: 'qwen2', sliding_window: 4, num_hidden_layers: 3 };
    assert.deepEqual([0, 1, 2].map((l) => refSlidingWindow(qwen, l)), [null, null, null], 'use_sliding_window defaults to false');
    assert.deepEqual([0, 1, 2].map((l) => refSlidingWindow({ ...qwen, use_sliding_window: true }, l)), [null, null, null], 'max_window_layers defaults to 28');
    assert.deepEqual([0, 1, 2].map((l) => refSlidingWindow({ ...qwen, use_sliding_window: true, max_window_layers: 1 }, l)), [null, 4, 4]);
    assert.deepEqual([0, 1, 2].map((l) => refSlidingWindow({ ...qwen, use_sliding_window: true, layer_types: ['sliding_attention', 'full_attention', 'sliding_attention'] }, l)), [4, null, 4]);
    assert.deepEqual([0, 1].map((l) => refSlidingWindow({ ...TINY, sliding_window: 4 }, l)), [null, null]);
  });
});

describe('llama_f64 reference: LoRA, merge, loss', () => {
  it('the merged model equals the unmerged LoRA forward; LoRA changes the logits', () => {
    const base = model(TINY, { seed: 6 });
    const rng = new Rng(12);
    const factors = (r: number, inF: number, outF: number, scaling: number) => ({
      A: Float64Array.from({ length: r * inF }, () => 0.3 * rng.normal()), B: Float64Array.from({ length: outF * r }, () => 0.3 * rng.normal()), r, scaling,
    });
    const lora = new Map([
      ['model.layers.0.self_attn.q_proj', factors(2, 16, 16, 2)],
      ['model.layers.0.self_attn.v_proj', factors(3, 16, 8, 0.5)],
      ['model.layers.1.mlp.down_proj', factors(2, 24, 16, 1.5)],
      ['lm_head', factors(1, 16, TINY.vocab_size, 4)],
    ]);
    const withLora = llamaRefModel(TINY, 'causal-lm', 3, base.weights, lora);
    const [ids] = rows([7], 8);
    const unmerged = refLlamaCausalLogits(withLora, ids);
    assert.ok(maxDiff(unmerged, refLlamaCausalLogits(base, ids)) > 1e-2);
    const merged = refMerged(withLora);
    assert.equal(merged.lora.size, 0);
    assert.ok(maxDiff(refLlamaCausalLogits(merged, ids), unmerged) < 1e-10);
    assert.ok(maxDiff(withLora.weights.get('lm_head.weight')!, merged.weights.get('lm_head.weight')!) > 0, 'merge made a new array');
  });

  it('causal loss: mean over predicted tokens, from the logits', () => {
    const m = model(TINY, { seed: 7 });
    const rs = rows([4, 1, 3], 5);
    const V = TINY.vocab_size;
    let nll = 0;
    for (const ids of rs) {
      const l = refLlamaCausalLogits(m, ids);
      for (let t = 0; t + 1 < ids.length; t++) nll -= logSoftmaxAt(l.subarray(t * V, (t + 1) * V), ids[t + 1]);
    }
    assert.ok(Math.abs(refLlamaCausalLoss(m, rs) - nll / 5) < 1e-12, '3 + 0 + 2 predicted tokens');
  });
});
