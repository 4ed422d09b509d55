/**
 * safetensors: malformed files give LoraStudioError naming the file and the field; F16/BF16 codecs agree with an
 * independent reference (bit-built decode, nearest-value search with ties to even for encode).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LoraStudioError } from '../../../trainer/errors';
import {
  type HostTensor, decodeFloatsInto, encodeFloatsInto, f16ToF32, f32ToBf16, f32ToF16, halfHost, readSafetensors, readSafetensorsHeader, tensorToF32, writeSafetensors,
} from '../../../trainer/io/safetensors';

let tmp: string;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-')); });
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function fileWith(name: string, headerText: string, data: Buffer, lengthOverride?: bigint): string {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(Buffer.byteLength(headerText)));
  const file = path.join(tmp, name);
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(headerText, 'utf8'), data]));
  return file;
}

function expectError(file: string, field: string | undefined, message: RegExp, read: (f: string) => unknown = readSafetensors) {
  assert.throws(() => read(file), (e: unknown) => {
    assert.ok(e instanceof LoraStudioError, `expected LoraStudioError, got ${String(e)}`);
    assert.equal(e.file, file);
    assert.equal(e.field, field);
    assert.match(e.message, message);
    return true;
  });
}

describe('safetensors reader rejects malformed files', () => {
  it('absurd header length', () => {
    const f = fileWith('absurd.safetensors', '{}', Buffer.alloc(8), 1n << 40n);
    expectError(f, 'header', /absurd/);
    expectError(f, 'header', /absurd/, readSafetensorsHeader);
  });
  it('header longer than the file', () => {
    const f = fileWith('long.safetensors', '{}', Buffer.alloc(8), 1000n);
    expectError(f, 'header', /runs past the end/);
    expectError(f, 'header', /runs past the end/, readSafetensorsHeader);
  });
  it('file shorter than the length prefix', () => {
    const f = path.join(tmp, 'tiny.safetensors');
    fs.writeFileSync(f, Buffer.from([1, 2, 3]));
    expectError(f, 'header', /too short/);
  });
  it('bad JSON', () => {
    expectError(fileWith('badjson.safetensors', '{"a": [1,', Buffer.alloc(0)), 'header', /not valid JSON/);
    expectError(fileWith('array.safetensors', '[1, 2]', Buffer.alloc(0)), 'header', /not a JSON object/);
  });
  it('offsets past the end of the data', () => {
    const h = JSON.stringify({ x: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } });
    expectError(fileWith('past.safetensors', h, Buffer.alloc(8)), 'x.data_offsets', /run past/);
  });
  it('size that disagrees with dtype × shape', () => {
    const h = JSON.stringify({ x: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 16] } });
    expectError(fileWith('size.safetensors', h, Buffer.alloc(24)), 'x.data_offsets', /needs 24/);
  });
  it('overlapping tensors', () => {
    const h = JSON.stringify({
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    });
    expectError(fileWith('overlap.safetensors', h, Buffer.alloc(12)), 'b.data_offsets', /overlap a/);
  });
  it('unknown dtype', () => {
    const h = JSON.stringify({ x: { dtype: 'F7', shape: [2], data_offsets: [0, 2] } });
    expectError(fileWith('dtype.safetensors', h, Buffer.alloc(2)), 'x.dtype', /unknown dtype "F7"/);
  });
  it('bad shape and offsets', () => {
    const h1 = JSON.stringify({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } });
    expectError(fileWith('shape.safetensors', h1, Buffer.alloc(0)), 'x.shape', /non-negative/);
    const h2 = JSON.stringify({ x: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } });
    expectError(fileWith('offs.safetensors', h2, Buffer.alloc(4)), 'x.data_offsets', /begin <= end/);
  });
  it('truncated file', () => {
    const good = path.join(tmp, 'good.safetensors');
    writeSafetensors(good, new Map([['w', { shape: [3, 4], data: new Float32Array(12).fill(1.5), dtype: 'F32' } as HostTensor]]), { format: 'pt' });
    const bytes = fs.readFileSync(good);
    const cut = path.join(tmp, 'cut.safetensors');
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 5));
    expectError(cut, 'w.data_offsets', /run past/);
    fs.writeFileSync(cut, bytes.subarray(0, 20));
    expectError(cut, 'header', /runs past the end/);
  });
  it('a non-float tensor cannot be decoded as a weight', () => {
    const h = JSON.stringify({ ids: { dtype: 'I32', shape: [2], data_offsets: [0, 8] } });
    const f = fileWith('int.safetensors', h, Buffer.alloc(8));
    const st = readSafetensors(f);
    assert.throws(() => tensorToF32(st, 'ids'), (e: unknown) => e instanceof LoraStudioError && e.file === f && e.field === 'ids.dtype');
    assert.throws(() => tensorToF32(st, 'nope'), (e: unknown) => e instanceof LoraStudioError && e.file === f && e.field === 'nope');
  });
});

// ---- independent reference for half-precision formats ----
const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);
const bitsToF32 = (bits: number) => { u32buf[0] = bits >>> 0; return f32buf[0]; };
const f32Bits = (v: number) => { f32buf[0] = v; return u32buf[0]; };

/** F16 bits → F32 by building the F32 bit pattern (normalising subnormals by shifting). */
function refF16(h: number): number {
  const sign = (h & 0x8000) << 16;
  const e = (h >> 10) & 0x1f;
  let m = h & 0x3ff;
  if (e === 0x1f) return bitsToF32(sign | 0x7f800000 | (m << 13));
  if (e === 0) {
    if (m === 0) return bitsToF32(sign);
    let exp = 127 - 15 + 1;
    while (!(m & 0x400)) { m <<= 1; exp--; }
    return bitsToF32(sign | (exp << 23) | ((m & 0x3ff) << 13));
  }
  return bitsToF32(sign | ((e - 15 + 127) << 23) | (m << 13));
}

