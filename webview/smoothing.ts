/**
 * TensorBoard's scalar smoothing: an exponential moving average with debiasing, exactly as its scalar charts
 * compute it. With weight w in [0, 1), last = w·last + (1 − w)·y over the finite values, starting from 0, and
 * each point is last / (1 − w^k) after k finite values, which removes the pull towards the start value 0.
 * Non-finite values pass through unchanged (and do not move the average); a constant series stays as it is
 * (so the float error of the debias never shows on a flat line). w = 0 is the raw series.
 */

/** Smoothing weights are kept in [0, 0.999] (TensorBoard's slider goes to 0.999; 1 would freeze the line). */
export const MAX_SMOOTHING = 0.999;
export const DEFAULT_SMOOTHING = 0.6;

export function clampSmoothing(w: unknown): number {
  return typeof w === 'number' && Number.isFinite(w) ? Math.min(MAX_SMOOTHING, Math.max(0, w)) : DEFAULT_SMOOTHING;
}

export function emaSmooth(values: ArrayLike<number>, weight: number): Float64Array {
  const n = values.length;
  const out = new Float64Array(n);
  const w = Math.min(MAX_SMOOTHING, Math.max(0, weight));
  let first: number | undefined;
  let constant = true;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    if (first === undefined) first = v;
    else if (v !== first) {
      constant = false;
      break;
    }
  }
  let last = 0;
  let k = 0;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (constant || !Number.isFinite(v)) {
      out[i] = v;
      continue;
    }
    last = last * w + (1 - w) * v;
    k++;
    out[i] = w === 1 ? last : last / (1 - Math.pow(w, k));
  }
  return out;
}
