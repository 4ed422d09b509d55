/**
 * Chart data at scale, without the DOM: growable Float64Array series, and the min/max-per-bucket selection
 * that cuts 100,000 points down to what a chart can show while keeping the first and last points and every
 * bucket's extremes (so spikes in the loss never disappear from the plot).
 */

export class GrowingSeries {
  private buf: Float64Array;
  private n = 0;

  constructor(capacity = 256) {
    this.buf = new Float64Array(Math.max(1, capacity));
  }

  static from(values: ArrayLike<number>): GrowingSeries {
    const s = new GrowingSeries(values.length);
    for (let i = 0; i < values.length; i++) s.push(values[i]);
    return s;
  }

  get length(): number {
    return this.n;
  }

  push(v: number): void {
    if (this.n === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.n++] = v;
  }

  get(i: number): number {
    return this.buf[i];
  }

  last(): number | undefined {
    return this.n > 0 ? this.buf[this.n - 1] : undefined;
  }

  /** Keeps the first `n` values. */
  truncate(n: number): void {
    this.n = Math.max(0, Math.min(this.n, n));
  }

  clear(): void {
    this.n = 0;
  }

  /** The values, without copying (valid until the next push). */
  view(): Float64Array {
    return this.buf.subarray(0, this.n);
  }
}

/**
 * The indices to draw of `n` points whose y values are `ys` (one or more series sharing the x axis), at most
 * `maxPoints` of them. Up to `maxPoints` points: all. Otherwise the first and the last index, and for each
 * series and each of its buckets (consecutive index ranges) the index of the smallest and of the largest
 * finite value; a bucket with no finite value keeps its first index, so a gap stays visible.
 * Returned sorted and without duplicates.
 */
export function selectIndices(ys: readonly ArrayLike<number>[], n: number, maxPoints: number): number[] {
  const budget = Math.max(2, Math.floor(maxPoints));
  if (n <= budget) return Array.from({ length: Math.max(0, n) }, (_, i) => i);
  const interior = n - 2;
  const perSeries = Math.max(2, Math.floor((budget - 2) / Math.max(1, ys.length)));
  const buckets = Math.max(1, Math.floor(perSeries / 2));
  const keep = new Uint8Array(n);
  keep[0] = 1;
  keep[n - 1] = 1;
  for (const y of ys) {
    for (let b = 0; b < buckets; b++) {
      const lo = 1 + Math.floor((b * interior) / buckets);
      const hi = 1 + Math.floor(((b + 1) * interior) / buckets); // exclusive
      let iMin = -1;
      let iMax = -1;
      for (let i = lo; i < hi; i++) {
        const v = y[i];
        if (!Number.isFinite(v)) continue;
        if (iMin < 0 || v < y[iMin]) iMin = i;
        if (iMax < 0 || v > y[iMax]) iMax = i;
      }
      if (iMin < 0) {
        if (lo < hi) keep[lo] = 1;
      } else {
        keep[iMin] = 1;
        keep[iMax] = 1;
      }
    }
  }
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (keep[i]) out.push(i);
  return out;
}

/** uPlot's data for `indices`: x, then each series with non-finite values as null (a gap). */
export function gather(x: ArrayLike<number>, ys: readonly ArrayLike<number>[], indices: readonly number[]): [number[], ...(number | null)[][]] {
  const xs = indices.map((i) => x[i]);
  const cols = ys.map((y) => indices.map((i) => (Number.isFinite(y[i]) ? y[i] : null)));
  return [xs, ...cols];
}

/** Draw-ready data of `n` points: everything when small, a min/max selection when large. */
export function downsample(x: ArrayLike<number>, ys: readonly ArrayLike<number>[], n: number, maxPoints: number): [number[], ...(number | null)[][]] {
  return gather(x, ys, selectIndices(ys, n, maxPoints));
}
