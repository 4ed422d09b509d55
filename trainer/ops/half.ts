/**
 * Frozen matrices kept in 16 bits on the wasm heap (bfloat16 or IEEE half, as the safetensors file stores them),
 * so that a 1B-class model's weights take half the heap. tfjs has no 16-bit float dtype: the raw halves live in an
 * int32 tensor of half the width (element 2j in the low 16 bits of int32 j, little-endian as the file has them),
 * which only our kernels read: the GEMM (gemm.ts) widens a block at a time while it packs B, and `halfRows`
 * widens the rows a lookup needs. Every value is computed in float32; widening is exact.
 */
import * as tf from '@tensorflow/tfjs-core';
import { decodeFloatsInto } from '../io/safetensors';
import { halfShapeOk } from './half_shape';
import { heapOffset, type WasmBackendLike } from './wasm_kernels';

/** named as safetensors names the dtypes */
export type HalfFormat = 'BF16' | 'F16';

export interface HalfMatrix {
  readonly kind: 'half';
  /** [rows, cols], as stored (a Linear weight: HF's [out, in]) */
  readonly shape: [number, number];
  readonly format: HalfFormat;
  /** int32 [rows, cols / 2]: the raw 16-bit values */
  readonly packed: tf.Tensor2D;
}

/** A frozen matrix: float32 tensor, or 16-bit on the heap. */
export type Matrix = tf.Tensor2D | HalfMatrix;

export function isHalf(m: Matrix): m is HalfMatrix {
  return (m as HalfMatrix).kind === 'half';
}

/** Puts the raw 16-bit values `bits` ([rows, cols], row-major) on the backend as a HalfMatrix. */
export function halfMatrix(bits: Uint16Array, shape: [number, number], format: HalfFormat): HalfMatrix {
  if (!halfShapeOk(shape) || bits.length !== shape[0] * shape[1]) throw new Error(`internal: a 16-bit matrix of [${shape}] from ${bits.length} values`);
  const words = bits.byteOffset % 4 === 0 ? new Int32Array(bits.buffer, bits.byteOffset, bits.length / 2) : new Int32Array(Uint16Array.from(bits).buffer);
  return { kind: 'half', shape: [shape[0], shape[1]], format, packed: tf.tensor2d(words, [shape[0], shape[1] / 2], 'int32') };
}

/** The raw 16-bit values of `m` on the host (for a replica, or to write it out). */
export function halfBits(m: HalfMatrix): Uint16Array {
  const out = new Uint16Array(m.shape[0] * m.shape[1]);
  halfBitsInto(m, out);
  return out;
}

/** Widens 16-bit values to float32 (exact), as the loader decodes them (io/safetensors.ts). */
export function widenInto(bits: Uint16Array, format: HalfFormat, out: Float32Array): void {
  decodeFloatsInto(new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength), format, out);
}

const ROWS_KERNEL = 'LoraStudioHalfRows';

/** Registers the row lookup on wasm (idempotent). */
function registerRows(): void {
  if (tf.getKernel(ROWS_KERNEL, 'wasm')) return;
  tf.registerKernel({
    kernelName: ROWS_KERNEL,
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const b = backend as unknown as WasmBackendLike;
      const { table, ids } = inputs as { table: tf.TensorInfo; ids: tf.TensorInfo };
      const { cols, format } = attrs as unknown as { cols: number; format: HalfFormat };
      const n = ids.shape[0];
      const out = b.makeOutput([n, cols], 'float32');
      const heap = b.wasm.wasmMemory?.buffer ?? b.wasm.HEAPU8.buffer;
      const src = new Uint16Array(heap, heapOffset(b, table), table.shape[0] * cols);
      const idv = new Int32Array(heap, heapOffset(b, ids), n);
      const dst = new Float32Array(heap, heapOffset(b, out), n * cols);
      const rows = table.shape[0];
      for (let r = 0; r < n; r++) {
        const id = idv[r];
        if (!(id >= 0 && id < rows)) throw new Error(`internal: row ${id} of a ${rows}-row table`);
        widenInto(src.subarray(id * cols, (id + 1) * cols), format, dst.subarray(r * cols, (r + 1) * cols));
      }
      return out;
    },
  });
}

/** table[ids] as float32 [ids.length, cols]: a lookup off the tape (no gradient; the table is frozen). */
export function halfRows(table: HalfMatrix, ids: tf.Tensor1D): tf.Tensor2D {
  registerRows();
  return tf.engine().runKernel(ROWS_KERNEL, { table: table.packed, ids }, { cols: table.shape[1], format: table.format } as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

/** The whole matrix as a float32 tensor [rows, cols] (the rare paths that need one, e.g. a trained bias beside it). */
export function widenHalf(m: HalfMatrix): tf.Tensor2D {
  return halfRows(m, tf.range(0, m.shape[0], 1, 'int32') as tf.Tensor1D);
}

/** Rows `ids` of a frozen matrix as float32, off the tape (the table is frozen: no gradient flows into it). */
export function matrixRows(m: Matrix, ids: tf.Tensor1D): tf.Tensor2D {
  return isHalf(m) ? halfRows(m, ids) : (tf.gather(m, ids) as tf.Tensor2D);
}

/** The stored 16-bit values of `m` copied into `out` (rows × cols values). */
export function halfBitsInto(m: HalfMatrix, out: Uint16Array): void {
  const words = m.packed.dataSync() as Int32Array;
  out.set(new Uint16Array(words.buffer, words.byteOffset, m.shape[0] * m.shape[1]));
}
