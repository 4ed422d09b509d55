/**
 * Gradient clipping by global norm with torch.nn.utils.clip_grad_norm_ semantics:
 * total_norm = sqrt(Σ‖g‖²); when max_norm/(total_norm + 1e-6) < 1 every gradient is scaled by it.
 */
import * as tf from '@tensorflow/tfjs-core';

export interface ClipResult {
  /** fresh tensors (the caller disposes them, and still owns and disposes the inputs) */
  grads: Map<string, tf.Tensor>;
  /** the norm before clipping: what transformers logs as grad_norm */
  norm: number;
}

/** Global L2 norm of all gradients, computed in float32 as torch does for float32 gradients. */
export async function globalNorm(grads: Map<string, tf.Tensor>): Promise<number> {
  if (grads.size === 0) return 0;
  const total = tf.tidy(() => tf.sqrt(tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g))))));
  const norm = (await total.data())[0];
  total.dispose();
  return norm;
}

/** `max_norm` ≤ 0 or null disables clipping; the norm is returned either way. Inputs are not modified or disposed. */
export async function clipByGlobalNorm(grads: Map<string, tf.Tensor>, max_norm: number | null): Promise<ClipResult> {
  const norm = await globalNorm(grads);
  const out = new Map<string, tf.Tensor>();
  const clipCoef = max_norm !== null && max_norm > 0 ? max_norm / (norm + 1e-6) : 1;
  if (clipCoef < 1) {
    // like torch, the coefficient is a float32 scalar multiplied into each gradient
    const coef = tf.scalar(clipCoef, 'float32');
    for (const [name, g] of grads) out.set(name, tf.mul(g, coef));
    coef.dispose();
  } else {
    for (const [name, g] of grads) out.set(name, tf.clone(g));
  }
  return { grads: out, norm };
}