/** Positive finite values of a 16-bit format in increasing order, paired with bits, plus +Inf as the next step. */
function ladder(decode: (bits: number) => number, infBits: number, infAt: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let b = 0; b < infBits; b++) out.push([decode(b), b]);
  out.push([infAt, infBits]);
  return out;
}

/** Nearest entry of the ladder to |v|, ties to the even bit pattern; sign copied; NaN → any NaN. */
function refEncode(v: number, lad: Array<[number, number]>, signBit: number): number {
  const a = Math.abs(v);
  const s = v < 0 || Object.is(v, -0) ? signBit : 0;
  if (a >= lad[lad.length - 1][0]) return s | lad[lad.length - 1][1];
  let lo = 0;
  let hi = lad.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (lad[mid][0] <= a) lo = mid; else hi = mid;
  }
  const dLo = a - lad[lo][0];
  const dHi = lad[hi][0] - a;
  const pick = dLo < dHi ? lo : dHi < dLo ? hi : lad[lo][1] % 2 === 0 ? lo : hi;
  return s | lad[pick][1];
}

function testValues(lad: Array<[number, number]>): number[] {
  const vals: number[] = [0, -0, Infinity, -Infinity, bitsToF32(1), 3.4028234663852886e38, -3.4028234663852886e38];
  for (let i = 0; i + 1 < lad.length; i += 1) {
    const [lo] = lad[i];
    const [hi] = lad[i + 1];
    const mid = Math.fround((lo + hi) / 2);
    if (i % 7 === 0) vals.push(lo, -lo);
    vals.push(mid, -mid, bitsToF32(f32Bits(mid) + 1), bitsToF32(f32Bits(mid) - 1));
  }
  let x = 12345;
  for (let i = 0; i < 20000; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const v = bitsToF32(x);
    if (!Number.isNaN(v)) vals.push(v);
  }
  return vals.filter((v) => Number.isFinite(v) ? Math.fround(v) === v : true);
}

