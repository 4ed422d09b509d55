/**
 * Two kernel overrides for tfjs-backend-wasm that change no value, only cost:
 * - Identity shares the input's buffer (a reference count, as Reshape already does) instead of copying it.
 *   tfjs-core clones every tensor it saves for backprop through Identity, so on wasm each saved input was a
 *   real copy held until the backward pass ended.
 * - Slice copies only the slice. The stock kernel first copies the whole input out of the heap (readSync),
 *   which made cutting a tensor into per-head pieces cost a full copy per piece.
 * Registered once per thread, on first use of the model; tensors are immutable, so sharing buffers is safe.
 * The helpers (the backend's shape, heap views, overriding a stock kernel) serve heap_kernels.ts too.
 */
import * as tf from '@tensorflow/tfjs-core';

interface WasmData {
  memoryOffset: number;
}
/** The parts of tfjs-backend-wasm's BackendWasm that the kernels here and in heap_kernels.ts use. */
export interface WasmBackendLike {
  incRef(dataId: object): void;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  dataIdMap: { get(dataId: object): WasmData };
  wasm: { HEAPU8: Uint8Array; wasmMemory?: WebAssembly.Memory };
}

/** Where a tensor's data starts in the heap (a byte address, as wasm code takes it). */
export function heapOffset(backend: WasmBackendLike, t: tf.TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).memoryOffset;
}

/** A float32 view of a tensor's data in the heap (the heap's current buffer: an allocation may have grown it). */
export function heapF32(backend: WasmBackendLike, t: tf.TensorInfo): Float32Array {
  const buffer = backend.wasm.wasmMemory?.buffer ?? backend.wasm.HEAPU8.buffer;
  return new Float32Array(buffer, heapOffset(backend, t), tf.util.sizeFromShape(t.shape));
}

/** Copies a float32 tensor's values into `out`; on wasm straight from the heap (dataSync would copy them first). */
export function readInto(t: tf.Tensor, out: Float32Array): void {
  if (t.dtype === 'float32' && tf.getBackend() === 'wasm') out.set(heapF32(tf.backend() as unknown as WasmBackendLike, t));
  else out.set(t.dataSync() as Float32Array);
}

/** Replaces a stock wasm kernel by `fast`, which may decline (null) to hand the call back to the stock kernel. */
export function overrideWasmKernel(kernelName: string, fast: (args: { inputs: tf.NamedTensorInfoMap; attrs: tf.NamedAttrMap; backend: WasmBackendLike }) => tf.TensorInfo | null): void {
  const stock = tf.getKernel(kernelName, 'wasm');
  if (!stock) return;
  tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({
    kernelName,
    backendName: 'wasm',
    kernelFunc: (args) => fast({ inputs: args.inputs, attrs: args.attrs ?? {}, backend: args.backend as unknown as WasmBackendLike }) ?? (stock.kernelFunc(args) as tf.TensorInfo),
  });
}

let installed = false;

export function installWasmKernels(): void {
  if (installed) return;
  installed = true;
  if (tf.getKernel('Identity', 'wasm')) tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({
    kernelName: 'Identity',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const x = inputs.x as tf.TensorInfo;
      (backend as unknown as WasmBackendLike).incRef(x.dataId);
      return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
    },
  });
  overrideWasmKernel('Slice', ({ inputs, attrs, backend }) => {
    const x = inputs.x as tf.TensorInfo;
    return x.dtype === 'float32' || x.dtype === 'int32' ? sliceView(x, attrs as unknown as { begin: number | number[]; size: number | number[] }, backend) : null;
  });
}

/** Slices rank ≤ 2 (or any continuous slice) by copying straight from heap views; null when it cannot. */
function sliceView(x: tf.TensorInfo, attrs: { begin: number | number[]; size: number | number[] }, backend: WasmBackendLike): tf.TensorInfo | null {
  const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, attrs.begin, attrs.size);
  const continuous = tf.slice_util.isSliceContinous(x.shape, begin, size);
  if (!continuous && x.shape.length !== 2) return null;
  const out = backend.makeOutput(size, x.dtype);
  const n = tf.util.sizeFromShape(size);
  if (n === 0) return out;
  // int32 slices move through float32 views too: a same-type copy moves bytes
  const xs = heapF32(backend, x);
  const os = heapF32(backend, out);
  if (continuous) {
    const offset = tf.slice_util.computeFlatOffset(begin, tf.util.computeStrides(x.shape));
    os.set(xs.subarray(offset, offset + n));
    return out;
  }
  const cols = x.shape[1];
  const [r0, c0] = begin;
  const [rows, w] = size;
  for (let r = 0; r < rows; r++) {
    const from = (r0 + r) * cols + c0;
    os.set(xs.subarray(from, from + w), r * w);
  }
  return out;
}
