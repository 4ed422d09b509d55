/**
 * The wasm fused kernels (trainer/ops/heap_kernels.ts) against the tf-op compositions they replace, run
 * on the cpu backend as an independent reference: gelu_new and LayerNorm values and gradients (their SIMD
 * versions in the wasm module, and the JavaScript passes where SIMD does not apply), the blocked 2-D transpose.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { activation, layerNorm } from '../../../trainer/ops/layers';
import { geluNewFused, heapKernelsAvailable, installHeapKernels, layerNormFused } from '../../../trainer/ops/heap_kernels';
import { installWasmKernels } from '../../../trainer/ops/wasm_kernels';
import { Rng } from '../../../trainer/util/rng';
import { initBothBackends, relErr, useBackend } from './tiny';

function randomData(n: number, seed: number, scale = 3): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal() * scale);
}

/** Runs f on a backend with host inputs; returns host outputs. */
async function on(backend: string, f: () => tf.Tensor[]): Promise<Float32Array[]> {
  await useBackend(backend);
  return tf.tidy(f).map((t) => {
    const d = Float32Array.from(t.dataSync() as Float32Array);
    t.dispose();
    return d;
  });
}

describe('wasm heap kernels vs the tf-op compositions on cpu', () => {
  before(async () => {
    await initBothBackends();
    await useBackend('wasm');
    installWasmKernels();
    installHeapKernels();
    assert.ok(heapKernelsAvailable());
  });

  // 64 × 48 runs four at a time in SIMD; 5 × 7 leaves a scalar tail
  for (const [R, C] of [[64, 48], [5, 7]]) {
    it(`gelu_new: values and gradient, including large |x| ([${R}, ${C}])`, async () => {
      const x = randomData(R * C, 1);
      x[0] = 40;
      x[1] = -40;
      const dy = randomData(R * C, 2, 1);
      const run = (fused: boolean) => () => {
        const xt = tf.tensor2d(x, [R, C]);
        const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(fused ? geluNewFused(v) : activation('gelu_new', v), tf.tensor2d(dy, [R, C]))));
        return [fused ? geluNewFused(xt) : activation('gelu_new', xt), g(xt)];
      };
      const [fy, fg] = await on('wasm', run(true));
      const [ry, rg] = await on('cpu', run(false));
      assert.ok(relErr(fy, ry) < 1e-6, `values: ${relErr(fy, ry)}`);
      assert.ok(relErr(fg, rg) < 1e-5, `gradient: ${relErr(fg, rg)}`);
      assert.ok(Number.isFinite(fg[0]) && Number.isFinite(fg[1]));
    });
  }

  // C = 96 runs in the wasm module (SIMD); C = 30 (not a multiple of 4) in the JavaScript pass
  for (const [N, C] of [[37, 96], [9, 30]]) {
    it(`LayerNorm: values and gradient ([${N}, ${C}])`, async () => {
      const x = randomData(N * C, 3);
      const gamma = randomData(C, 4, 1);
      const beta = randomData(C, 5, 1);
      const dy = randomData(N * C, 6, 1);
      const run = (fused: boolean) => () => {
        // γ and β are frozen weights that outlive the pass, as in the model
        const [g1, b1] = [tf.tensor1d(gamma), tf.tensor1d(beta)];
        const ln = (v: tf.Tensor) => (fused ? layerNormFused : layerNorm)(v as tf.Tensor2D, g1, b1, 1e-5);
        const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(ln(v), tf.tensor2d(dy, [N, C]))));
        const xt = tf.tensor2d(x, [N, C]);
        return [ln(xt), g(xt)];
      };
      const [fy, fg] = await on('wasm', run(true));
      const [ry, rg] = await on('cpu', run(false));
      assert.ok(relErr(fy, ry) < 1e-5, `values: ${relErr(fy, ry)}`);
      assert.ok(relErr(fg, rg) < 1e-4, `gradient: ${relErr(fg, rg)}`);
    });
  }

  it('LayerNorm stays right when allocating its outputs grows the heap (views are taken after every allocation)', async () => {
    await useBackend('wasm');
    const heapBytes = (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length;
    const C = 256;
    const N = Math.ceil(heapBytes / 2 / (C * 4)); // three outputs of x's size cannot fit in the current heap
    const x = randomData(N * C, 8);
    const [y] = tf.tidy(() => [layerNormFused(tf.tensor2d(x, [N, C]), tf.ones([C]) as tf.Tensor1D, tf.zeros([C]) as tf.Tensor1D, 1e-5)]).map((t) => {
      const d = t.dataSync() as Float32Array;
      t.dispose();
      return d;
    });
    assert.ok((tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length > heapBytes, 'the heap grew');
    for (const r of [0, N - 1]) {
      const row = x.subarray(r * C, (r + 1) * C);
      const mean = row.reduce((a, v) => a + v, 0) / C;
      const rstd = 1 / Math.sqrt(row.reduce((a, v) => a + (v - mean) ** 2, 0) / C + 1e-5);
      const want = Float32Array.from(row, (v) => (v - mean) * rstd);
      assert.ok(relErr(y.subarray(r * C, (r + 1) * C), want) < 1e-5, `row ${r}`);
    }
  });

  it('blocked transposes (2-D, and 3-D [0, 2, 1]) equal the cpu transpose, for shapes that are not multiples of the block', async () => {
    for (const [r, c] of [[1, 7], [33, 65], [100, 3]]) {
      const x = randomData(r * c, r + c);
      const [w] = await on('wasm', () => [tf.transpose(tf.tensor2d(x, [r, c]))]);
      const [cpu] = await on('cpu', () => [tf.transpose(tf.tensor2d(x, [r, c]))]);
      assert.deepEqual(Array.from(w), Array.from(cpu));
    }
    const x3 = randomData(3 * 9 * 13, 5);
    const [w3] = await on('wasm', () => [tf.transpose(tf.tensor3d(x3, [3, 9, 13]), [0, 2, 1])]);
    const [c3] = await on('cpu', () => [tf.transpose(tf.tensor3d(x3, [3, 9, 13]), [0, 2, 1])]);
    assert.deepEqual(Array.from(w3), Array.from(c3));
  });
});
