/**
 * Rotary position embeddings as modeling_llama.py applies them: q·cos + rotate_half(q)·sin, with
 * rotate_half(x) = [−x₂, x₁] over the two halves of each head, and cos/sin of position·inv_freq repeated over both
 * halves. inv_freq per modeling_rope_utils.py for rope types default, linear and llama3 (attention scaling 1 for
 * all three). Tables are made on the host in float64 and rounded once to float32.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ResolvedRope } from './config';
import { gemm } from '../../ops/gemm';

/** inv_freq [dim / 2]: 1/θ^(2i/dim), divided by factor (linear), or llama3's smooth interpolation. */
export function invFreq(rope: ResolvedRope, dim: number): Float64Array {
  const half = Math.floor(dim / 2);
  const inv = Float64Array.from({ length: half }, (_, i) => 1 / rope.theta ** ((2 * i) / dim));
  if (rope.type === 'linear') return inv.map((f) => f / rope.factor!);
  if (rope.type !== 'llama3') return inv;
  const factor = rope.factor!;
  const low = rope.low_freq_factor!;
  const high = rope.high_freq_factor!;
  const old = rope.original_max_position_embeddings!;
  const lowWavelen = old / low;
  const highWavelen = old / high;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen > lowWavelen) return f / factor; // low frequencies: interpolated
    if (wavelen < highWavelen) return f; // high frequencies: kept
    const smooth = (old / wavelen - low) / (high - low);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

/** cos and sin [n, dim] for positions start … start+n−1 (each frequency twice: the halves of rotate_half). */
export function ropeTables(inv: Float64Array, start: number, n: number): { cos: Float32Array; sin: Float32Array } {
  const half = inv.length;
  const dim = 2 * half;
  const cos = new Float32Array(n * dim);
  const sin = new Float32Array(n * dim);
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < half; i++) {
      const angle = (start + t) * inv[i];
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[t * dim + i] = c;
      cos[t * dim + half + i] = c;
      sin[t * dim + i] = s;
      sin[t * dim + half + i] = s;
    }
  }
  return { cos, sin };
}

/**
 * rotate_half as a matrix R [dim, dim] (x·R = [−x₂, x₁]), so that on wasm it is one GEMM over [rows, dim] instead
 * of two slices, a negation and a concat. R is antisymmetric: the gradient's rotate_halfᵀ is −R.
 */
export function rotateHalfMatrix(dim: number): tf.Tensor2D {
  const h = dim / 2;
  const data = new Float32Array(dim * dim);
  for (let i = 0; i < h; i++) {
    data[(i + h) * dim + i] = -1;
    data[i * dim + i + h] = 1;
  }
  return tf.tensor2d(data, [dim, dim]);
}

/**
 * RoPE on x [B, T, heads, dim] with cos/sin [T, dim] (one row per position of T) and rot = rotateHalfMatrix(dim):
 * one op whose gradient is the transposed rotation, dx = dy·cos − (dy·sin)·R; the tables are constants of the op
 * (saved: kept views, no copies of x).
 */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor, sin: tf.Tensor, rot: tf.Tensor2D): tf.Tensor4D {
  const [B, T, heads, D] = x.shape;
  const c = tf.reshape(cos, [1, T, 1, D]);
  const s = tf.reshape(sin, [1, T, 1, D]);
  const rotate = (t: tf.Tensor, r: tf.Tensor) => tf.reshape(gemm(tf.reshape(t, [B * T * heads, D]) as tf.Tensor2D, r as tf.Tensor2D), [B, T, heads, D]);
  const op = tf.customGrad((xIn: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const v = xIn as tf.Tensor4D;
    // the tables are saved (kept for the backward pass, which runs after the pass's scopes have ended)
    (save as tf.GradSaveFunc)([c, s, rot]);
    return {
      value: tf.add(tf.mul(v, c), tf.mul(rotate(v, rot), s)),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [sc, ss, sr] = saved;
        return tf.sub(tf.mul(dy, sc), rotate(tf.mul(dy, ss), sr));
      }),
    };
  });
  return op(x) as tf.Tensor4D;
}
