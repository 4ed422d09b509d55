/**
 * The streaming merge's delta kernel (lora/merge_stream.ts addLoraDelta) against mergeAdapter, bit for bit, at
 * every rank path: r = 8 (two rows at a time, sums in registers) with an even and an odd number of rows (the last
 * row alone), both orientations (Conv1D [in, out] and Linear [out, in]), and the generic path (r = 3, 12, 16);
 * with signed zeros, tiny values and products large enough to cancel among the factors and weights; a kernel that
 * summed in another order fails it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { HostTensor } from '../../../trainer/io/safetensors';
import { adapterConfigJson } from '../../../trainer/lora/adapter_io';
import { LORA_DEFAULTS } from '../../../trainer/lora/config';
import { mergeAdapter } from '../../../trainer/lora/merge';
import { addLoraDelta, planPatches, type LoraPatch } from '../../../trainer/lora/merge_stream';
import type { AdapterWeights } from '../../../trainer/lora/types';
import { Rng } from '../../../trainer/util/rng';

// ±2^30 factors make ±2^60 products that cancel: a sum taken in another order (or from -0) gives other bits
const SPECIAL = [0, -0, 2 ** 30, -(2 ** 30), 1, -1, 1e-40, 3e4];

function tensor(shape: number[], rng: Rng): HostTensor {
  const data = new Float32Array(shape[0] * shape[1]);
  for (let i = 0; i < data.length; i++) data[i] = rng.int(3) === 0 ? SPECIAL[i % SPECIAL.length] : 0.3 * rng.normal();
  return { shape, data, dtype: 'F32' };
}

function check(r: number, inF: number, outF: number, conv1d: boolean, seed: number): void {
  const rng = new Rng(seed);
  const module = 'h.0.proj';
  const W = tensor(conv1d ? [inF, outF] : [outF, inF], rng);
  const adapter: AdapterWeights = {
    config: adapterConfigJson({ ...LORA_DEFAULTS, r, lora_alpha: 7, target_modules: ['proj'], fan_in_fan_out: conv1d }, 'causal-lm', 'test'),
    lora: new Map([[module, { A: tensor([r, inF], rng), B: tensor([outF, r], rng) }]]),
    extra: new Map(),
  };
  const key = `${module}.weight`;
  const want = mergeAdapter(new Map([[key, W]]), adapter, () => conv1d).get(key)!.data;
  const patch = planPatches(adapter, () => conv1d, () => W.shape).get(key) as LoraPatch;
  const got = Float32Array.from(W.data);
  addLoraDelta(got, patch);
  const a = new Uint32Array(got.buffer);
  const b = new Uint32Array(want.buffer);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) assert.fail(`r=${r} ${inF}×${outF} conv1d=${conv1d}: index ${i}: ${got[i]} vs ${want[i]}`);
}

describe('addLoraDelta = mergeAdapter, bit for bit', () => {
  for (const conv1d of [true, false]) {
    it(`r = 8, ${conv1d ? 'Conv1D' : 'Linear'}: even and odd row counts, one row`, () => {
      check(8, 64, 48, conv1d, 1);
      check(8, 63, 47, conv1d, 2);
      check(8, 1, 5, conv1d, 3);
      check(8, 5, 1, conv1d, 4);
    });
    it(`r = 3, 12, 16 (the generic path), ${conv1d ? 'Conv1D' : 'Linear'}`, () => {
      for (const r of [3, 12, 16]) check(r, 64, 47, conv1d, 10 + r);
    });
  }
});
