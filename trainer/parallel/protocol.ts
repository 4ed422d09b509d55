/**
 * Messages between the trainer thread and its gradient workers (worker_threads). Tensors travel as plain
 * Float32Arrays in the model's internal layout, keyed by trainable-parameter name.
 */
import type { Batch } from '../data/collate';
import type { ModelSpec } from '../models/family';

export type ToWorker =
  | { kind: 'init'; backend: string; spec: ModelSpec }
  | { kind: 'grad'; id: number; params: Record<string, Float32Array>; batch: Batch; rowOffset: number; denominator: number; seed: number }
  | { kind: 'close' };

export type FromWorker =
  | { kind: 'ready' }
  | { kind: 'grad'; id: number; loss: number; grads: Record<string, Float32Array> }
  | { kind: 'error'; id?: number; message: string };
