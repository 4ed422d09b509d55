/**
 * Merging a LoRA adapter into weight files tensor by tensor, at the speed of the disk: each output file gets the
 * source's header (same keys, dtypes, shapes, order, metadata), the untouched tensors' bytes are copied by the
 * kernel (fs.copyFileSync: copy_file_range, a reflink where the file system has them), and only the tensors the
 * adapter changes are read, given W + scaling · transpose(B·A, fan_in_fan_out) (or replaced by a modules_to_save /
 * bias tensor) and written at their own byte range in their stored dtype. The products go through the rank-update
 * kernel (ops/rank_update.ts: WebAssembly SIMD, on the F32, BF16 or F16 bytes as stored), or, where its binary
 * is not at hand (from source, before prepareRankUpdate), through lora/merge.ts's mergedValues in JavaScript.
 * Memory is one such tensor at a time. The values are those mergeAdapter (lora/merge.ts) computes, bit for bit:
 * the same float64 dot products in the same order, the same F32 rounding, the same F16/BF16 encoding.
 * Which files, which keys and what the model allows is the caller's (commands/merge.ts, with the model's family).
 */
import * as fs from 'node:fs';
import { LoraStudioError } from '../errors';
import { type FloatDType, type HostTensor, type SafetensorsLayout, decodeFloatsInto, encodeFloatsInto, floatItemSize } from '../io/safetensors';
import { fsFailure } from '../io/atomic';
import { rankUpdater } from '../ops/rank_update';
import { checkFinite, mergedValues, nonFiniteMessage } from './merge';
import { rankTable } from './patterns';
import type { AdapterWeights } from './types';

/** W += scaling · (B·A) in W's orientation: Conv1D weights are [in, out] (fan_in_fan_out), Linear [out, in]. */
export interface LoraPatch {
  kind: 'lora';
  /** the module, for messages */
  name: string;
  A: HostTensor;
  B: HostTensor;
  scaling: number;
  fanInFanOut: boolean;
}

/** The tensor's values replaced (modules_to_save, trained biases), stored in the base tensor's dtype. */
export interface ReplacePatch {
  kind: 'replace';
  name: string;
  values: Float32Array;
}

export type TensorPatch = LoraPatch | ReplacePatch;

/** A tensor the source file lacks, appended to the output's data section (a seq-cls head the base model has no). */
export interface AppendedTensor {
  key: string;
  dtype: FloatDType;
  shape: number[];
  values: Float32Array;
  /** for messages */
  name: string;
}

export interface FilePlan {
  src: string;
  layout: SafetensorsLayout;
  /** the output file (a new file in the caller's temporary folder) */
  out: string;
  /** by the key as the file spells it */
  patches: Map<string, TensorPatch>;
  append: AppendedTensor[];
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * The adapter's changes by canonical key (`<module>.weight` for LoRA, the extra tensors' own keys), with the checks
 * mergeAdapter makes: every LoRA module's weight exists with the shape its factors need, and every extra tensor
 * replaces one of its shape. `shapeOf` gives the model's canonical shapes; errors name the module or key, not a file.
 */
export function planPatches(adapter: AdapterWeights, isConv1D: (module: string) => boolean, shapeOf: (key: string) => number[] | undefined): Map<string, TensorPatch> {
  const out = new Map<string, TensorPatch>();
  const ranks = rankTable(adapter.config, [...adapter.lora.keys()]).byName;
  for (const [module, { A, B }] of adapter.lora) {
    const key = `${module}.weight`;
    const W = shapeOf(key);
    if (!W) throw new LoraStudioError(`module ${module} has LoRA weights but the model has no ${key}`, undefined, module);
    const fanInFanOut = isConv1D(module);
    const [r, inF] = A.shape;
    const outF = B.shape[0];
    const want = fanInFanOut ? [inF, outF] : [outF, inF];
    if (B.shape[1] !== r || !sameShape(W, want)) {
      throw new LoraStudioError(
        `lora_A ${JSON.stringify(A.shape)} and lora_B ${JSON.stringify(B.shape)} need a weight of shape ${JSON.stringify(want)}, the model has ${JSON.stringify(W)}`,
        undefined,
        module,
      );
    }
    out.set(key, { kind: 'lora', name: module, A, B, scaling: ranks.get(module)!.scaling, fanInFanOut });
  }
  // as in mergeAdapter, an extra tensor wins over a LoRA delta on the same key
  for (const [key, t] of adapter.extra) {
    const W = shapeOf(key);
    if (!W) throw new LoraStudioError(`the adapter replaces ${key}, which the model does not have`, undefined, key);
    if (!sameShape(W, t.shape)) throw new LoraStudioError(`the adapter's ${JSON.stringify(t.shape)} does not match the model's ${JSON.stringify(W)}`, undefined, key);
    out.set(key, { kind: 'replace', name: key, values: t.data });
  }
  return out;
}

