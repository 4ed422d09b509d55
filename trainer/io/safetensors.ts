/**
 * safetensors, both directions: an 8-byte little-endian header length, a JSON header of
 * `{name: {dtype, shape, data_offsets}}` plus optional `__metadata__`, then the raw bytes.
 * The reader trusts nothing in the header: every offset, size and dtype is checked against the file.
 * Float weights are decoded to Float32 (we compute in F32); F16/BF16 are encoded back with round-to-nearest-even.
 */
import { constants as bufferConstants } from 'node:buffer';
import * as fs from 'node:fs';
import { LoraStudioError, preview } from '../errors';
import { isPlainObject, parseJsonText } from './json';
import { writeFileAtomic } from './atomic';

export type FloatDType = 'F32' | 'F16' | 'BF16';
const ITEM_SIZE: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, U16: 2, U32: 4, U64: 8,
  F8_E4M3: 1, F8_E5M2: 1,
};
/** Headers above this are not weights files (the Rust reference caps it at 100 MB too). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorEntry {
  dtype: string;
  shape: number[];
  /** byte range inside the data section */
  begin: number;
  end: number;
}

export interface SafetensorsFile {
  path: string;
  metadata: Record<string, string>;
  entries: Map<string, TensorEntry>;
  /** the data section (after the header) */
  data: Buffer;
}

/**
 * A host-side tensor: F32 values, with the dtype it was stored as (kept for writing back). One read from a
 * 16-bit file also carries the stored values as `bits`, and decodes `data` only when something reads it (then
 * once): a model that keeps frozen weights in 16 bits (ops/half.ts) takes `bits` and never makes the F32 copy.
 */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
  dtype: FloatDType;
  /** the stored 16-bit values (F16, BF16), when the tensor came from them */
  bits?: Uint16Array;
}

/**
 * A HostTensor over stored 16-bit values, whose F32 `data` is decoded on first read. `data` is not enumerable,
 * so a structured clone (postMessage to a worker) carries `bits` and not a decoded copy: the receiver calls
 * halfHost again on what arrived.
 */
export function halfHost(shape: number[], bits: Uint16Array, dtype: 'F16' | 'BF16'): HostTensor {
  let data: Float32Array | null = null;
  const t = { shape, dtype, bits } as HostTensor;
  Object.defineProperty(t, 'data', {
    enumerable: false,
    configurable: true,
    get: () => {
      if (!data) {
        data = new Float32Array(bits.length);
        decodeFloatsInto(new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength), dtype, data);
      }
      return data;
    },
  });
  return t;
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

export function readSafetensors(file: string): SafetensorsFile {
  return parseSafetensors(readWholeFile(file), file);
}

/**
 * The whole file in one Buffer, read in chunks: fs.readFileSync refuses files over 2 GiB, and a model as published
 * is often one bigger file (Llama-3.2-1B's model.safetensors is 2.47 GB). A file past the largest Buffer this
 * Node can make (4 GiB on Node 20) is a named error.
 */
