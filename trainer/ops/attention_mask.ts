/**
 * The additive attention mask of a causal decoder: the future and padding keys are masked. Any family's
 * attention core adds it to its scores before the softmax.
 */
import * as tf from '@tensorflow/tfjs-core';

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
