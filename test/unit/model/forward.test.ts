/**
 * The tfjs GPT-2 + LoRA forward pass against the float64 reference, on the cpu and the wasm backend:
 * causal and seq-cls logits, LoRA on every Conv1D kind and on the head, padding, last-real-token pooling,
 * the activations, rejected configs, and no tensor leaks.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { collate } from '../../../trainer/data/collate';
import { GPT2LoraModel } from '../../../trainer/models/gpt2/model';
import { LoraStudioError } from '../../../trainer/errors';
import { refCausalLogits, refCausalLoss, refSeqClsLogits, refSeqClsLoss } from '../../reference/gpt2_f64';
import { lossOf, onEachBackend, PAD, randomRows, refOf, relErr, specOf, tinySetup } from './tiny';

const TOL = 1e-4;

describe('GPT2LoraModel forward vs float64 reference', () => {
  onEachBackend(() => {
    for (const activation_function of ['gelu_new', 'gelu', 'relu']) {
      it(`causal logits match (${activation_function}, LoRA on every Conv1D and on lm_head)`, async () => {
        const s = tinySetup('causal-lm', { config: { activation_function }, headLora: true });
        const model = GPT2LoraModel.create(specOf(s));
        const ref = refOf(s);
        const rows = randomRows([7, 3, 5], 11);
        const batch = collate(rows.map((input_ids) => ({ input_ids })), PAD);
        const logits = model.logits(batch, { training: false });
        assert.deepEqual(logits.shape, [3, 7, 257]);
        const got = (await logits.array()) as number[][][];
        logits.dispose();
        rows.forEach((ids, b) => {
          const want = refCausalLogits(ref, ids);
          const real = got[b].slice(0, ids.length).flat();
          assert.ok(relErr(real, want) < TOL, `row ${b}: rel err ${relErr(real, want)}`);
        });
        const loss = await lossOf(model, batch);
        assert.ok(Math.abs(loss - refCausalLoss(ref, rows)) < TOL * Math.max(1, loss), `loss ${loss} vs ${refCausalLoss(ref, rows)}`);
        model.dispose();
      });
    }

    it('a right-padded row equals the same example alone', async () => {
      const s = tinySetup('causal-lm');
      const model = GPT2LoraModel.create(specOf(s));
      const rows = randomRows([9, 4], 3);
      const both = model.logits(collate(rows.map((input_ids) => ({ input_ids })), PAD), { training: false });
      const alone = model.logits(collate([{ input_ids: rows[1] }], PAD), { training: false });
      const padded = tf.tidy(() => tf.slice(both, [1, 0, 0], [1, 4, -1]));
      assert.ok(relErr((await padded.data()), (await alone.data())) < 1e-5);
      tf.dispose([both, alone, padded]);
      model.dispose();
    });

    it('seq-cls logits come from the last real token and match the reference', async () => {
      const s = tinySetup('seq-cls', { num_labels: 3, headLora: true });
      const model = GPT2LoraModel.create(specOf(s));
      const ref = refOf(s);
      const rows = randomRows([6, 2, 8, 1], 5);
      const labels = [2, 0, 1, 1];
      const batch = collate(rows.map((input_ids, i) => ({ input_ids, label: labels[i] })), PAD);
      const logits = model.logits(batch, { training: false });
      assert.deepEqual(logits.shape, [4, 3]);
      const got = (await logits.array()) as number[][];
      logits.dispose();
      rows.forEach((ids, b) => {
        const want = refSeqClsLogits(ref, ids);
        assert.ok(relErr(got[b], want) < TOL, `row ${b}: ${got[b]} vs ${[...want]}`);
        // and not the logits of any other position
        if (ids.length > 1) assert.ok(relErr(got[b], refSeqClsLogits(ref, ids.slice(0, -1))) > 1e-3);
      });
      const loss = await lossOf(model, batch);
      const want = refSeqClsLoss(ref, rows, labels);
      assert.ok(Math.abs(loss - want) < TOL * Math.max(1, want), `loss ${loss} vs ${want}`);
      model.dispose();
    });

    it('does not leak tensors across calls', async () => {
      const s = tinySetup('seq-cls');
      const model = GPT2LoraModel.create(specOf(s));
      const batch = collate(randomRows([5, 3], 1).map((input_ids) => ({ input_ids, label: 1 })), PAD);
      await lossOf(model, batch);
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) {
        await lossOf(model, batch, { training: true, seed: i });
        tf.dispose(model.logits(batch, { training: false }));
        await model.nllSum(batch);
        const { value, grads } = tf.variableGrads(() => model.loss(batch, { training: true, seed: 1 }), [...model.trainable.values()]);
        tf.dispose([value, ...Object.values(grads)]);
      }
      assert.equal(tf.memory().numTensors, before);
      model.dispose();
      assert.ok(tf.memory().numTensors < before);
    });
  });

  it('rejects configs it does not implement, naming the field', async () => {
    for (const [field, value] of [['scale_attn_by_inverse_layer_idx', true], ['reorder_and_upcast_attn', true]] as const) {
      const s = tinySetup('causal-lm', { config: { [field]: value } });
      assert.throws(() => GPT2LoraModel.create(specOf(s)), (e: unknown) => e instanceof LoraStudioError && e.field === field);
    }
  });

  it('rejects weights whose shape does not match config.json', async () => {
    const s = tinySetup('causal-lm');
    const weights = new Map(s.weights);
    weights.set('transformer.h.1.mlp.c_fc.weight', { shape: [16, 32], data: new Float32Array(512), dtype: 'F32' });
    assert.throws(() => GPT2LoraModel.create(specOf({ ...s, weights })), (e: unknown) => e instanceof LoraStudioError && e.field === 'transformer.h.1.mlp.c_fc.weight');
    weights.delete('transformer.h.1.mlp.c_fc.weight');
    assert.throws(() => GPT2LoraModel.create(specOf({ ...s, weights })), /no transformer\.h\.1\.mlp\.c_fc\.weight/);
  });
});
