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
import { halfBits, type HalfFormat, halfMatrix, halfRows, widenInto } from '../../../trainer/ops/half';
import { f16ToF32, f32ToF16 } from '../../../trainer/io/safetensors';
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

/** Random 16-bit patterns of finite values (normals, subnormals, zeros of both signs), in either format. */
function randomHalfBits(n: number, format: HalfFormat, seed: number): Uint16Array {
  const rng = new Rng(seed);
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  return Uint16Array.from({ length: n }, (_, i) => {
    if (i % 97 === 5) return 0x8000; // −0
    if (format === 'F16' && i % 89 === 3) return (rng.int(2) << 15) | (1 + rng.int(0x3ff)); // subnormal
    if (format === 'F16') return f32ToF16(rng.normal());
    f32[0] = rng.normal();
    return u32[0] >>> 16;
  });
}

function widenRef(bits: Uint16Array, format: HalfFormat): Float32Array {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  return Float32Array.from(bits, (h) => {
    if (format === 'F16') return f16ToF32(h);
    u32[0] = h << 16;
    return f32[0];
  });
}

describe('gemm with a 16-bit B (bfloat16, IEEE half) on wasm', () => {
  const HALF_SHAPES: Array<[number, number, number]> = [[1, 2, 2], [4, 8, 8], [3, 6, 10], [5, 10, 18], [6, GEMM_KC + 4, 14], [7, 2 * GEMM_KC, GEMM_NC + 12], [9, 12, 2 * GEMM_NC + 8]];
  for (const format of ['BF16', 'F16'] as HalfFormat[]) {
    for (const transposeB of [false, true]) {
      it(`${format}, B stored ${transposeB ? '[m, k]' : '[k, m]'}: bit-equal to the float32 GEMM of the widened B, and within float32 of float64`, async () => {
        await useBackend('wasm');
        HALF_SHAPES.forEach(([n, k, m], i) => {
          const seed = 500 + 10 * i + (transposeB ? 1 : 0);
          const a = randomData(n * k, seed);
          const shape: [number, number] = transposeB ? [m, k] : [k, m];
          const bits = randomHalfBits(k * m, format, seed + 1);
          const wide = widenRef(bits, format);
          const bias = i % 2 ? randomData(m, seed + 2) : undefined;
          const half = halfMatrix(bits, shape, format);
          const [got, same] = tf.tidy(() => {
            const at = tf.tensor2d(a, [n, k]);
            const bt = bias && tf.tensor1d(bias);
            return [gemm(at, half, { transposeB, bias: bt }).dataSync(), gemm(at, tf.tensor2d(wide, shape), { transposeB, bias: bt }).dataSync()];
          });
          half.packed.dispose();
          assert.deepEqual(got, same, `[${n}, ${k}] × ${transposeB ? 'ᵀ' : ''}[${shape}]`);
          const { c, scale } = reference(a, wide, n, k, m, transposeB, bias);
          for (let j = 0; j < c.length; j++) {
            if (!(Math.abs(got[j] - c[j]) <= 1e-6 * (k + 2) * scale[j] + 1e-30)) assert.fail(`[${n}, ${k}, ${m}] entry ${j}: ${got[j]} vs float64 ${c[j]}`);
          }
        });
      });
    }
    it(`${format}: every one of the 65,536 patterns widens exactly (GEMM by 1, and the row lookup)`, async () => {
      await useBackend('wasm');
      const bits = Uint16Array.from({ length: 65536 }, (_, i) => i);
      const want = widenRef(bits, format);
      const half = halfMatrix(bits, [1, 65536], format);
      const viaGemm = tf.tidy(() => gemm(tf.ones([1, 1]), half).dataSync());
      const viaRows = tf.tidy(() => halfRows(half, tf.tensor1d([0], 'int32')).dataSync());
      half.packed.dispose();
      const host = new Float32Array(65536);
      widenInto(bits, format, host);
      for (let h = 0; h < 65536; h++) {
        const w = want[h];
        if (Number.isNaN(w)) {
          assert.ok(Number.isNaN(viaGemm[h]) && Number.isNaN(viaRows[h]) && Number.isNaN(host[h]), `pattern 0x${h.toString(16)}: NaN expected`);
          continue;
        }
        // 0 + 1·(−0) is +0 in the GEMM's accumulation: compare values there, bits in the lookups
        assert.ok(viaGemm[h] === w, `GEMM, pattern 0x${h.toString(16)}: ${viaGemm[h]} vs ${w}`);
        assert.ok(Object.is(viaRows[h], w) && Object.is(host[h], w), `lookup, pattern 0x${h.toString(16)}: ${viaRows[h]} / ${host[h]} vs ${w}`);
      }
    });
  }

  it('halfRows gathers and widens rows; halfBits gives the stored bits back', async () => {
    await useBackend('wasm');
    const bits = randomHalfBits(7 * 10, 'BF16', 77);
    const half = halfMatrix(bits, [7, 10], 'BF16');
    const rows = tf.tidy(() => halfRows(half, tf.tensor1d([6, 0, 6, 3], 'int32')).dataSync());
    const wide = widenRef(bits, 'BF16');
    assert.deepEqual([...rows], [6, 0, 6, 3].flatMap((r) => [...wide.subarray(r * 10, r * 10 + 10)]));
    assert.deepEqual(halfBits(half), bits);
    half.packed.dispose();
    assert.throws(() => halfMatrix(new Uint16Array(21), [7, 3], 'BF16'), /16-bit matrix of \[7,3\]/);
  });
});