describe('F16 codec', () => {
  const lad = ladder(refF16, 0x7c00, 65536);
  it('decodes every bit pattern like the bit-built reference', () => {
    for (let h = 0; h < 0x10000; h++) {
      const got = f16ToF32(h);
      const want = refF16(h);
      if (Number.isNaN(want)) assert.ok(Number.isNaN(got), `0x${h.toString(16)}`);
      else assert.ok(Object.is(got, want), `0x${h.toString(16)}: ${got} vs ${want}`);
    }
  });
  it('round-trips every non-NaN bit pattern exactly (subnormals, ±0, ±Inf)', () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) continue;
      assert.equal(f32ToF16(f16ToF32(h)), h, `0x${h.toString(16)}`);
    }
  });
  it('encodes like a nearest-value search with ties to even, incl. overflow and underflow', () => {
    for (const v of testValues(lad)) {
      assert.equal(f32ToF16(v), refEncode(v, lad, 0x8000), `value ${v}`);
    }
    assert.equal(f32ToF16(65519.996), 0x7bff);
    assert.equal(f32ToF16(65520), 0x7c00); // tie between 65504 (odd) and Inf: rounds to Inf
    assert.equal(f32ToF16(2 ** -25), 0); // tie between 0 and the smallest subnormal: rounds to 0
    assert.equal(f32ToF16(3 * 2 ** -25), 2); // tie between subnormals 1 and 2: rounds to even 2
  });
  it('keeps NaN', () => {
    assert.ok(Number.isNaN(f16ToF32(f32ToF16(NaN))));
    assert.ok(Number.isNaN(f16ToF32(0xfe01)));
  });
  it('decodeFloatsInto and encodeFloatsInto (arrays: a lookup table, the bits loop) agree with f16ToF32 and f32ToF16', () => {
    const all = new Uint16Array(0x10000).map((_, h) => h);
    const decoded = new Float32Array(0x10000);
    decodeFloatsInto(new Uint8Array(all.buffer), 'F16', decoded);
    for (let h = 0; h < 0x10000; h++) {
      const want = f16ToF32(h);
      assert.ok(Number.isNaN(want) ? Number.isNaN(decoded[h]) : Object.is(decoded[h], want), `0x${h.toString(16)}`);
    }
    const values = Float32Array.from(testValues(lad));
    const encoded = new Uint8Array(values.length * 2);
    encodeFloatsInto(values, 'F16', encoded);
    const halves = new Uint16Array(encoded.buffer);
    values.forEach((v, i) => assert.equal(halves[i], f32ToF16(v), `value ${v}`));
  });
});

describe('BF16 codec', () => {
  const refBf16 = (b: number) => {
    const sign = b & 0x8000 ? -1 : 1;
    const e = (b >> 7) & 0xff;
    const m = b & 0x7f;
    if (e === 0xff) return m ? NaN : sign * Infinity;
    return e === 0 ? sign * (m / 128) * 2 ** -126 : sign * (1 + m / 128) * 2 ** (e - 127);
  };
  const lad = ladder(refBf16, 0x7f80, 2 ** 128);
  const decode = (b: number) => bitsToF32(b << 16);
  it('decode (via a written file) agrees with the formula for every bit pattern', () => {
    const n = 0x10000;
    const bytes = Buffer.alloc(n * 2);
    for (let b = 0; b < n; b++) bytes.writeUInt16LE(b, b * 2);
    const len = Buffer.alloc(8);
    const header = JSON.stringify({ t: { dtype: 'BF16', shape: [n], data_offsets: [0, n * 2] } });
    len.writeBigUInt64LE(BigInt(header.length));
    const f = path.join(tmp, 'bf16.safetensors');
    fs.writeFileSync(f, Buffer.concat([len, Buffer.from(header), bytes]));
    const t = tensorToF32(readSafetensors(f), 't');
    assert.equal(t.dtype, 'BF16');
    for (let b = 0; b < n; b++) {
      const want = refBf16(b);
      if (Number.isNaN(want)) assert.ok(Number.isNaN(t.data[b]));
      else assert.ok(Object.is(t.data[b], want), `0x${b.toString(16)}`);
    }
  });
  it('round-trips every non-NaN bit pattern exactly', () => {
    for (let b = 0; b < 0x10000; b++) {
      if ((b & 0x7f80) === 0x7f80 && b & 0x7f) continue;
      assert.equal(f32ToBf16(decode(b)), b);
    }
  });
  it('encodes like a nearest-value search with ties to even', () => {
    for (const v of testValues(lad)) assert.equal(f32ToBf16(v), refEncode(v, lad, 0x8000), `value ${v}`);
    assert.equal(f32ToBf16(bitsToF32(0x3f808000)), 0x3f80); // tie, even stays
    assert.equal(f32ToBf16(bitsToF32(0x3f818000)), 0x3f82); // tie, odd rounds up
    assert.equal(f32ToBf16(bitsToF32(0x7f7f8000)), 0x7f80); // tie above the largest finite: Inf
    assert.ok(Number.isNaN(decode(f32ToBf16(NaN))));
    assert.ok(Number.isNaN(decode(f32ToBf16(bitsToF32(0x7f800001))))); // NaN with a payload only in the low bits
  });
});

