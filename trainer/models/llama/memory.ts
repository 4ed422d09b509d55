/**
 * Whether a model's weights fit the wasm backend's heap. Every weight is held in float32 there (tfjs has no 16-bit
 * float dtype), and one wasm heap holds at most 4 GiB, which the activations and gradients of a step share: a
 * model whose float32 weights pass WEIGHT_BUDGET is refused up front with a LoraStudioError, not left to abort
 * the wasm runtime mid-load. Other backends keep their memory elsewhere and are not checked here.
 */
import * as tf from '@tensorflow/tfjs-core';
import { LoraStudioError } from '../../errors';
import type { HostTensor } from '../../io/safetensors';
import type { LlamaConfig } from './config';

export const WASM_HEAP_BYTES = 4 * 2 ** 30;
/** the float32 weights allowed in one heap: the rest (0.5 GiB) is left for a step's activations and gradients */
export const WEIGHT_BUDGET = 3.5 * 2 ** 30;

const gib = (bytes: number) => (bytes / 2 ** 30).toFixed(2);

/** The float32 bytes of `count` weights, checked against the heap when `backend` is wasm. */
export function checkFitsHeap(c: LlamaConfig, count: number, file: string, backend = tf.getBackend()): void {
  if (backend !== 'wasm') return;
  const bytes = 4 * count;
  if (bytes <= WEIGHT_BUDGET) return;
  throw new LoraStudioError(
    `this ${c.model_type} model has ${count.toLocaleString('en-US')} weights, ${gib(bytes)} GiB as float32, which the wasm backend keeps in memory; ` +
      `its heap holds 4 GiB in all, of which at most ${gib(WEIGHT_BUDGET)} GiB can go to weights (16-bit weights in memory are not supported). ` +
      'Pick a smaller model, or the webgpu backend where a GPU is available',
    file,
    'hidden_size',
  );
}

/** checkFitsHeap for the weights a model spec holds. */
export function checkSpecFitsHeap(c: LlamaConfig, weights: Map<string, HostTensor>): void {
  let n = 0;
  for (const t of weights.values()) n += t.data.length;
  checkFitsHeap(c, n, 'config.json');
}
