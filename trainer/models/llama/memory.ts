/**
 * Whether a model's weights fit the wasm backend's heap. One wasm heap holds at most 4 GiB, which the activations
 * and gradients of a step share. The model keeps its frozen matrices in 16 bits there when the file stores them
 * so (ops/half.ts; tfjs itself has no 16-bit float dtype), everything else in float32: a model whose weights,
 * counted so, pass WEIGHT_BUDGET is refused up front with a LoraStudioError, not left to abort the wasm runtime
 * mid-load. Other backends keep their memory elsewhere and are not checked here.
 */
import { LoraStudioError } from '../../errors';
import type { HostTensor } from '../../io/safetensors';
import type { LlamaConfig } from './config';
import { llamaHalfOk } from './weights';

export const WASM_HEAP_BYTES = 4 * 2 ** 30;
/** the float32 weights allowed in one heap: the rest (0.5 GiB) is left for a step's activations and gradients */
export const WEIGHT_BUDGET = 3.5 * 2 ** 30;

const gib = (bytes: number) => (bytes / 2 ** 30).toFixed(2);

/** The weights' count and the bytes they take in the heap (each 2 where it is kept in 16 bits, else 4). */
export interface HeapWeights {
  count: number;
  bytes: number;
}

/** Refuses weights whose heap bytes pass WEIGHT_BUDGET when `backend` is wasm. */
export function checkFitsHeap(c: LlamaConfig, w: HeapWeights, file: string, backend: string): void {
  if (backend !== 'wasm') return;
  if (w.bytes <= WEIGHT_BUDGET) return;
  const f32 = w.bytes === 4 * w.count;
  throw new LoraStudioError(
    `this ${c.model_type} model has ${w.count.toLocaleString('en-US')} weights, ${gib(w.bytes)} GiB ${f32 ? 'as float32' : 'as held (16 bits where the file stores them so)'}, which the wasm backend keeps in memory; ` +
      `its heap holds 4 GiB in all, of which at most ${gib(WEIGHT_BUDGET)} GiB can go to weights. ` +
      `${f32 ? 'Weights stored in BF16 or F16 are kept in 16 bits (half the size): use the BF16 release of the model if there is one; or pick' : 'Pick'} a smaller model, or the webgpu backend where a GPU is available`,
    file,
    'hidden_size',
  );
}

/**
 * The heap bytes of a model's weights, from their shapes and, where known, the dtype each is stored in
 * (`stored`, by canonical key; unknown counts as float32).
 */
export function heapWeights(shapes: Map<string, number[]>, stored?: (key: string) => string | undefined): HeapWeights {
  let count = 0;
  let bytes = 0;
  for (const [key, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const dtype = stored?.(key);
    count += n;
    bytes += n * ((dtype === 'BF16' || dtype === 'F16') && llamaHalfOk(key, shape) ? 2 : 4);
  }
  return { count, bytes };
}

/** checkFitsHeap for the weights a model spec holds (a tensor read from 16 bits carries `bits`), on `backend`. */
export function checkSpecFitsHeap(c: LlamaConfig, weights: Map<string, HostTensor>, backend: string): void {
  const shapes = new Map([...weights].map(([k, t]) => [k, t.shape]));
  checkFitsHeap(c, heapWeights(shapes, (k) => (weights.get(k)!.bits ? weights.get(k)!.dtype : 'F32')), 'config.json', backend);
}
