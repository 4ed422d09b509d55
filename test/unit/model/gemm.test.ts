/**
 * LoRA Studio's wasm GEMM (trainer/ops/gemm.ts) against a float64 product computed here: both layouts
 * of B, with and without bias, at shapes that exercise every edge of the blocking (row remainders of 1–3, panels
 * narrower than 8 columns, more than one KC block of k and NC block of m), an output that makes the heap grow,
 * the fallback to tf.matMul on the cpu backend, and both builds (fused multiply-add, separate multiplies and
 * adds). Also checks that the bundled binaries are the assembled text.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { assembleGemm, gemm, gemmAvailable, gemmVariant, GEMM_WASM, type GemmVariant, prepareGemm } from '../../../trainer/ops/gemm';
import { GEMM_KC, GEMM_NC } from '../../../trainer/ops/gemm_wat';
import { Rng } from '../../../trainer/util/rng';
import { useBackend } from './tiny';

function randomData(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
}

/** C = A·B (+ bias) in float64, B given as [k, m] or, with transposeB, as [m, k]; also Σ|a·b| per entry. */
function reference(a: Float32Array, b: Float32Array, n: number, k: number, m: number, transposeB: boolean, bias?: Float32Array): { c: Float64Array; scale: Float64Array } {
  const c = new Float64Array(n * m);
  const scale = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = bias ? bias[j] : 0;
      let abs = bias ? Math.abs(bias[j]) : 0;
      for (let p = 0; p < k; p++) {
        const v = a[i * k + p] * (transposeB ? b[j * k + p] : b[p * m + j]);
        s += v;
        abs += Math.abs(v);
      }
      c[i * m + j] = s;
      scale[i * m + j] = abs;
    }
  }
  return { c, scale };
}

function check(n: number, k: number, m: number, transposeB: boolean, withBias: boolean, seed: number): void {
  const a = randomData(n * k, seed);
  const b = randomData(k * m, seed + 1);
  const bias = withBias ? randomData(m, seed + 2) : undefined;
  const out = tf.tidy(() => gemm(tf.tensor2d(a, [n, k]), tf.tensor2d(b, transposeB ? [m, k] : [k, m]), { transposeB, bias: bias && tf.tensor1d(bias) }));
  assert.deepEqual(out.shape, [n, m]);
  const got = out.dataSync();
  out.dispose();
  const { c, scale } = reference(a, b, n, k, m, transposeB, bias);
  for (let i = 0; i < c.length; i++) {
    // float32 accumulation: the error is bounded by a few ulps of the sum of |terms| per step of k
    const tol = 1e-6 * (k + 2) * scale[i] + 1e-30;
    if (!(Math.abs(got[i] - c[i]) <= tol)) assert.fail(`[${n}, ${k}] × ${transposeB ? 'ᵀ' : ''}[${k}, ${m}]${withBias ? ' + bias' : ''}: entry ${i} is ${got[i]}, float64 gives ${c[i]}`);
  }
}

/** (n, k, m): tiny; 4-row and 8-column multiples; row remainders 1–3 with narrow panels; several KC and NC blocks. */
const SHAPES: Array<[number, number, number]> = [
  [1, 1, 1],
  [4, 8, 8],
  [3, 5, 7],
  [5, 9, 17],
  [6, GEMM_KC + 3, 13],
  [7, 2 * GEMM_KC, GEMM_NC + 11],
  [9, 12, 2 * GEMM_NC + 8],
];

describe('gemm on wasm vs a float64 product', () => {
  it('runs as its own kernel once the wasm backend is up', async () => {
    await useBackend('wasm');
    assert.equal(gemmAvailable(), true);
    // Node ≥ 20 compiles relaxed SIMD (Node 20 once prepareGemm has set its flag)
    assert.equal(gemmVariant(), 'fma');
    const profile = await tf.profile(() => gemm(tf.ones([2, 3]), tf.ones([3, 4])));
    assert.ok(profile.kernels.some((k) => k.name === 'LoraStudioGemm'), `kernels: ${profile.kernels.map((k) => k.name).join(', ')}`);
  });

  for (const transposeB of [false, true]) {
    for (const withBias of [false, true]) {
      it(`B ${transposeB ? 'stored [m, k] (A·Bᵀ)' : 'stored [k, m]'}${withBias ? ', with bias' : ''}`, async () => {
        await useBackend('wasm');
        SHAPES.forEach(([n, k, m], i) => check(n, k, m, transposeB, withBias, 100 * i + (transposeB ? 7 : 0) + (withBias ? 3 : 0)));
      });
    }
  }

  it('the build without relaxed SIMD (separate multiplies and adds) gives the same products', async () => {
    await useBackend('wasm');
    await prepareGemm('mul-add');
    try {
      assert.equal(gemmVariant(), 'mul-add');
      SHAPES.forEach(([n, k, m], i) => check(n, k, m, i % 2 === 0, i % 3 === 0, 1000 + i));
    } finally {
      await prepareGemm('fma');
    }
  });

  it('writes a correct output when allocating it grows the heap', async () => {
    await useBackend('wasm');
    const heapBytes = () => (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length;
    const before = heapBytes();
    // an output bigger than the whole heap cannot fit without growing it
    const m = Math.ceil(before / 4 / 4) + 8;
    const a = tf.tensor2d(randomData(4 * 3, 1), [4, 3]);
    const b = tf.tensor2d(randomData(3 * m, 2), [3, m]);
    const out = gemm(a, b);
    assert.ok(heapBytes() > before, 'the heap did not grow');
    const expected = tf.tidy(() => tf.matMul(a, b));
    // the same products summed in the same order: equal up to the last bit or two
    const [got, want] = [out.dataSync(), expected.dataSync()];
    for (let i = 0; i < got.length; i += 997) assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * (1 + Math.abs(want[i])), `entry ${i}: ${got[i]} vs ${want[i]}`);
    tf.dispose([a, b, out, expected]);
  });

  it('falls back to tf.matMul on the cpu backend', async () => {
    await useBackend('cpu');
    assert.equal(gemmAvailable(), false);
    check(5, 9, 17, true, true, 11);
    check(5, 9, 17, false, false, 12);
  });

  for (const [which, file] of Object.entries(GEMM_WASM) as Array<[GemmVariant, string]>) {
    const built = path.resolve(__dirname, '..', '..', '..', 'dist', 'trainer', file);
    it(`the bundled ${file} is the assembled text`, { skip: fs.existsSync(built) ? false : `skipped: dist/trainer/${file} is absent (npm run build makes it)` }, async () => {
      assert.deepEqual(new Uint8Array(fs.readFileSync(built)), await assembleGemm(which));
    });
  }
});
