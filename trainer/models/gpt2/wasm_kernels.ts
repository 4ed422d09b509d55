/**
 * Two kernel overrides for tfjs-backend-wasm that change no value, only cost:
 * - Identity shares the input's buffer (a reference count, as Reshape already does) instead of copying it.
 *   tfjs-core clones every tensor it saves for backprop through Identity, so on wasm each saved input was a
 *   real copy held until the backward pass ended.
 * - Slice copies only the slice. The stock kernel first copies the whole input out of the heap (readSync),
 *   which made cutting a tensor into per-head pieces cost a full copy per piece.
 * Registered once per thread, on first use of the model; tensors are immutable, so sharing buffers is safe.
 */
import * as tf from '@tensorflow/tfjs-core';

interface WasmData {
  memoryOffset: number;
}
interface WasmBackendLike {
  incRef(dataId: object): void;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  dataIdMap: { get(dataId: object): WasmData };
  wasm: { HEAPU8: Uint8Array };
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
  const stockSlice = tf.getKernel('Slice', 'wasm');
  if (!stockSlice) return;
  tf.unregisterKernel('Slice', 'wasm');
  tf.registerKernel({
    kernelName: 'Slice',
    backendName: 'wasm',
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      const fast = x.dtype === 'float32' || x.dtype === 'int32' ? sliceView(x, args.attrs as unknown as { begin: number | number[]; size: number | number[] }, args.backend as unknown as WasmBackendLike) : null;
      return fast ?? (stockSlice.kernelFunc(args) as tf.TensorInfo);
    },
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
  const heap = backend.wasm.HEAPU8.buffer;
  const src = backend.dataIdMap.get(x.dataId).memoryOffset;
  const dst = backend.dataIdMap.get(out.dataId).memoryOffset;
  const total = tf.util.sizeFromShape(x.shape);
  const xs = new Float32Array(heap, src, total);
  const os = new Float32Array(heap, dst, n);
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
