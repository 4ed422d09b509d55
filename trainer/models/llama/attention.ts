/**
 * The attention core of the Llama family: grouped-query attention (num_key_value_heads; each key/value head
 * serves num_attention_heads / num_key_value_heads query heads, as repeat_kv does, without copying it), the
 * additive mask (causal, right padding, an optional sliding window), softmax in float32, scaling 1/√head_dim.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MASKED_SCORE } from '../../ops/attention_mask';
import type { DropoutStream } from '../../ops/layers';

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