export function readWholeFile(file: string): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new LoraStudioError(`cannot read: ${(e as Error).message}`, file);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size > bufferConstants.MAX_LENGTH) {
      throw new LoraStudioError(`is ${(size / 2 ** 30).toFixed(2)} GiB, more than one buffer can hold here (${(bufferConstants.MAX_LENGTH / 2 ** 30).toFixed(2)} GiB); save the model in smaller shards (save_pretrained(..., max_shard_size="2GB"))`, file);
    }
    const buf = Buffer.allocUnsafe(size);
    for (let off = 0; off < size;) {
      const n = fs.readSync(fd, buf, off, Math.min(size - off, 2 ** 30), off);
      if (n === 0) throw new LoraStudioError(`ended after ${off} of its ${size} bytes while being read (was it changed meanwhile?)`, file);
      off += n;
    }
    return buf;
  } catch (e) {
    if (e instanceof LoraStudioError) throw e;
    throw new LoraStudioError(`cannot read: ${(e as Error).message}`, file);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads only the header (for shapes and dtypes) without loading the tensors. */
export function readSafetensorsHeader(file: string): Omit<SafetensorsFile, 'data'> {
  const { dataStart: _d, headerBytes: _h, fileSize: _f, ...header } = readSafetensorsLayout(file);
  return header;
}

function checkHeaderLength(n: bigint, fileSize: number, file: string): number {
  if (n > BigInt(MAX_HEADER_BYTES)) throw new LoraStudioError(`header length ${n} is absurd (limit ${MAX_HEADER_BYTES} bytes); not a safetensors file?`, file, 'header');
  if (n > BigInt(fileSize - 8)) throw new LoraStudioError(`header length ${n} runs past the end of the ${fileSize}-byte file`, file, 'header');
  return Number(n);
}

export function parseSafetensors(buf: Buffer, file: string): SafetensorsFile {
  if (buf.length < 8) throw new LoraStudioError(`file is ${buf.length} bytes, too short for a safetensors header`, file, 'header');
  const n = checkHeaderLength(buf.readBigUInt64LE(0), buf.length, file);
  const parsed = parseHeader(buf.subarray(8, 8 + n), buf.length - 8 - n, file);
  return { ...parsed, data: buf.subarray(8 + n) };
}

function parseHeader(head: Buffer, dataSize: number, file: string): Omit<SafetensorsFile, 'data'> {
  // parseJsonText: line/column on syntax errors and bounded nesting; the header length is bounded by the caller.
  const json = parseJsonText(head.toString('utf8'), file, 'header');
  if (!isPlainObject(json)) throw new LoraStudioError(`header is not a JSON object, got ${preview(json)}`, file, 'header');
  let metadata: Record<string, string> = {};
  const entries = new Map<string, TensorEntry>();
  for (const [key, raw] of Object.entries(json)) {
    const name = key.length > 200 ? `${key.slice(0, 199)}…` : key; // for messages only
    if (key === '__metadata__') {
      if (!isPlainObject(raw)) throw new LoraStudioError(`must be an object of strings, got ${preview(raw)}`, file, '__metadata__');
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') throw new LoraStudioError(`must be a string, got ${preview(v)}`, file, `__metadata__.${k.length > 60 ? `${k.slice(0, 59)}…` : k}`);
      }
      // fromEntries defines own properties, so a key such as "__proto__" stays an ordinary key
      metadata = Object.fromEntries(Object.entries(raw)) as Record<string, string>;
      continue;
    }
    if (!isPlainObject(raw)) throw new LoraStudioError(`must be an object {dtype, shape, data_offsets}, got ${preview(raw)}`, file, name);
    const dtype = raw.dtype;
    if (typeof dtype !== 'string' || !Object.hasOwn(ITEM_SIZE, dtype)) throw new LoraStudioError(`unknown dtype ${preview(dtype)}`, file, `${name}.dtype`);
    const shape = raw.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new LoraStudioError(`shape must be a list of non-negative integers, got ${preview(shape)}`, file, `${name}.shape`);
    }
    const off = raw.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[0] > off[1]) {
      throw new LoraStudioError(`data_offsets must be [begin, end] with 0 <= begin <= end, got ${preview(off)}`, file, `${name}.data_offsets`);
    }
    const [begin, end] = off as [number, number];
    if (end > dataSize) throw new LoraStudioError(`data_offsets [${begin}, ${end}] run past the ${dataSize}-byte data section`, file, `${name}.data_offsets`);
    // shape × item size must be the byte length (a product past 2^53 can never equal it: the file is smaller)
    const want = numel(shape as number[]) * ITEM_SIZE[dtype];
    if (end - begin !== want) {
      throw new LoraStudioError(`data_offsets cover ${end - begin} bytes but ${dtype}${preview(shape)} needs ${want}`, file, `${name}.data_offsets`);
    }
    entries.set(key, { dtype, shape: shape as number[], begin, end });
  }
  const spans = [...entries.entries()].filter(([, t]) => t.end > t.begin).sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i][1].begin < spans[i - 1][1].end) throw new LoraStudioError(`tensor bytes overlap ${spans[i - 1][0].length > 200 ? `${spans[i - 1][0].slice(0, 199)}…` : spans[i - 1][0]}`, file, `${spans[i][0]}.data_offsets`);
  }
  return { path: file, metadata, entries };
}