/** Reads exactly `buf.byteLength` bytes at `pos`. */
function readFully(fd: number, buf: Uint8Array, pos: number, file: string): void {
  let off = 0;
  while (off < buf.byteLength) {
    const n = fs.readSync(fd, buf, off, buf.byteLength - off, pos + off);
    if (n === 0) throw new LoraStudioError(`ends ${buf.byteLength - off} bytes early (the file changed while merging?)`, file);
    off += n;
  }
}

function writeFully(fd: number, buf: Uint8Array, pos: number): void {
  let off = 0;
  while (off < buf.byteLength) off += fs.writeSync(fd, buf, off, buf.byteLength - off, pos + off);
}

/** Buffers that grow to the largest patched tensor and are reused for the next. */
class Scratch {
  private f32 = new Float32Array(0);
  private u8 = new Uint8Array(0);
  floats(n: number): Float32Array {
    if (this.f32.length < n) this.f32 = new Float32Array(n);
    return this.f32.subarray(0, n);
  }
  bytes(n: number): Uint8Array {
    if (this.u8.length < n) this.u8 = new Uint8Array(n);
    return this.u8.subarray(0, n);
  }
}

/** Reads a tensor's stored bytes into `into` (exactly its length). */
export type ReadStored = (into: Uint8Array) => void;

/** A modules_to_save / bias tensor's new values, encoded in the stored dtype. */
function replaced(p: ReplacePatch, dtype: FloatDType, scratch: Scratch): Uint8Array {
  const bytes = scratch.bytes(p.values.length * floatItemSize(dtype));
  const bad = encodeFloatsInto(p.values, dtype, bytes);
  if (bad >= 0) throw new LoraStudioError(nonFiniteMessage(p.values[bad], bad, dtype), undefined, p.name);
  return bytes;
}

/**
 * The merged bytes of a LoRA-adapted tensor of `shape` stored as `dtype` (its bytes come from `read`; the result is
 * memory that lives until the next call): through the rank-update kernel (ops/rank_update.ts) when it is at hand.
 * A value that is not finite once stored is named by the JavaScript path, which then throws.
 */
export function mergedTensorBytes(p: LoraPatch, dtype: FloatDType, shape: number[], read: ReadStored, scratch: Scratch): Uint8Array {
  const kernel = rankUpdater();
  if (!kernel) return mergeLoraJs(p, dtype, shape, read, scratch);
  const [r, inF] = p.A.shape;
  const a = p.A.data;
  const b = p.B.data;
  // W [in, out] += s · Aᵀ·Bᵀ (Conv1D), W [out, in] += s · B·A (Linear)
  if (p.fanInFanOut) kernel.load(dtype, inF, shape[1], r, (u, k) => a[k * inF + u], (k, v) => b[v * r + k]);
  else kernel.load(dtype, shape[0], inF, r, (u, k) => b[u * r + k], (k, v) => a[k * inF + v]);
  const w = kernel.weightBytes();
  read(w);
  if (!kernel.run(p.scaling)) {
    mergeLoraJs(p, dtype, shape, read, scratch); // throws, naming the value
    throw new Error(`internal: ${p.name}: the rank-update kernel found a value that is not finite, the JavaScript merge none`);
  }
  return w;
}

/** mergedTensorBytes in JavaScript: decoded to F32, lora/merge.ts's arithmetic (mergedValues, checkFinite), encoded back. */
function mergeLoraJs(p: LoraPatch, dtype: FloatDType, shape: number[], read: ReadStored, scratch: Scratch): Uint8Array {
  const n = shape.reduce((x, y) => x * y, 1);
  const values = scratch.floats(n);
  const bytes = scratch.bytes(n * floatItemSize(dtype));
  read(bytes);
  decodeFloatsInto(bytes, dtype, values);
  const merged = mergedValues(values, p.A, p.B, p.scaling, p.fanInFanOut);
  checkFinite(merged, dtype, p.name);
  const bad = encodeFloatsInto(merged, dtype, bytes);
  if (bad >= 0) throw new Error(`internal: ${p.name}: checkFinite passed a value that is not finite once stored`);
  return bytes;
}

