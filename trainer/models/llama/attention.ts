/**
 * The attention core of the Llama family: grouped-query attention (num_key_value_heads; each key/value head
 * serves num_attention_heads / num_key_value_heads query heads, as repeat_kv does, without copying it), the
 * additive mask (causal, right padding, an optional sliding window), softmax in float32, scaling 1/√head_dim.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MASKED_SCORE } from '../../ops/attention_mask';
import type { DropoutStream } from '../../ops/layers';
import { gemmAvailable, gemmBatch, type GemmJob } from '../../ops/gemm';

export interface AttentionDims {
  B: number;
  /** queries per row */
  Tq: number;
  /** keys per row (the cache plus the queries when decoding) */
  Tk: number;
  H: number;
  KV: number;
  D: number;
}

/**
 * The additive mask [B, 1, Tq, Tk]: query i sits at absolute position offset + i and sees key j iff j ≤ offset + i,
 * key j is a real token (`keyMask` [B·Tk], 1 for real; null: all real) and, with a window W, j > offset + i − W.
 */
export function llamaAttentionBias(keyMask: Int32Array | null, B: number, Tq: number, Tk: number, offset: number, window: number | null): tf.Tensor4D {
  const data = new Float32Array(B * Tq * Tk);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < Tq; i++) {
      const q = offset + i;
      const row = (b * Tq + i) * Tk;
      for (let j = 0; j < Tk; j++) {
        if (j > q || (keyMask !== null && keyMask[b * Tk + j] === 0) || (window !== null && j <= q - window)) data[row + j] = MASKED_SCORE;
      }
    }
  }
  return tf.tensor4d(data, [B, 1, Tq, Tk]);
}

/**
 * softmax(q·kᵀ/√D + bias)·v for q [B, H, Tq, D] and k, v [B, KV, Tk, D] (RoPE applied); returns the merged
 * heads [B·Tq, H·D]. Query head h uses key/value head ⌊h / (H/KV)⌋: q is regrouped as [B, KV, (H/KV)·Tq, D], so
 * each key/value head is one batched product with its query heads. attention_dropout on the probabilities.
 */
export function groupedAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, bias: tf.Tensor4D, dims: AttentionDims, dropout: number, drop: DropoutStream): tf.Tensor2D {
  const { B, Tq, Tk, H, KV, D } = dims;
  const rep = H / KV;
  const qg = tf.reshape(q, [B, KV, rep * Tq, D]);
  const scores = tf.mul(tf.matMul(qg, k, false, true), 1 / Math.sqrt(D));
  const masked = tf.add(tf.reshape(scores, [B, H, Tq, Tk]), bias);
  const probs = drop.apply(tf.softmax(masked), dropout);
  const out = tf.matMul(tf.reshape(probs, [B, KV, rep * Tq, Tk]), v); // [B, KV, rep·Tq, D]
  return tf.reshape(tf.transpose(tf.reshape(out, [B, H, Tq, D]), [0, 2, 1, 3]), [B * Tq, H * D]);
}

/**
 * groupedAttention for a full pass (Tq = Tk = T) as one op with a hand-written gradient, on wasm: q [B·T, H·D] and
 * k, v [B·T, KV·D] in their row layouts (RoPE applied; no head transposes), every (example, head) product through
 * gemmBatch reading its blocks in place, the merged heads written straight into [B·T, H·D]. Saves q, k, v, the
 * probabilities and the dropout mask. A key/value head's gradient is the sum over its query heads: made per query
 * head, then summed over each group. Elsewhere (no GEMM): groupedAttention.
 */