/** Decodes one tensor to F32. Only float dtypes are weights; anything else is an error naming the tensor. */
export function tensorToF32(st: SafetensorsFile, name: string): HostTensor {
  const e = st.entries.get(name);
  if (!e) throw new LoraStudioError('tensor is missing', st.path, name);
  const bytes = st.data.subarray(e.begin, e.end);
  const n = numel(e.shape);
  switch (e.dtype) {
    case 'F32': {
      // a copy of the bytes (little-endian, as the file has them): ~30x the speed of reading them one by one
      const out = new Float32Array(n);
      decodeFloatsInto(bytes, 'F32', out);
      return { shape: e.shape, data: out, dtype: 'F32' };
    }
    case 'F16':
    case 'BF16': {
      // a view of the file's bytes where aligned (the Buffer stays alive while the view does), else a copy
      assertLittleEndian();
      const bits = (bytes.byteOffset & 1) === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, n) : new Uint16Array(Uint8Array.from(bytes).buffer);
      return halfHost(e.shape, bits, e.dtype);
    }
    default:
      throw new LoraStudioError(`dtype ${e.dtype} is not a float weight type (F32, F16, BF16)`, st.path, `${name}.dtype`);
  }
}

let f16Values: Float32Array | undefined;
/** f16ToF32 of every half (256 KB, made on first use): decoding F16 is then a lookup, ~20× the speed. */
function f16Table(): Float32Array {
  if (!f16Values) {
    f16Values = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Values[h] = f16ToF32(h);
  }
  return f16Values;
}

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** F32 → F16 bits, round to nearest even, with subnormals, overflow to Inf and NaN kept. */
export function f32ToF16(v: number): number {
  f32[0] = v;
  return f32BitsToF16(u32[0]);
}

/** f32ToF16 of the float32 whose bits are `x`. */
function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) { r = 0; e++; if (e >= 0x1f) return sign | 0x7c00; }
  }
  return sign | (e << 10) | r;
}

/** F32 → BF16 bits, round to nearest even, NaN kept. */
export function f32ToBf16(v: number): number {
  f32[0] = v;
  const x = u32[0];
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function encodeTensor(t: HostTensor): Buffer {
  const n = t.data.length;
  if (t.dtype === 'F32') return Buffer.from(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + n * 4));
  const out = Buffer.alloc(n * 2);
  const enc = t.dtype === 'F16' ? f32ToF16 : f32ToBf16;
  for (let i = 0; i < n; i++) out.writeUInt16LE(enc(t.data[i]), i * 2);
  return out;
}

/** Serialises tensors (in the given order) with optional metadata; the header is padded to 8 bytes as the Python writer does. */
export function serializeSafetensors(tensors: Map<string, HostTensor>, metadata?: Record<string, string>): Buffer[] {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    if (numel(t.shape) !== t.data.length) throw new Error(`${name}: shape ${JSON.stringify(t.shape)} does not hold ${t.data.length} values`);
    const bytes = encodeTensor(t);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return [len, Buffer.from(json, 'utf8'), ...chunks];
}

export function writeSafetensors(file: string, tensors: Map<string, HostTensor>, metadata?: Record<string, string>): void {
  writeFileAtomic(file, serializeSafetensors(tensors, metadata));
}

/** A weights file's header, read without its data: where the data section starts and the header's own bytes. */
export interface SafetensorsLayout extends Omit<SafetensorsFile, 'data'> {
  /** byte offset of the data section in the file (8 + the header length) */
  dataStart: number;
  /** the header's JSON bytes exactly as stored (padding included) */
  headerBytes: Buffer;
  fileSize: number;
}

/** readSafetensorsHeader plus where the data starts, for streaming a file tensor by tensor (lora/merge_stream.ts). */
export function readSafetensorsLayout(file: string): SafetensorsLayout {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new LoraStudioError(`cannot read: ${(e as Error).message}`, file);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const lenBuf = Buffer.alloc(8);
    if (size < 8 || fs.readSync(fd, lenBuf, 0, 8, 0) !== 8) throw new LoraStudioError(`file is ${size} bytes, too short for a safetensors header`, file, 'header');
    const n = checkHeaderLength(lenBuf.readBigUInt64LE(0), size, file);
    const head = Buffer.alloc(n);
    if (n > 0 && fs.readSync(fd, head, 0, n, 8) !== n) throw new LoraStudioError('the header could not be read whole', file, 'header');
    return { ...parseHeader(head, size - 8 - n, file), dataStart: 8 + n, headerBytes: head, fileSize: size };
  } finally {
    fs.closeSync(fd);
  }
}

