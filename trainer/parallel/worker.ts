/**
 * A gradient worker (worker_threads): its own tfjs backend (one wasm instance, one core) and a replica of the
 * frozen model. Per request it takes the current trainable values, computes the loss and gradients of its
 * shard of the batch, and sends the gradients back; the optimizer step stays with the trainer thread.
 */
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../backend';
import type { LoraModel } from '../models/family';
import { familyFor } from '../models/registry';
import type { FromWorker, ToWorker } from './protocol';
import { collectGarbage } from '../util/gc';
import { halfHost } from '../io/safetensors';

let model: LoraModel | null = null;

function reply(m: FromWorker, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(m, transfer);
}

async function handle(m: ToWorker): Promise<void> {
  if (m.kind === 'close') {
    model?.dispose();
    process.exit(0);
  }
  if (m.kind === 'init') {
    await initBackend(m.backend as BackendName);
    // a 16-bit weight arrives as its stored values (halfHost's decoded data is not cloned): wrap it again
    for (const [key, t] of m.spec.weights) {
      if (t.bits && !Object.prototype.hasOwnProperty.call(t, 'data')) m.spec.weights.set(key, halfHost(t.shape, t.bits, t.dtype as 'F16' | 'BF16'));
    }
    model = familyFor(m.spec.config).createModel(m.spec);
    m.spec.weights.clear();
    m.spec.adapter = undefined;
    // the transferred buffer is garbage now: give its pages back before training starts
    collectGarbage();
    reply({ kind: 'ready' });
    return;
  }
  const mdl = model!;
  for (const [key, v] of mdl.trainable) tf.tidy(() => v.assign(tf.tensor(m.params[key], v.shape, 'float32')));
  const vars = [...mdl.trainable.values()];
  const keyOf = new Map([...mdl.trainable].map(([k, v]) => [v.name, k]));
  const { value, grads } = tf.variableGrads(() => mdl.loss(m.batch, { training: true, seed: m.seed, rowOffset: m.rowOffset, denominator: m.denominator }), vars);
  const out: Record<string, Float32Array> = {};
  for (const [name, g] of Object.entries(grads)) out[keyOf.get(name)!] = g.dataSync() as Float32Array;
  const loss = value.dataSync()[0];
  tf.dispose([value, ...Object.values(grads)]);
  reply({ kind: 'grad', id: m.id, loss, grads: out }, Object.values(out).map((a) => a.buffer as ArrayBuffer));
}

parentPort!.on('message', (m: ToWorker) => {
  handle(m).catch((e: unknown) => reply({ kind: 'error', id: m.kind === 'grad' ? m.id : undefined, message: e instanceof Error ? e.stack ?? e.message : String(e) }));
});
