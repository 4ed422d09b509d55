/**
 * The Llama family's own layers: RMSNorm (LlamaRMSNorm, in float32: x·rsqrt(mean(x²) + eps)·weight) and the SiLU-
 * gated MLP's product silu(gate)·up. Each comes as the plain tf-op composition (kernels 'reference') and as one op
 * with a hand-written gradient that saves less (kernels 'fast').
 */
import * as tf from '@tensorflow/tfjs-core';
import { isTrainable } from '../../ops/layers';

export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps));
  return tf.mul(tf.mul(x, rstd), weight);
}

/**
 * RMSNorm with a frozen weight as one op: saves x̂ = x·rstd and rstd. With g = dy·weight,
 * dx = rstd·(g − x̂·mean(g·x̂)). A trained weight (modules_to_save, none by default) takes the composition.
 */
export function rmsNormFast(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  if (isTrainable(weight)) return rmsNorm(x, weight, eps);
  const op = tf.customGrad((xIn: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const v = xIn as tf.Tensor2D;
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(v), -1, true), eps));
    const xhat = tf.mul(v, rstd);
    (save as tf.GradSaveFunc)([xhat, rstd]);
    return {
      value: tf.mul(xhat, weight),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [sx, sr] = saved;
        const g = tf.mul(dy, weight);
        return tf.mul(tf.sub(g, tf.mul(sx, tf.mean(tf.mul(g, sx), -1, true))), sr);
      }),
    };
  });
  return op(x) as tf.Tensor2D;
}

/** silu(gate)·up = gate·σ(gate)·up. */
export function swiglu(gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D {
  return tf.mul(tf.mul(gate, tf.sigmoid(gate)), up);
}

/**
 * swiglu as one op: saves gate and up (autograd kept σ(gate), gate·σ(gate) as well).
 * d/dgate = dy·up·σ·(1 + gate·(1 − σ)), d/dup = dy·gate·σ.
 */
export function swigluFast(gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D {
  const op = tf.customGrad((gIn: tf.Tensor | tf.GradSaveFunc, uIn: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const g = gIn as tf.Tensor2D;
    const u = uIn as tf.Tensor2D;
    (save as tf.GradSaveFunc)([g, u]);
    return {
      value: tf.mul(tf.mul(g, tf.sigmoid(g)), u),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [sg, su] = saved;
        const sig = tf.sigmoid(sg);
        const silu = tf.mul(sg, sig);
        const dSilu = tf.add(sig, tf.mul(silu, tf.sub(1, sig)));
        return [tf.mul(tf.mul(dy, su), dSilu), tf.mul(dy, silu)];
      }),
    };
  });
  return op(gate, up) as tf.Tensor2D;
}
