/**
 * Finite-difference gradient check on both backends: tfjs's analytic gradients of the loss with respect to
 * lora_A, lora_B, score.weight and a trained bias equal central differences of the float64 reference loss;
 * the block-wise tied-head NLL equals the whole-logits one.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { collate } from '../../../trainer/data/collate';
import { GPT2LoraModel } from '../../../trainer/models/gpt2/model';
import { refCausalLoss, refSeqClsLoss } from '../../reference/gpt2_f64';
import { crossEntropyRows, tiedHeadNll } from '../../../trainer/ops/layers';
import { onEachBackend, PAD, randomRows, refOf, relErr, specOf, tinySetup, type TinySetup } from './tiny';

/** A coordinate of a trainable tensor, in PEFT/HF layout: the key, and [row, col] (or [i] for a vector). */
type Coord = { key: string; at: number[] };

/** The reference loss with one PEFT/HF-layout coordinate moved by `delta`, in float64 (refOf copies every array). */
function refLossAt(s: TinySetup, c: Coord, delta: number, rows: number[][], labels?: number[]): number {
  const ref = refOf(s);
  const m = /^(.*)\.lora_([AB])\.weight$/.exec(c.key);
  let arr: Float64Array;
  let cols: number;
  if (m) {
    const f = ref.lora.get(m[1])!;
    arr = m[2] === 'A' ? f.A : f.B;
    cols = m[2] === 'A' ? arr.length / f.r : f.r;
  } else {
    arr = ref.weights.get(c.key)!;
    const shape = (s.adapter.extra.get(c.key) ?? s.weights.get(c.key))!.shape;
    cols = shape.length === 2 ? shape[1] : 1;
  }
  const idx = c.at.length === 2 ? c.at[0] * cols + c.at[1] : c.at[0];
  arr[idx] += delta;
  return s.task === 'seq-cls' ? refSeqClsLoss(ref, rows, labels!) : refCausalLoss(ref, rows);
}

/** tfjs gradient at a PEFT/HF-layout coordinate: internal tensors of transposed keys are [in, out]. */
async function tfGradAt(grads: Record<string, tf.Tensor>, model: GPT2LoraModel, c: Coord): Promise<number> {
  const v = model.trainable.get(c.key)!;
  const g = (await grads[v.name].array()) as number[] | number[][];
  const transposed = /lora_[AB]\.weight$|^score\.weight$/.test(c.key);
  if (c.at.length === 1) return (g as number[])[c.at[0]];
  return transposed ? (g as number[][])[c.at[1]][c.at[0]] : (g as number[][])[c.at[0]][c.at[1]];
}

async function check(s: TinySetup, coords: Coord[], rows: number[][], labels?: number[]) {
  const model = GPT2LoraModel.create(specOf(s, { bias: 'lora_only' }));
  const batch = collate(rows.map((input_ids, i) => ({ input_ids, label: labels?.[i] })), PAD);
  const { value, grads } = tf.variableGrads(() => model.loss(batch, { training: false }), [...model.trainable.values()]);
  const h = 1e-5;
  for (const c of coords) {
    const fd = (refLossAt(s, c, h, rows, labels) - refLossAt(s, c, -h, rows, labels)) / (2 * h);
    const got = await tfGradAt(grads, model, c);
    assert.ok(Math.abs(got - fd) <= 2e-4 + 2e-3 * Math.abs(fd), `${c.key}[${c.at}]: tfjs ${got}, finite difference ${fd}`);
    assert.ok(Math.abs(fd) > 1e-6, `${c.key}[${c.at}]: the reference gradient is ~0, pick another coordinate`);
  }
  tf.dispose([value, ...Object.values(grads)]);
  model.dispose();
}

describe('gradients vs central differences of the float64 reference', () => {
  onEachBackend(() => {
    it('causal-lm: lora_A, lora_B (Conv1D kinds and lm_head) and a lora_only bias', async () => {
      const s = tinySetup('causal-lm', { headLora: true, seed: 3 });
      await check(s, [
        { key: 'transformer.h.0.attn.c_attn.lora_A.weight', at: [1, 5] },
        { key: 'transformer.h.0.attn.c_attn.lora_B.weight', at: [40, 2] },
        { key: 'transformer.h.1.attn.c_proj.lora_A.weight', at: [0, 3] },
        { key: 'transformer.h.0.mlp.c_fc.lora_B.weight', at: [10, 1] },
        { key: 'transformer.h.1.mlp.c_proj.lora_A.weight', at: [1, 60] },
        { key: 'lm_head.lora_A.weight', at: [1, 7] },
        { key: 'lm_head.lora_B.weight', at: [100, 0] },
        { key: 'transformer.h.1.attn.c_attn.bias', at: [40] },
      ], randomRows([6, 4, 2], 8));
    });

    it('causal-lm with the tied frozen head (block-wise NLL): lora_A, lora_B', async () => {
      const s = tinySetup('causal-lm', { seed: 5 });
      await check(s, [
        { key: 'transformer.h.0.attn.c_attn.lora_A.weight', at: [3, 2] },
        { key: 'transformer.h.1.mlp.c_fc.lora_B.weight', at: [7, 2] },
        { key: 'transformer.h.1.mlp.c_proj.lora_B.weight', at: [9, 1] },
      ], randomRows([3, 7, 5], 10));
    });

    it('tiedHeadNll block by block equals the whole-logits cross entropy, values and gradients', async () => {
      const h = tf.randomNormal([7, 5], 0, 1, 'float32', 1) as tf.Tensor2D;
      const w = tf.randomNormal([11, 5], 0, 1, 'float32', 2) as tf.Tensor2D;
      const wT = tf.transpose(w);
      const targets = Int32Array.from([3, -1, 10, 0, 4, 4, -1]);
      const weights = tf.tensor1d([1, 2, 3, 4, 5, 6, 7]);
      const whole = (x: tf.Tensor) => tf.sum(tf.mul(crossEntropyRows(tf.matMul(x as tf.Tensor2D, wT), targets), weights));
      const blocks = (x: tf.Tensor) => tf.sum(tf.mul(tiedHeadNll(x as tf.Tensor2D, wT, w, targets, 3), weights));
      const [a, ga] = [whole(h), tf.grad(whole)(h)];
      const [b, gb] = [blocks(h), tf.grad(blocks)(h)];
      assert.ok(Math.abs((await a.data())[0] - (await b.data())[0]) < 1e-4);
      assert.ok(relErr((await gb.data()), (await ga.data())) < 1e-5);
      assert.ok(((await gb.array()) as number[][])[1].every((v) => v === 0), 'a row without a target has no gradient');
      tf.dispose([h, w, wT, weights, a, ga, b, gb]);
    });

    it('seq-cls: lora_A, lora_B and score.weight (modules_to_save)', async () => {
      const s = tinySetup('seq-cls', { num_labels: 3, seed: 4 });
      await check(s, [
        { key: 'transformer.h.0.attn.c_attn.lora_A.weight', at: [2, 9] },
        { key: 'transformer.h.1.attn.c_attn.lora_B.weight', at: [33, 3] },
        { key: 'transformer.h.1.mlp.c_fc.lora_A.weight', at: [0, 0] },
        { key: 'score.weight', at: [0, 4] },
        { key: 'score.weight', at: [2, 15] },
      ], randomRows([5, 3, 7, 1], 9), [0, 2, 1, 2]);
    });
  });
});