/** The typed-array views below read safetensors' little-endian bytes as they are: true of every platform Node ships for. */
function assertLittleEndian(): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('safetensors streaming needs a little-endian host');
}

export const isFloatDType = (dtype: string): dtype is FloatDType => dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';

/** Bytes per value of a float dtype. */
export const floatItemSize = (dtype: FloatDType): number => ITEM_SIZE[dtype];

/**
 * Decodes stored little-endian bytes of `dtype` into `out` (out.length values), exactly as tensorToF32 does.
 * F32 bytes at a 4-byte-aligned offset are viewed, not copied, when `out` is that view already.
 */
export function decodeFloatsInto(bytes: Uint8Array, dtype: FloatDType, out: Float32Array): void {
  assertLittleEndian();
  const n = out.length;
  if (bytes.byteLength !== n * ITEM_SIZE[dtype]) throw new Error(`decodeFloatsInto: ${bytes.byteLength} bytes for ${n} ${dtype} values`);
  if (dtype === 'F32') {
    if (out.buffer === bytes.buffer && out.byteOffset === bytes.byteOffset) return;
    new Uint8Array(out.buffer, out.byteOffset, n * 4).set(bytes);
    return;
  }
  const u16 = (bytes.byteOffset & 1) === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, n) : new Uint16Array(Uint8Array.from(bytes).buffer);
  if (dtype === 'BF16') {
    const u32 = new Uint32Array(out.buffer, out.byteOffset, n);
    for (let i = 0; i < n; i++) u32[i] = u16[i] << 16;
  } else {
    const table = f16Table();
    for (let i = 0; i < n; i++) out[i] = table[u16[i]];
  }
}

/**
 * Encodes `data` into `dtype`'s little-endian bytes in `out` (round to nearest even, as encodeTensor does) and
 * returns the index of the first value that is not finite once stored (−1 when all are): F16 overflows above 65504.
 */
export function encodeFloatsInto(data: Float32Array, dtype: FloatDType, out: Uint8Array): number {
  assertLittleEndian();
  const n = data.length;
  if (out.byteLength !== n * ITEM_SIZE[dtype]) throw new Error(`encodeFloatsInto: ${out.byteLength} bytes for ${n} ${dtype} values`);
  let bad = -1;
  if (dtype === 'F32') {
    if (!(out.buffer === data.buffer && out.byteOffset === data.byteOffset)) out.set(new Uint8Array(data.buffer, data.byteOffset, n * 4));
    for (let i = 0; i < n; i++) {
      const v = data[i];
      if (v - v !== 0) { bad = i; break; }
    }
    return bad;
  }
  const aligned = (out.byteOffset & 1) === 0;
  const u16 = aligned ? new Uint16Array(out.buffer, out.byteOffset, n) : new Uint16Array(n);
  if (dtype === 'BF16') {
    // f32ToBf16 inlined over the values' bits (the same rounding; this loop is most of a BF16 merge's encoding time)
    const bits = new Uint32Array(data.buffer, data.byteOffset, n);
    for (let i = 0; i < n; i++) {
      const x = bits[i];
      const h = (x & 0x7f800000) === 0x7f800000 && x & 0x7fffff ? (x >>> 16) | 0x40 : ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
      u16[i] = h;
      if ((h & 0x7f80) === 0x7f80 && bad < 0) bad = i;
    }
  } else {
    const bits = new Uint32Array(data.buffer, data.byteOffset, n);
    for (let i = 0; i < n; i++) {
      const h = f32BitsToF16(bits[i]);
      u16[i] = h;
      if ((h & 0x7c00) === 0x7c00 && bad < 0) bad = i;
    }
  }
  if (!aligned) out.set(new Uint8Array(u16.buffer));
  return bad;
}
