/**
 * The streaming merge's tensor step (lora/merge_stream.ts mergedTensorBytes) against mergeAdapter, bit for bit,
 * on both of its paths: JavaScript (lora/merge.ts's arithmetic, when the kernel is not prepared: a run from source)
 * and the rank-update kernel (ops/rank_update.ts, WebAssembly SIMD, the bundled CLI's path). On F32, BF16 and F16
 * bytes, both orientations (Conv1D [in, out] and Linear [out, in]), r = 1, 3, 5, 8, 16, the kernel's two-row by
 * eight-column steps and every remainder (an odd row, fewer than eight columns, one row, one column), with signed
 * zeros, tiny values and products large enough to cancel, so that a sum taken in another order fails; sums from
 * +0; halfway values and results across each format's range rounded as the encoder rounds; and a value that
 * overflows its dtype refused with mergeAdapter's own message (index and value).
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { type FloatDType, type HostTensor, decodeFloatsInto, encodeFloatsInto, encodeTensor } from '../../../trainer/io/safetensors';
import { adapterConfigJson } from '../../../trainer/lora/adapter_io';
import { LORA_DEFAULTS } from '../../../trainer/lora/config';
import { mergeAdapter } from '../../../trainer/lora/merge';
import { MergeScratch, mergedTensorBytes, planPatches, type LoraPatch } from '../../../trainer/lora/merge_stream';
import { prepareRankUpdate, rankUpdater } from '../../../trainer/ops/rank_update';
import { LoraStudioError } from '../../../trainer/errors';
import type { AdapterWeights } from '../../../trainer/lora/types';
import { Rng } from '../../../trainer/util/rng';

// ±2^30 factors make ±2^60 products that cancel: a sum taken in another order (or from -0) gives other bits
const SPECIAL = [0, -0, 2 ** 30, -(2 ** 30), 1, -1, 1e-40, 3e4];
// the same within F16's range (±65504 once merged): ±2^4 factors still cancel, 1e-6 is subnormal in F16
const SPECIAL_F16 = [0, -0, 16, -16, 1, -1, 1e-6, 30];

function tensor(shape: number[], rng: Rng, special = SPECIAL): HostTensor {
  const data = new Float32Array(shape[0] * shape[1]);
  for (let i = 0; i < data.length; i++) data[i] = rng.int(3) === 0 ? special[i % special.length] : 0.3 * rng.normal();
  return { shape, data, dtype: 'F32' };
}

const module = 'h.0.proj';
const key = `${module}.weight`;

/** A random weight (as stored in `dtype`, decoded) and adapter, its LoRA patch, and mergeAdapter's result. */
function setUp(r: number, inF: number, outF: number, conv1d: boolean, seed: number, dtype: FloatDType = 'F32', big = 1) {
  const rng = new Rng(seed);
  const special = dtype === 'F16' ? SPECIAL_F16 : SPECIAL;
  const W = tensor(conv1d ? [inF, outF] : [outF, inF], rng, special);
  const stored = new Uint8Array(W.data.length * (dtype === 'F32' ? 4 : 2));
  encodeFloatsInto(W.data, dtype, stored);
  decodeFloatsInto(stored, dtype, W.data);
  W.dtype = dtype;
  const B = tensor([outF, r], rng, special);
  B.data.forEach((v, i) => { B.data[i] = v * big; });
  const adapter: AdapterWeights = {
    config: adapterConfigJson({ ...LORA_DEFAULTS, r, lora_alpha: 7, target_modules: ['proj'], fan_in_fan_out: conv1d }, 'causal-lm', 'test'),
    lora: new Map([[module, { A: tensor([r, inF], rng, special), B }]]),
    extra: new Map(),
  };
  const patch = planPatches(adapter, () => conv1d, () => W.shape).get(key) as LoraPatch;
  return { W, stored, patch, merge: () => mergeAdapter(new Map([[key, W]]), adapter, () => conv1d).get(key)! };
}

/** The one value a 1-element tensor's bytes hold. */
function decodeTensorValue(bytes: Uint8Array, dtype: FloatDType): number {
  const out = new Float32Array(1);
  decodeFloatsInto(bytes, dtype, out);
  return out[0];
}

