/**
 * Training-mode dropout (embd/attn/resid pdrop and lora_dropout): off when every rate is 0, reproducible for a
 * seed, different for another seed, and never applied in eval mode. Both backends.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { collate } from '../../../trainer/data/collate';
import { GPT2LoraModel } from '../../../trainer/models/gpt2/model';
import { dropoutMask } from '../../../trainer/ops/layers';
import { lossOf, onEachBackend, PAD, randomRows, specOf, tinySetup } from './tiny';

describe('dropoutMask', () => {
  it('drops about `rate` of the entries, keeps the rest at 1/(1 − rate), and skipping k draws is the stream from k', async () => {
    const m = dropoutMask(100_000, 1234, 0.1);
    const zeros = m.filter((v) => v === 0).length;
    assert.ok(Math.abs(zeros / m.length - 0.1) < 0.005, `dropped ${zeros / m.length}`);
    assert.ok(m.every((v) => v === 0 || v === Math.fround(1 / 0.9)));
    assert.deepEqual(Array.from(dropoutMask(50, 1234, 0.1, 700)), Array.from(m.subarray(700, 750)));
    assert.notDeepEqual(Array.from(dropoutMask(50, 1235, 0.1)), Array.from(m.subarray(0, 50)));
  });
});

describe('dropout', () => {
  onEachBackend(() => {
    const batch = collate(randomRows([6, 4, 5], 2).map((input_ids) => ({ input_ids, label: 1 })), PAD);

    it('with every rate 0, training equals eval', async () => {
      const s = tinySetup('causal-lm');
      const model = GPT2LoraModel.create(specOf(s, { lora_dropout: 0 }));
      assert.equal(await lossOf(model, batch, { training: true, seed: 1 }), await lossOf(model, batch, { training: false }));
      model.dispose();
    });

    for (const which of ['embd_pdrop', 'attn_pdrop', 'resid_pdrop', 'lora_dropout'] as const) {
      it(`${which} > 0: same seed → same loss, other seed → other loss, eval ignores it`, async () => {
        const s = tinySetup('seq-cls', which === 'lora_dropout' ? {} : { config: { [which]: 0.3 } });
        const model = GPT2LoraModel.create(specOf(s, { lora_dropout: which === 'lora_dropout' ? 0.3 : 0 }));
        const plain = GPT2LoraModel.create(specOf(tinySetup('seq-cls')));
        const evalLoss = await lossOf(plain, batch, { training: false });
        const a = await lossOf(model, batch, { training: true, seed: 42 });
        assert.equal(await lossOf(model, batch, { training: true, seed: 42 }), a);
        assert.notEqual(await lossOf(model, batch, { training: true, seed: 43 }), a);
        assert.notEqual(a, evalLoss);
        assert.equal(await lossOf(model, batch, { training: false }), evalLoss);
        model.dispose();
        plain.dispose();
      });
    }
  });
});
