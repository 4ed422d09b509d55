import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GrowingSeries, downsample, selectIndices } from '../../../webview/series';

/** a small seeded generator (the webview's tests stay independent of trainer/) */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
}

function argmin(y: ArrayLike<number>): number {
  let k = -1;
  for (let i = 0; i < y.length; i++) if (Number.isFinite(y[i]) && (k < 0 || y[i] < y[k])) k = i;
  return k;
}
function argmax(y: ArrayLike<number>): number {
  let k = -1;
  for (let i = 0; i < y.length; i++) if (Number.isFinite(y[i]) && (k < 0 || y[i] > y[k])) k = i;
  return k;
}

describe('GrowingSeries', () => {
  it('grows past its capacity and keeps every value', () => {
    const s = new GrowingSeries(2);
    for (let i = 0; i < 1000; i++) s.push(i * 0.5);
    assert.equal(s.length, 1000);
    assert.equal(s.get(999), 499.5);
    assert.equal(s.last(), 499.5);
    assert.deepEqual(Array.from(s.view().subarray(0, 3)), [0, 0.5, 1]);
    s.truncate(10);
    assert.equal(s.length, 10);
    assert.equal(s.last(), 4.5);
    s.push(-1);
    assert.equal(s.get(10), -1);
    assert.equal(new GrowingSeries().last(), undefined);
  });
});

describe('min/max downsampling', () => {
  it('keeps everything when there are few points', () => {
    assert.deepEqual(selectIndices([[1, 2, 3]], 3, 10), [0, 1, 2]);
    assert.deepEqual(selectIndices([[]], 0, 10), []);
  });

  it('bounds 100,000 points, keeps first/last and the extremes of every bucket', () => {
    const rand = lcg(7);
    const n = 100_000;
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) y[i] = Math.exp(-i / 20000) + 0.1 * (rand() - 0.5);
    y[12_345] = 50; // a spike
    y[77_777] = -50; // a dip
    for (const max of [4000, 1000, 101]) {
      const idx = selectIndices([y], n, max);
      assert.ok(idx.length <= max, `${idx.length} <= ${max}`);
      assert.ok(idx.length >= max / 2, 'uses its budget');
      assert.equal(idx[0], 0);
      assert.equal(idx[idx.length - 1], n - 1);
      for (let i = 1; i < idx.length; i++) assert.ok(idx[i] > idx[i - 1], 'sorted, no duplicates');
      assert.ok(idx.includes(12_345) && idx.includes(77_777), 'the global extremes survive');
      // the drawn range equals the full range
      const drawn = idx.map((i) => y[i]);
      assert.equal(Math.max(...drawn), 50);
      assert.equal(Math.min(...drawn), -50);
    }
  });

  it('keeps each series\' extremes when several share the x axis, within one budget', () => {
    const n = 20_000;
    const a = Float64Array.from({ length: n }, (_, i) => Math.sin(i / 100));
    const b = Float64Array.from({ length: n }, (_, i) => Math.cos(i / 37) * (i === 5000 ? 10 : 1));
    const idx = selectIndices([a, b], n, 1000);
    assert.ok(idx.length <= 1000);
    assert.ok(idx.includes(argmax(b)) && idx.includes(argmin(b)) && idx.includes(argmax(a)) && idx.includes(argmin(a)));
  });

  it('turns non-finite values into gaps (null) and keeps all-NaN buckets visible', () => {
    const n = 10_000;
    const y = Float64Array.from({ length: n }, (_, i) => (i >= 4000 && i < 6000 ? NaN : i));
    const x = Float64Array.from({ length: n }, (_, i) => i + 1);
    const [xs, ys] = downsample(x, [y], n, 200);
    assert.ok(xs.length <= 200);
    assert.equal(xs[0], 1);
    assert.equal(xs[xs.length - 1], n);
    assert.ok(ys.includes(null), 'the NaN stretch is a gap');
    assert.ok(ys.every((v) => v === null || Number.isFinite(v)));
    const [sx, sy] = downsample([1, 2, 3], [[0.5, Infinity, 0.25]], 3, 200);
    assert.deepEqual(sx, [1, 2, 3]);
    assert.deepEqual(sy, [0.5, null, 0.25]);
  });
});
