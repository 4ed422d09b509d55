/**
 * What both families' folder loaders share: transformers' init of a Linear head the checkpoint lacks (a seq-cls
 * `score.weight`), and the exact comparison of a stored head with the embedding it is tied to.
 */
import type { HostTensor } from '../io/safetensors';
import { Rng } from '../util/rng';

/** transformers' _init_weights for an nn.Linear without bias: normal(0, initializer_range), seeded; stored as `dtype`. */
export function initLinearHead(shape: number[], initializerRange: unknown, seed: number, dtype: HostTensor['dtype']): HostTensor {
  const std = typeof initializerRange === 'number' ? initializerRange : 0.02;
  const rng = new Rng(seed);
  const data = new Float32Array(shape[0] * shape[1]);
  for (let i = 0; i < data.length; i++) data[i] = std * rng.normal();
  return { shape: [...shape], data, dtype };
}

/** Bit-equal values (NaN equal to NaN): a stored lm_head that is truly the tied embedding. */
export function sameValues(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return false;
  return true;
}
