/**
 * Training-mode dropout (embd/attn/resid pdrop and lora_dropout): off when every rate is 0, reproducible for a
 * seed, different for another seed, and never applied in eval mode. Both backends.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { collate } from '../../../trainer/data/collate';
import { GPT2LoraModel } from '../../../trainer/models/gpt2/model';
import { BACKENDS, initBothBackends, lossOf, PAD, randomRows, specOf, tinySetup, useBackend } from './tiny';

describe('dropout', () => {
  before(initBothBackends);
  for (const backend of BACKENDS) {
    describe(backend, () => {
      before(() => useBackend(backend));
      const batch = collate(randomRows([6, 4, 5], 2).map((input_ids) => ({ input_ids, label: 1 })), PAD);

      it('with every rate 0, training equals eval', () => {
        const s = tinySetup('causal-lm');
        const model = GPT2LoraModel.create(specOf(s, { lora_dropout: 0 }));
        assert.equal(lossOf(model, batch, { training: true, seed: 1 }), lossOf(model, batch, { training: false }));
        model.dispose();
      });

      for (const which of ['embd_pdrop', 'attn_pdrop', 'resid_pdrop', 'lora_dropout'] as const) {
        it(`${which} > 0: same seed → same loss, other seed → other loss, eval ignores it`, () => {
          const s = tinySetup('seq-cls', which === 'lora_dropout' ? {} : { config: { [which]: 0.3 } });
          const model = GPT2LoraModel.create(specOf(s, { lora_dropout: which === 'lora_dropout' ? 0.3 : 0 }));
          const plain = GPT2LoraModel.create(specOf(tinySetup('seq-cls')));
          const evalLoss = lossOf(plain, batch, { training: false });
          const a = lossOf(model, batch, { training: true, seed: 42 });
          assert.equal(lossOf(model, batch, { training: true, seed: 42 }), a);
          assert.notEqual(lossOf(model, batch, { training: true, seed: 43 }), a);
          assert.notEqual(a, evalLoss);
          assert.equal(lossOf(model, batch, { training: false }), evalLoss);
          model.dispose();
          plain.dispose();
        });
      }
    });
  }
});
