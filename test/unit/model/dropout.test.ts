/**
 * Training-mode dropout (embd/attn/resid pdrop and lora_dropout): off when every rate is 0, reproducible for a
 * seed, different for another seed, and never applied in eval mode. Both backends.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { collate } from '../../../trainer/data/collate';
import { GPT2LoraModel } from '../../../trainer/models/gpt2/model';
import * as tf from '@tensorflow/tfjs-core';
import { DropoutStream, dropoutMask } from '../../../trainer/ops/layers';
import { deviceMasks, keepThreshold } from '../../../trainer/ops/dropout_kernel';
import { lossOf, onEachBackend, PAD, randomRows, specOf, tinySetup, useBackend } from './tiny';

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

describe('keepThreshold', () => {
  it("is the host's `u / 2³² >= rate` as an integer test, at the edges", () => {
    for (const rate of [0.05, 0.1, 0.3, 1 / 3, 0.5, 0.9]) {
      const t = keepThreshold(rate);
      assert.ok(t / 2 ** 32 >= rate && (t - 1) / 2 ** 32 < rate, `rate ${rate}: threshold ${t}`);
    }
  });
});

describe('dropout masks where the tensors live', () => {
  /** a full [rows·4, 7] mask and its picked view, plus one large row pair, from seed 77 / 9 */
  const masks = async (rate: number) => {
    const stream = new DropoutStream(true, 77, 3, 5);
    const full = stream.multiplier([3 * 4, 7], rate)!;
    // a fresh stream with the same seed: its first site is `full`'s
    const picked = new DropoutStream(true, 77, 3, 5).atPositions(Int32Array.from([3, 0, 2]), 4).multiplier([3, 7], rate)!;
    const big = new DropoutStream(true, 9, 2).multiplier([2, 50_000], rate)!;
    const out = await Promise.all([full, picked, big].map((t) => t.data()));
    tf.dispose([full, picked, big]);
    return out.map((d) => Array.from(d));
  };
  onEachBackend((backend) => {
    // webgpu makes them in a shader (ops/dropout_kernel.ts), cpu and wasm on the host. They must be the host's
    // streams bit for bit, full rows and picked positions alike, or a GPU run would train another model.
    it(`${backend === 'webgpu' ? 'the WGSL kernel' : 'the host path'} gives the host's multipliers exactly`, async () => {
      assert.equal(deviceMasks(), backend === 'webgpu');
      for (const rate of [0.1, 1 / 3]) {
        const got = await masks(rate);
        await useBackend('cpu');
        const want = await masks(rate);
        await useBackend(backend);
        assert.deepEqual(got[0], want[0], `full mask, rate ${rate}`);
        assert.deepEqual(got[1], want[1], `picked mask, rate ${rate}`);
        assert.deepEqual(got[2], want[2], `large mask, rate ${rate}`);
        const dropped = got[2].filter((v) => v === 0).length / got[2].length;
        assert.ok(Math.abs(dropped - rate) < 0.01, `rate ${rate}: dropped ${dropped}`);
        // picked row b is row b's mask at position positions[b]
        [3, 0, 2].forEach((pos, b) => assert.deepEqual(got[1].slice(b * 7, b * 7 + 7), got[0].slice((b * 4 + pos) * 7, (b * 4 + pos) * 7 + 7)));
      }
    });
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