/**
 * The output header: the source's JSON bytes as they are (keys, order, metadata and padding untouched), or, when
 * tensors are appended, the same JSON with their entries added before the closing brace, padded to 8 bytes.
 */
function outputHeader(plan: FilePlan): Buffer {
  const { layout } = plan;
  if (plan.append.length === 0) return layout.headerBytes;
  const text = layout.headerBytes.toString('utf8').trimEnd();
  if (!text.endsWith('}')) throw new LoraStudioError('the header does not end with "}"', plan.src, 'header');
  const dataSize = layout.fileSize - layout.dataStart;
  let offset = dataSize;
  const added = plan.append.map((t) => {
    const end = offset + t.values.length * floatItemSize(t.dtype);
    const entry = `${JSON.stringify(t.key)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: [offset, end] })}`;
    offset = end;
    return entry;
  });
  const body = text.slice(0, -1).trimEnd();
  let json = `${body}${/\{$/.test(body) ? '' : ','}${added.join(',')}}`;
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  return Buffer.from(json, 'utf8');
}

/** Copies `len` bytes from `src` at `from` to `dst` at `to` in large sequential chunks. */
function copyRange(src: number, dst: number, from: number, to: number, len: number, file: string): void {
  const chunk = new Uint8Array(Math.min(len, 16 << 20));
  for (let done = 0; done < len;) {
    const n = Math.min(chunk.byteLength, len - done);
    const view = chunk.subarray(0, n);
    readFully(src, view, from + done, file);
    writeFully(dst, view, to + done);
    done += n;
  }
}

/**
 * Writes `plan.out`: the source file with its patches applied and its appended tensors added. Throws a
 * LoraStudioError naming the module (no file) when a merged value is not finite in the stored dtype, and one naming
 * the path on a file-system failure; the caller removes its temporary folder either way.
 */
export function writeMergedFile(plan: FilePlan, scratch = new Scratch()): void {
  const { layout } = plan;
  const header = outputHeader(plan);
  const sameHeader = header === layout.headerBytes;
  const dataStart = 8 + header.byteLength;
  let src: number | undefined;
  let dst: number | undefined;
  try {
    if (sameHeader) {
      fs.copyFileSync(plan.src, plan.out);
      fs.chmodSync(plan.out, 0o666 & ~process.umask()); // copyFileSync keeps a read-only source's mode
      dst = fs.openSync(plan.out, 'r+');
    } else {
      dst = fs.openSync(plan.out, 'w');
    }
    src = fs.openSync(plan.src, 'r');
    if (!sameHeader) {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(header.byteLength));
      writeFully(dst, len, 0);
      writeFully(dst, header, 8);
      copyRange(src, dst, layout.dataStart, dataStart, layout.fileSize - layout.dataStart, plan.src);
      let at = dataStart + layout.fileSize - layout.dataStart;
      for (const t of plan.append) {
        const bytes = scratch.bytes(t.values.length * floatItemSize(t.dtype));
        const bad = encodeFloatsInto(t.values, t.dtype, bytes);
        if (bad >= 0) throw new LoraStudioError(nonFiniteMessage(t.values[bad], bad, t.dtype), undefined, t.name);
        writeFully(dst, bytes, at);
        at += bytes.byteLength;
      }
    }
    const ordered = [...plan.patches].map(([key, p]) => ({ key, p, e: layout.entries.get(key)! })).sort((x, y) => x.e.begin - y.e.begin);
    for (const { p, e } of ordered) {
      const read = (into: Uint8Array) => readFully(src!, into, layout.dataStart + e.begin, plan.src);
      const bytes = p.kind === 'lora' ? mergedTensorBytes(p, e.dtype as FloatDType, e.shape, read, scratch) : replaced(p, e.dtype as FloatDType, scratch);
      writeFully(dst, bytes, dataStart + e.begin);
    }
    fs.fsyncSync(dst);
  } catch (e) {
    throw fsFailure(e, plan.out);
  } finally {
    if (src !== undefined) fs.closeSync(src);
    if (dst !== undefined) fs.closeSync(dst);
  }
}

export { Scratch as MergeScratch };
