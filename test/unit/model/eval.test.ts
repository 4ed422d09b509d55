/**
 * Evaluation and generation: weighted F1 against hand-computed sklearn values, causal eval loss as total NLL
 * over predicted tokens (float64 reference, uneven lengths, several batches), seq-cls metrics, and greedy /
 * seeded generation (deterministic, matches the reference's argmax, stops at eos and at n_positions).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { evaluate, generate, weightedF1 } from '../../../trainer/eval';
import { GPT2LoraModel } from '../../../trainer/models/gpt2/model';
import { refCausalLogits, refCausalNll, refSeqClsLogits, refSeqClsLoss } from '../../reference/gpt2_f64';
import { onEachBackend, PAD, randomRows, refOf, specOf, tinySetup } from './tiny';

describe('weightedF1 (sklearn f1_score average="weighted")', () => {
  it('matches hand-computed sklearn values', async () => {
    // sklearn's own docstring example: 0.26666666666666666
    assert.ok(Math.abs(weightedF1([0, 2, 1, 0, 0, 1], [0, 1, 2, 0, 1, 2]) - 0.26666666666666666) < 1e-12);
    // per class F1 0.8 (support 3), 0.5 (2), 2/3 (1) → (2.4 + 1 + 2/3) / 6
    assert.ok(Math.abs(weightedF1([0, 0, 1, 1, 2, 2], [0, 0, 0, 1, 1, 2]) - (2.4 + 1 + 2 / 3) / 6) < 1e-12);
    // a predicted class absent from the labels counts with support 0: (2/3·2 + 1·2) / 4
    assert.ok(Math.abs(weightedF1([0, 2, 1, 1], [0, 0, 1, 1]) - 5 / 6) < 1e-12);
    assert.equal(weightedF1([1, 0, 1], [1, 0, 1]), 1);
    assert.equal(weightedF1([1, 1], [0, 0]), 0);
  });
});

describe('evaluate and generate', () => {
  onEachBackend(() => {
    it('causal: loss = total NLL / predicted tokens over every example', async () => {
      const s = tinySetup('causal-lm');
      const model = GPT2LoraModel.create(specOf(s));
      const rows = randomRows([5, 1, 3, 8, 2], 13);
      const m = await evaluate(model, rows.map((input_ids) => ({ input_ids })), { batch_size: 2, pad_token_id: PAD });
      const ref = refCausalNll(refOf(s), rows);
      assert.ok('perplexity' in m);
      assert.equal(m.num_tokens, 14);
      assert.equal(ref.count, 14);
      assert.ok(Math.abs(m.loss - ref.nll / ref.count) < 1e-4, `${m.loss} vs ${ref.nll / ref.count}`);
      assert.ok(Math.abs(m.perplexity - Math.exp(m.loss)) < 1e-9);
      model.dispose();
    });

    it('seq-cls: loss, accuracy and weighted F1 from the reference logits', async () => {
      const s = tinySetup('seq-cls', { num_labels: 3, seed: 6 });
      const model = GPT2LoraModel.create(specOf(s));
      const ref = refOf(s);
      const rows = randomRows([4, 6, 2, 5, 3, 7, 1], 17);
      const labels = [0, 1, 2, 2, 1, 0, 1];
      const m = await evaluate(model, rows.map((input_ids, i) => ({ input_ids, label: labels[i] })), { batch_size: 3, pad_token_id: PAD });
      const preds = rows.map((ids) => {
        const l = [...refSeqClsLogits(ref, ids)];
        return l.indexOf(Math.max(...l));
      });
      assert.ok('accuracy' in m);
      assert.equal(m.num_examples, 7);
      assert.ok(Math.abs(m.loss - refSeqClsLoss(ref, rows, labels)) < 1e-4);
      assert.equal(m.accuracy, preds.filter((p, i) => p === labels[i]).length / 7);
      assert.ok(Math.abs(m.f1 - weightedF1(preds, labels)) < 1e-12);
      model.dispose();
    });

    it('greedy generation is deterministic and follows the reference argmax; stops at eos and n_positions', async () => {
      const s = tinySetup('causal-lm', { seed: 2 });
      const model = GPT2LoraModel.create(specOf(s));
      const ref = refOf(s);
      const prompt = [10, 20, 30];
      const out = await generate(model, prompt, { max_new_tokens: 5, temperature: 0, seed: 0 });
      assert.equal(out.length, 5);
      assert.deepEqual(await generate(model, prompt, { max_new_tokens: 5, temperature: 0, seed: 9 }), out);
      const ids = [...prompt];
      for (let i = 0; i < 5; i++) {
        const l = refCausalLogits(ref, ids).subarray((ids.length - 1) * 257);
        ids.push(l.indexOf(Math.max(...l)));
      }
      assert.deepEqual(out, ids.slice(3));
      assert.deepEqual(await generate(model, prompt, { max_new_tokens: 5, temperature: 0, seed: 0, eos_token_id: out[1] }), out.slice(0, out.indexOf(out[1]) + 1));
      const long = randomRows([30], 4)[0];
      assert.equal((await generate(model, long, { max_new_tokens: 10, temperature: 0, seed: 0 })).length, 2, 'n_positions is 32');
      const a = await generate(model, prompt, { max_new_tokens: 8, temperature: 1.5, seed: 3 });
      assert.deepEqual(await generate(model, prompt, { max_new_tokens: 8, temperature: 1.5, seed: 3 }), a);
      assert.notDeepEqual(await generate(model, prompt, { max_new_tokens: 8, temperature: 1.5, seed: 4 }), a);
      model.dispose();
    });
  });
});