describe('F16/BF16 tensors through a file', () => {
  it('write then read gives the rounded values and keeps dtype', () => {
    const vals = Float32Array.from([0, -0, 1, -2.5, 1e-7, 6e-8, 65504, 70000, -Infinity, NaN, 0.1, 3.14159]);
    const f16Ladder = ladder(refF16, 0x7c00, 65536);
    for (const dtype of ['F16', 'BF16'] as const) {
      const f = path.join(tmp, `${dtype}.safetensors`);
      writeSafetensors(f, new Map([['t', { shape: [vals.length], data: vals, dtype }]]), { format: 'pt' });
      const st = readSafetensors(f);
      assert.deepEqual(st.metadata, { format: 'pt' });
      const t = tensorToF32(st, 't');
      assert.equal(t.dtype, dtype);
      for (let i = 0; i < vals.length; i++) {
        const want = dtype === 'F16' ? refF16(refEncode(vals[i], f16Ladder, 0x8000)) : bitsToF32(f32ToBf16(vals[i]) << 16);
        if (Number.isNaN(vals[i])) assert.ok(Number.isNaN(t.data[i]));
        else assert.ok(Object.is(t.data[i], want), `${dtype} ${vals[i]}: ${t.data[i]} vs ${want}`);
      }
    }
  });
});

describe('a weight file over 2 GiB (fs.readFileSync refuses those; Llama-3.2-1B is one 2.47 GB file)', () => {
  it('is read whole, and its BF16 tensor comes as stored bits with F32 decoded only on read', { timeout: 120_000 }, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-big-st-'));
    const file = path.join(dir, 'model.safetensors');
    try {
      // one BF16 tensor of 2^30 + 2^26 values (2.125 GiB), its data a hole in a sparse file: only the header is written
      const n = 2 ** 30 + 2 ** 26;
      let header = JSON.stringify({ 'model.embed_tokens.weight': { dtype: 'BF16', shape: [n / 1024, 1024], data_offsets: [0, 2 * n] } });
      header += ' '.repeat((8 - ((8 + header.length) % 8)) % 8);
      const fd = fs.openSync(file, 'w');
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(header.length));
      fs.writeSync(fd, len);
      fs.writeSync(fd, header);
      fs.ftruncateSync(fd, 8 + header.length + 2 * n);
      fs.closeSync(fd);
      assert.throws(() => fs.readFileSync(file), /greater than 2 GiB/);
      const st = readSafetensors(file);
      const t = tensorToF32(st, 'model.embed_tokens.weight');
      assert.deepEqual(t.shape, [n / 1024, 1024]);
      assert.equal(t.dtype, 'BF16');
      assert.equal(t.bits!.length, n);
      assert.equal(t.bits![n - 1], 0);
      assert.equal(Object.keys(t).includes('data'), false, 'data is not an enumerable (cloned) field');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('halfHost decodes its F32 values once, on first read, exactly', () => {
    const bits = Uint16Array.from([0x3f80, 0xc000, 0x0001, 0x7f80, 0x8000]);
    const t = halfHost([5], bits, 'BF16');
    assert.equal(t.data, t.data, 'decoded once');
    assert.deepEqual([...t.data], [1, -2, 2 ** -133, Infinity, -0]);
    const h = halfHost([3], Uint16Array.from([0x3c00, 0x0001, 0xfbff]), 'F16');
    assert.deepEqual([...h.data], [1, 2 ** -24, -65504]);
  });
});
