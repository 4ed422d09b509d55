/**
 * GPT-2's causal self-attention core (between c_attn and c_proj): split q/k/v into heads, scaled dot products,
 * an additive mask for the future and for padding keys, softmax, attention dropout, and the heads merged back.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DropoutStream } from './layers';

/** Added to masked scores; finite, so a fully masked row stays a uniform softmax instead of NaN. */
export const MASKED_SCORE = -1e9;

/**
 * The additive mask [B, 1, T, T]: 0 where query i may attend key j (j ≤ i and key j is a real token),
 * MASKED_SCORE elsewhere. `attentionMask` is [B·T] with 1 for real tokens.
 */
export function attentionBias(attentionMask: Int32Array, B: number, T: number): tf.Tensor4D {
  const data = new Float32Array(B * T * T);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < T; i++) {
      const row = (b * T + i) * T;
      for (let j = 0; j < T; j++) {
        if (j > i || attentionMask[b * T + j] === 0) data[row + j] = MASKED_SCORE;
      }
    }
  }
  return tf.tensor4d(data, [B, 1, T, T]);
}

/**
 * qkv [B·T, 3C] (c_attn's output) → the merged heads [B·T, C], ready for c_proj.
 * `scale` is 1/√head_dim when scale_attn_weights, else 1.
 */
export function selfAttention(
  qkv: tf.Tensor2D,
  bias: tf.Tensor4D,
  dims: { B: number; T: number; C: number; H: number },
  scale: number,
  attnPdrop: number,
  drop: DropoutStream,
): tf.Tensor2D {
  const { B, T, C, H } = dims;
  const D = C / H;
  const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, T, H, D]), [0, 2, 1, 3]); // [B, H, T, D]
  const [q, k, v] = tf.split(qkv, 3, 1).map(heads);
  let scores = tf.matMul(q, k, false, true); // [B, H, T, T]
  if (scale !== 1) scores = tf.mul(scores, scale);
  const probs = drop.apply(tf.softmax(tf.add(scores, bias)), attnPdrop);
  const out = tf.matMul(probs, v); // [B, H, T, D]
  return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [B * T, C]);
}
