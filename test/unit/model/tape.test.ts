/**
 * releaseAsBackpropPasses (trainer/util/tape.ts): the same gradients, less memory held during the backward pass,
 * and nothing left behind afterwards. Run on a chain of ops where every node saves tensors, so that without the
 * release the backward pass holds all saved activations plus every intermediate gradient at once.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { releaseAsBackpropPasses } from '../../../trainer/util/tape';
import { Rng } from '../../../trainer/util/rng';
import { useBackend } from './tiny';

function chain(x: tf.Tensor2D, ws: tf.Variable[], release: boolean): tf.Scalar {
  let h: tf.Tensor2D = x;
  for (const w of ws) h = tf.tanh(tf.matMul(h, w)) as tf.Tensor2D;
  const loss = tf.mean(tf.square(h)) as tf.Scalar;
  if (release) releaseAsBackpropPasses();
  return loss;
}

describe('releaseAsBackpropPasses', () => {
  it('gives the same gradients, with a lower peak and no leftover tensors', async () => {
    await useBackend('cpu');
    const rng = new Rng(3);
    const x = tf.tensor2d(Float32Array.from({ length: 64 * 32 }, () => rng.normal()), [64, 32]);
    const ws = Array.from({ length: 8 }, (_, i) => tf.variable(tf.tensor2d(Float32Array.from({ length: 32 * 32 }, () => rng.normal() * 0.3), [32, 32]), true, `tape_test_w${i}`));
    const run = async (release: boolean) => {
      const before = tf.memory().numTensors;
      let grads: tf.NamedTensorMap = {};
      let value: tf.Scalar | null = null;
      const profile = await tf.profile(() => {
        ({ value, grads } = tf.variableGrads(() => chain(x, ws, release), ws));
      });
      const host = ws.map((w) => Array.from(grads[w.name].dataSync()));
      const loss = value!.dataSync()[0];
      // what is left: the loss and one gradient per variable
      assert.equal(tf.memory().numTensors - before, 1 + ws.length);
      tf.dispose([value!, ...Object.values(grads)]);
      return { host, loss, peak: profile.peakBytes };
    };
    const plain = await run(false);
    const released = await run(true);
    assert.equal(released.loss, plain.loss);
    assert.deepEqual(released.host, plain.host);
    assert.ok(released.peak < plain.peak, `peak ${released.peak} B with the release, ${plain.peak} B without`);
    tf.dispose([x, ...ws]);
  });

  it('does nothing outside a gradient computation', async () => {
    await useBackend('cpu');
    releaseAsBackpropPasses();
    const t = tf.scalar(2);
    assert.equal(tf.square(t).dataSync()[0], 4);
    t.dispose();
  });
});