/** The tests, on the JavaScript path (the kernel not prepared) or through the WebAssembly kernel. */
function suite(wasm: boolean): void {
  const name = wasm ? 'the rank-update kernel (WebAssembly)' : 'without the kernel (a run from source): mergedTensorBytes';
  describe(`${name} = mergeAdapter, bit for bit`, () => {
    before(async () => {
      if (wasm) await prepareRankUpdate();
    });

    const SHAPES: Array<[number, number, number]> = [
      [8, 64, 48], // two rows by eight columns throughout
      [8, 63, 45], // an odd row left over, and columns left over on either side
      [3, 21, 13],
      [16, 9, 37],
      [1, 7, 5],
      [8, 1, 19], // Conv1D: one row of 19; Linear: 19 rows of one column
      [5, 19, 1],
    ];
    for (const dtype of ['F32', 'BF16', 'F16'] as const) {
      for (const conv1d of [true, false]) {
        it(`${dtype}, ${conv1d ? 'Conv1D' : 'Linear'}: r = 1, 3, 5, 8, 16, row and column remainders`, () => {
          assert.equal(rankUpdater() !== null, wasm, wasm ? 'the kernel is prepared' : 'no kernel before prepareRankUpdate');
          SHAPES.forEach(([r, inF, outF], i) => {
            const { stored, patch, merge } = setUp(r, inF, outF, conv1d, 100 + i, dtype);
            const want = encodeTensor(merge());
            const got = mergedTensorBytes(patch, dtype, merge().shape, (into) => into.set(stored), new MergeScratch());
            assert.ok(Buffer.from(got).equals(want), `r=${r} ${inF}×${outF}: the bytes differ from mergeAdapter's`);
          });
        });
      }
      it(`${dtype}: every sum starts from +0 (W = -0, products -0: the merged values are +0)`, () => {
        for (const [r, inF, outF] of SHAPES) {
          const { W, stored, patch, merge } = setUp(r, inF, outF, false, 1, dtype);
          W.data.fill(-0);
          stored.set(encodeTensor(W));
          patch.A.data.fill(0);
          patch.B.data.fill(-1);
          const want = encodeTensor(merge());
          assert.ok(want.every((b, i) => (i % (dtype === 'F32' ? 4 : 2) === 0 ? true : b === 0)), 'mergeAdapter gives +0');
          const got = mergedTensorBytes(patch, dtype, merge().shape, (into) => into.set(stored), new MergeScratch());
          assert.ok(Buffer.from(got).equals(want), `r=${r} ${inF}×${outF}: -0 where mergeAdapter has +0`);
        }
      });
      if (dtype !== 'F32') {
        it(`${dtype}: halfway values round to even`, () => {
          // r = 7 and lora_alpha = 7: scaling 1; ΔW = 2^-12 everywhere, added to 1 and to 1 + 2^-10 (BF16: 2^-8 to 1
          // and 1 + 2^-7), each exactly halfway between two stored values
          const half = dtype === 'BF16' ? 2 ** -8 : 2 ** -11;
          const { W, stored, patch, merge } = setUp(7, 21, 13, false, 3, dtype);
          W.data.forEach((_, i) => { W.data[i] = i % 2 ? 1 : 1 + 2 * half; });
          stored.set(encodeTensor(W));
          patch.A.data.fill(0);
          patch.B.data.fill(0);
          for (let i = 0; i < 21; i++) patch.A.data[i] = half;
          for (let o = 0; o < 13; o++) patch.B.data[o * 7] = 1;
          const want = encodeTensor(merge());
          const got = mergedTensorBytes(patch, dtype, merge().shape, (into) => into.set(stored), new MergeScratch());
          assert.ok(Buffer.from(got).equals(want), 'halfway values rounded otherwise than mergeAdapter');
        });
      }
      it(`${dtype}: results across the format's range (subnormals, halfway cases, the largest finite) round as the encoder rounds`, () => {
        // r = 7, lora_alpha = 7 (scaling 1), W = +0, A's first row all 1, B's first column the targets: every merged
        // value is its row's target exactly in float32, in the eight-column code and in the one left over
        const f32 = new Float32Array(1);
        const u32 = new Uint32Array(f32.buffer);
        const [lo, hi, mbits] = dtype === 'F16' ? [-27, 15, 13] : dtype === 'BF16' ? [-134, 127, 16] : [-149, 127, 0];
        const low = (1 << mbits) - 1;
        const half = mbits ? 1 << (mbits - 1) : 0;
        const patterns = [0, 1, half - 1, half, half + 1, 2 * half, 3 * half, low, 0x400000, 0x7fffff & ~low, 0x7fffff];
        const targets: number[] = [];
        for (let e = lo; e <= hi; e++) {
          for (const m of patterns) {
            u32[0] = (Math.max(e + 127, 0) << 23) | (m & 0x7fffff);
            for (const sign of [1, -1]) targets.push(sign * f32[0]);
          }
        }
        const stored = (t: number) => encodeTensor({ shape: [1], data: Float32Array.of(t), dtype });
        const finite = targets.filter((t) => Number.isFinite(decodeTensorValue(stored(t), dtype)));
        const { W, stored: bytes, patch, merge } = setUp(7, 9, finite.length, false, 5, dtype);
        W.data.fill(0);
        bytes.set(encodeTensor(W));
        patch.A.data.fill(0);
        patch.B.data.fill(0);
        for (let i = 0; i < 9; i++) patch.A.data[i] = 1;
        finite.forEach((t, o) => { patch.B.data[o * 7] = t; });
        const want = encodeTensor(merge());
        const got = mergedTensorBytes(patch, dtype, merge().shape, (into) => into.set(bytes), new MergeScratch());
        const size = dtype === 'F32' ? 4 : 2;
        for (let i = 0; i < want.length; i += size) {
          if (!Buffer.from(got.subarray(i, i + size)).equals(want.subarray(i, i + size))) {
            const hex = (b: Uint8Array) => Buffer.from(b.subarray(i, i + size)).toString('hex');
            assert.fail(`${finite[Math.floor(i / size / 9)]}: stored as ${hex(got)}, the encoder gives ${hex(want)}`);
          }
        }
        assert.ok(finite.length > 500, `${finite.length} values`);
      });
      it(`${dtype}: a value that is not finite once stored gets mergeAdapter's message`, () => {
        // F32 overflows past 3.4e38, BF16 rounds up to infinity just below it, F16 overflows above 65504
        const big = dtype === 'F16' ? 1e4 : 1e36;
        const { stored, patch, merge } = setUp(8, 64, 48, false, 7, dtype, big);
        let want: LoraStudioError | undefined;
        try {
          merge();
        } catch (e) {
          want = e as LoraStudioError;
        }
        assert.ok(want instanceof LoraStudioError, 'mergeAdapter refuses this adapter');
        assert.throws(() => mergedTensorBytes(patch, dtype, [48, 64], (into) => into.set(stored), new MergeScratch()), (e: unknown) => {
          assert.ok(e instanceof LoraStudioError);
          assert.equal(e.message, want!.message);
          assert.equal(e.field, module);
          return true;
        });
      });
    }
  });
}

suite(false);
suite(true);
