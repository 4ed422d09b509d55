/**
 * Safetensors files and PEFT adapter folders as written to disk, decoded to float64 without the trainer's reader
 * (F32, F16; BF16 as the high half of an F32, which is exact), so that the float64 references never share a
 * decoding, sharding or key-naming mistake with the code they check.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AdapterConfigJson } from '../../trainer/lora/types';

export interface DiskTensor { shape: number[]; dtype: string; data: Float64Array }

function decodeF16(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Every tensor of one safetensors file, decoded to float64 (F32, F16; BF16 as the high half of an F32). */
export function readSafetensorsF64(file: string): Map<string, DiskTensor> {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, DiskTensor>();
  const word = new DataView(new ArrayBuffer(4));
  for (const [key, e] of Object.entries(header)) {
    if (key === '__metadata__') continue;
    const bytes = buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]);
    const count = e.shape.reduce((a, b) => a * b, 1);
    const data = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      if (e.dtype === 'F32') data[i] = bytes.readFloatLE(4 * i);
      else if (e.dtype === 'F16') data[i] = decodeF16(bytes.readUInt16LE(2 * i));
      else if (e.dtype === 'BF16') {
        word.setUint32(0, bytes.readUInt16LE(2 * i) << 16);
        data[i] = word.getFloat32(0);
      } else throw new Error(`${file}: dtype ${e.dtype}`);
    }
    assert.equal(bytes.length, count * (e.dtype === 'F32' ? 4 : 2), `${file}: ${key} byte size`);
    out.set(key, { shape: e.shape, dtype: e.dtype, data });
  }
  return out;
}

/** A model folder's weights: model.safetensors, or every shard model.safetensors.index.json names. */
export function readFolderF64(dir: string): Map<string, DiskTensor> {
  const index = path.join(dir, 'model.safetensors.index.json');
  if (!fs.existsSync(index)) return readSafetensorsF64(path.join(dir, 'model.safetensors'));
  const map = (JSON.parse(fs.readFileSync(index, 'utf8')) as { weight_map: Record<string, string> }).weight_map;
  const out = new Map<string, DiskTensor>();
  for (const file of new Set(Object.values(map))) {
    for (const [k, t] of readSafetensorsF64(path.join(dir, file))) {
      assert.equal(map[k], file, `${k} is in ${file}, the index says ${map[k]}`);
      out.set(k, t);
    }
  }
  assert.deepEqual([...out.keys()].sort(), Object.keys(map).sort());
  return out;
}

/** An adapter folder as PEFT reads it: adapter_config.json's r/lora_alpha (no patterns here) and the factors. */
export function readAdapterF64(dir: string): { lora: Map<string, { A: Float64Array; B: Float64Array; r: number; scaling: number }>; extra: Map<string, DiskTensor> } {
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as AdapterConfigJson;
  assert.deepEqual([config.rank_pattern, config.alpha_pattern, config.use_rslora], [{}, {}, false], 'this reader knows plain r / lora_alpha only');
  const tensors = readSafetensorsF64(path.join(dir, 'adapter_model.safetensors'));
  const lora = new Map<string, { A: Float64Array; B: Float64Array; r: number; scaling: number }>();
  const extra = new Map<string, DiskTensor>();
  for (const [key, t] of tensors) {
    assert.ok(key.startsWith('base_model.model.'), key);
    const m = /^base_model\.model\.(.*)\.lora_A\.weight$/.exec(key);
    if (m) {
      const B = tensors.get(`base_model.model.${m[1]}.lora_B.weight`)!;
      assert.equal(t.shape[0], config.r);
      lora.set(m[1], { A: t.data, B: B.data, r: t.shape[0], scaling: config.lora_alpha / config.r });
    } else if (!/\.lora_B\.weight$/.test(key)) extra.set(key.slice('base_model.model.'.length), t);
  }
  return { lora, extra };
}