export function groupedAttentionFast(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, bias: tf.Tensor4D, dims: AttentionDims, dropout: number, drop: DropoutStream): tf.Tensor2D {
  const { B, Tq: T, Tk, H, KV, D } = dims;
  if (!gemmAvailable() || Tk !== T) {
    const heads = (t: tf.Tensor, n: number) => tf.transpose(tf.reshape(t, [B, T, n, D]), [0, 2, 1, 3]) as tf.Tensor4D;
    return groupedAttention(heads(q, H), heads(k, KV), heads(v, KV), bias, dims, dropout, drop);
  }
  const rep = H / KV;
  const HD = H * D;
  const KD = KV * D;
  const scale = 1 / Math.sqrt(D);
  const perHead = (f: (b: number, h: number, g: number) => GemmJob): GemmJob[] => Array.from({ length: B * H }, (_, i) => f(Math.floor(i / H), i % H, Math.floor((i % H) / rep)));
  const square = (b: number, h: number) => (b * H + h) * T * T;
  const qRows = (b: number, h: number) => b * T * HD + h * D;
  const kvRows = (b: number, g: number) => b * T * KD + g * D;
  const transposeBlocks = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B * H, T, T]), [0, 2, 1]);
  /** [B·T, H·D] per query head → [B·T, KV·D]: the sum over each key/value head's group */
  const groupSum = (t: tf.Tensor) => (rep === 1 ? t : tf.reshape(tf.sum(tf.reshape(t, [B * T, KV, rep, D]), 2), [B * T, KD]));
  const m = drop.multiplier([B, H, T, T], dropout);
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [qIn, kIn, vIn] = args as tf.Tensor2D[];
    const save = args[3] as tf.GradSaveFunc;
    const scores = gemmBatch([qIn, kIn], [B, H, T, T], perHead((b, h, g) => ({
      a: 0, aOffset: qRows(b, h), lda: HD, b: 1, bOffset: kvRows(b, g), ldb: KD, transposeB: true, cOffset: square(b, h), ldc: T, n: T, k: D, m: T,
    })));
    const probs = tf.softmax(tf.add(tf.mul(scores, scale), bias));
    save(m ? [qIn, kIn, vIn, probs, m] : [qIn, kIn, vIn, probs]);
    const pd = m ? tf.mul(probs, m) : probs;
    const value = gemmBatch([pd, vIn], [B * T, HD], perHead((b, h, g) => ({
      a: 0, aOffset: square(b, h), lda: T, b: 1, bOffset: kvRows(b, g), ldb: KD, transposeB: false, cOffset: qRows(b, h), ldc: HD, n: T, k: T, m: D,
    }))) as tf.Tensor2D;
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [sq, sk, sv, sp, sm] = saved;
        const dPd = gemmBatch([dy, sv], [B, H, T, T], perHead((b, h, g) => ({
          a: 0, aOffset: qRows(b, h), lda: HD, b: 1, bOffset: kvRows(b, g), ldb: KD, transposeB: true, cOffset: square(b, h), ldc: T, n: T, k: D, m: T,
        })));
        const dP = sm ? tf.mul(dPd, sm) : dPd;
        const dS = tf.mul(tf.mul(sp, tf.sub(dP, tf.sum(tf.mul(dP, sp), -1, true))), scale);
        const spd = sm ? tf.mul(sp, sm) : sp;
        const into = (b: number, h: number) => ({ cOffset: qRows(b, h), ldc: HD, n: T, k: T, m: D, transposeB: false });
        // inputs: 0 dS, 1 dSᵀ and 2 pdᵀ (per block), 3 q, 4 k, 5 dy
        const ins = [dS, transposeBlocks(dS), transposeBlocks(spd), sq, sk, dy];
        const dq = gemmBatch(ins, [B * T, HD], perHead((b, h, g) => ({ a: 0, aOffset: square(b, h), lda: T, b: 4, bOffset: kvRows(b, g), ldb: KD, ...into(b, h) })));
        const dkHeads = gemmBatch(ins, [B * T, HD], perHead((b, h) => ({ a: 1, aOffset: square(b, h), lda: T, b: 3, bOffset: qRows(b, h), ldb: HD, ...into(b, h) })));
        const dvHeads = gemmBatch(ins, [B * T, HD], perHead((b, h) => ({ a: 2, aOffset: square(b, h), lda: T, b: 5, bOffset: qRows(b, h), ldb: HD, ...into(b, h) })));
        return [dq, groupSum(dkHeads), groupSum(dvHeads)];
      }),
    };
  });
  return op(q, k, v) as tf.Tensor2D;
}
