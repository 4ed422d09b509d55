/** Global-norm clipping vs a float64 computation (torch.nn.utils.clip_grad_norm_ semantics). */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { clipByGlobalNorm } from '../../../trainer/train/clip';
import { Rng } from '../../../trainer/util/rng';

function grads(): { map: Map<string, tf.Tensor>; raw: Float32Array[] } {
  const rng = new Rng(11);
  const shapes = [[3, 4], [5], [2, 2, 2]];
  const raw = shapes.map((s) => Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => rng.normal()));
  return { map: new Map(raw.map((a, i) => [`g${i}`, tf.tensor(a, shapes[i])])), raw };
}
const norm64 = (raw: Float32Array[]) => Math.sqrt(raw.reduce((s, a) => s + a.reduce((t, x) => t + x * x, 0), 0));

describe('clipByGlobalNorm', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('returns the pre-clip norm and scales by max_norm/(norm+1e-6) when above', async () => {
    const { map, raw } = grads();
    const before = tf.memory().numTensors;
    const expectedNorm = norm64(raw);
    assert.ok(expectedNorm > 1);
    const { grads: out, norm } = await clipByGlobalNorm(map, 1.0);
    assert.ok(Math.abs(norm - expectedNorm) < 1e-5 * expectedNorm, `${norm} vs ${expectedNorm}`);
    const coef = 1.0 / (expectedNorm + 1e-6);
    raw.forEach((a, i) => {
      const got = out.get(`g${i}`)!.dataSync();
      a.forEach((x, j) => assert.ok(Math.abs(got[j] - x * coef) < 1e-6, `g${i}[${j}]`));
    });
    const clipped = [...out.values()].map((t) => Float32Array.from(t.dataSync()));
    assert.ok(Math.abs(norm64(clipped) - 1) < 1e-5);
    assert.equal(tf.memory().numTensors, before + out.size, 'only the returned tensors are new');
    out.forEach((t) => t.dispose());
    map.forEach((t) => t.dispose());
  });

  it('leaves gradients unchanged under the threshold, and when disabled', async () => {
    const { map, raw } = grads();
    const expectedNorm = norm64(raw);
    for (const maxNorm of [expectedNorm * 2, 0, -1, null]) {
      const { grads: out, norm } = await clipByGlobalNorm(map, maxNorm);
      assert.ok(Math.abs(norm - expectedNorm) < 1e-5 * expectedNorm);
      raw.forEach((a, i) => assert.deepEqual(out.get(`g${i}`)!.dataSync(), a));
      out.forEach((t) => t.dispose());
    }
    // inputs stay usable after disposing the outputs
    assert.deepEqual(map.get('g0')!.dataSync(), raw[0]);
    map.forEach((t) => t.dispose());
  });

  it('an empty gradient set has norm 0', async () => {
    const { grads: out, norm } = await clipByGlobalNorm(new Map(), 1);
    assert.equal(norm, 0);
    assert.equal(out.size, 0);
  });
});
