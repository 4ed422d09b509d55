import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_SMOOTHING, clampSmoothing, emaSmooth } from '../../../webview/smoothing';

const close = (a: ArrayLike<number>, b: number[], eps = 1e-12) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++) {
    if (Number.isNaN(b[i])) assert.ok(Number.isNaN(a[i]), `[${i}] is ${a[i]}, expected NaN`);
    else assert.ok(a[i] === b[i] || Math.abs(a[i] - b[i]) <= eps, `[${i}] is ${a[i]}, expected ${b[i]}`);
  }
};

describe('TensorBoard smoothing (EMA with debias)', () => {
  it('matches hand-computed values at w = 0.6', () => {
    // last: 0.4·1 = 0.4 → /0.4 = 1; 0.6·0.4 + 0.4·2 = 1.04 → /0.64 = 1.625; 0.6·1.04 + 0.4·3 = 1.824 → /0.784
    close(emaSmooth([1, 2, 3], 0.6), [1, 1.625, 1.824 / 0.784]);
  });

  it('matches hand-computed values at w = 0.9 (the debias keeps the first point at its value)', () => {
    // 0.1·10 = 1 → /0.1 = 10; 0.9·1 + 0.1·0 = 0.9 → /0.19
    close(emaSmooth([10, 0], 0.9), [10, 0.9 / 0.19]);
  });

  it('passes non-finite values through and does not count them', () => {
    close(emaSmooth([1, NaN, 2, Infinity, 3], 0.6), [1, NaN, 1.625, Infinity, 1.824 / 0.784]);
  });

  it('leaves a constant series and w = 0 as they are', () => {
    close(emaSmooth([5, 5, 5, 5], 0.9), [5, 5, 5, 5], 0);
    close(emaSmooth([3, 1, 4, 1, 5], 0), [3, 1, 4, 1, 5]);
    assert.equal(emaSmooth([], 0.6).length, 0);
  });

  it('tames a series that swings between 0 and 20k (tokens/s)', () => {
    const raw = Array.from({ length: 200 }, (_, i) => (i % 2 ? 20_000 : 0));
    const s = emaSmooth(raw, 0.99);
    const tail = Array.from(s.slice(100));
    assert.ok(Math.max(...tail) - Math.min(...tail) < 1_000, `still swings: ${Math.min(...tail)}..${Math.max(...tail)}`);
    assert.ok(Math.abs(tail[tail.length - 1] - 10_000) < 1_000);
  });

  it('clamps the weight into [0, 0.999], default 0.6', () => {
    assert.equal(DEFAULT_SMOOTHING, 0.6);
    assert.equal(clampSmoothing(2), 0.999);
    assert.equal(clampSmoothing(-1), 0);
    assert.equal(clampSmoothing('x'), 0.6);
    assert.equal(clampSmoothing(undefined), 0.6);
    assert.equal(clampSmoothing(0.25), 0.25);
  });
});
