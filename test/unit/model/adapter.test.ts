/**
 * The trained parameters in PEFT's layout: exportAdapter → create(spec with adapter) / loadAdapter reproduce
 * the same logits; exported shapes are PEFT's (A [r, in], B [out, r], score [num_labels, C]); PEFT's init modes;
 * modules_to_save and bias modes decide what is trainable; bad adapters are errors naming the tensor.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { collate } from '../../../trainer/data/collate';
import { GPT2LoraModel } from '../../../trainer/models/gpt2/model';
import { LoraStudioError } from '../../../trainer/errors';
import { refSeqClsLogits } from '../../reference/gpt2_f64';
import { adapterConfig, onEachBackend, PAD, randomRows, refOf, relErr, specOf, tinySetup } from './tiny';

const rows = randomRows([5, 2, 7], 21);
const batch = collate(rows.map((input_ids) => ({ input_ids, label: 0 })), PAD);

async function logitsOf(m: GPT2LoraModel): Promise<Float32Array> {
  const t = m.logits(batch, { training: false });
  const d = (await t.data()) as Float32Array;
  t.dispose();
  return d;
}

describe('adapter export / import', () => {
  onEachBackend(() => {
    it('exportAdapter → create(spec with adapter) and loadAdapter give the same logits; PEFT layout', async () => {
      const s = tinySetup('seq-cls', { num_labels: 3 });
      const first = GPT2LoraModel.create(specOf(s, { adapter: undefined, init_lora_weights: false, bias: 'all', seed: 5 }));
      const exported = await first.exportAdapter(adapterConfig('seq-cls'));
      assert.deepEqual([...exported.lora.keys()], s.targets.map((t) => t.name));
      const ca = exported.lora.get('transformer.h.0.attn.c_attn')!;
      assert.deepEqual(ca.A.shape, [4, 16]);
      assert.deepEqual(ca.B.shape, [48, 4]);
      assert.deepEqual(exported.extra.get('score.weight')!.shape, [3, 16]);
      assert.deepEqual(exported.extra.get('transformer.h.1.mlp.c_fc.bias')!.shape, [64]);
      assert.ok(exported.extra.has('transformer.ln_f.bias'), "bias='all' trains LayerNorm biases too, as PEFT does");
      assert.ok(!exported.extra.has('transformer.ln_f.weight'));
      // the exported values, read in PEFT's layout by the reference, give the model's logits
      const ref = refOf(s, exported);
      const want = rows.map((ids) => [...refSeqClsLogits(ref, ids)]).flat();
      const base = await logitsOf(first);
      assert.ok(relErr(base, want) < 1e-4, `${relErr(base, want)}`);

      const second = GPT2LoraModel.create(specOf(s, { adapter: exported, bias: 'all' }));
      assert.ok(relErr(await logitsOf(second), base) < 1e-6);
      const third = GPT2LoraModel.create(specOf(s, { adapter: undefined, init_lora_weights: true, bias: 'all', seed: 99 }));
      assert.ok(relErr(await logitsOf(third), base) > 1e-3);
      third.loadAdapter(exported);
      assert.ok(relErr(await logitsOf(third), base) < 1e-6);
      for (const m of [first, second, third]) m.dispose();
    });

    it('init_lora_weights true leaves the base model unchanged; seeds decide A', async () => {
      const s = tinySetup('causal-lm');
      const plain = GPT2LoraModel.create(specOf(s, { adapter: undefined, targets: [] }));
      const a = GPT2LoraModel.create(specOf(s, { adapter: undefined, init_lora_weights: true, seed: 1 }));
      const b = GPT2LoraModel.create(specOf(s, { adapter: undefined, init_lora_weights: 'gaussian', seed: 1 }));
      assert.deepEqual(await logitsOf(a), await logitsOf(plain));
      assert.deepEqual(await logitsOf(b), await logitsOf(plain));
      const A = (await a.exportAdapter(adapterConfig('causal-lm'))).lora.get('transformer.h.0.mlp.c_proj')!;
      assert.ok(A.B.data.every((v) => v === 0));
      assert.ok(A.A.data.some((v) => v !== 0) && A.A.data.every((v) => Math.abs(v) <= 1 / Math.sqrt(64)), 'kaiming-uniform bound 1/sqrt(in_features)');
      const again = GPT2LoraModel.create(specOf(s, { adapter: undefined, init_lora_weights: true, seed: 1 }));
      const other = GPT2LoraModel.create(specOf(s, { adapter: undefined, init_lora_weights: true, seed: 2 }));
      const key = 'transformer.h.1.attn.c_attn.lora_A.weight';
      assert.deepEqual((await again.trainable.get(key)!.data()), (await a.trainable.get(key)!.data()));
      assert.notDeepEqual((await other.trainable.get(key)!.data()), (await a.trainable.get(key)!.data()));
      for (const m of [plain, a, b, again, other]) m.dispose();
    });
  });

  it('trainable set follows modules_to_save and bias', async () => {
    const s = tinySetup('causal-lm');
    const keys = (over: Parameters<typeof specOf>[1]) => {
      const m = GPT2LoraModel.create(specOf(s, over));
      const k = [...m.trainable.keys()].filter((x) => !/lora_[AB]/.test(x));
      m.dispose();
      return k.sort();
    };
    assert.deepEqual(keys({}), []);
    assert.deepEqual(keys({ bias: 'lora_only' }), s.targets.map((t) => `${t.name}.bias`).sort());
    assert.deepEqual(keys({ modules_to_save: ['ln_f'] }), ['transformer.ln_f.bias', 'transformer.ln_f.weight']);
    assert.throws(() => GPT2LoraModel.create(specOf(s, { modules_to_save: ['wte'] })), (e: unknown) => e instanceof LoraStudioError && e.field === 'modules_to_save');
  });

  it('rejects adapters that do not fit, naming the tensor', async () => {
    const s = tinySetup('causal-lm');
    const bad = { ...s.adapter, lora: new Map(s.adapter.lora) };
    const f = bad.lora.get('transformer.h.0.attn.c_proj')!;
    bad.lora.set('transformer.h.0.attn.c_proj', { A: { ...f.A, shape: [1, 32] }, B: f.B });
    assert.throws(() => GPT2LoraModel.create(specOf(s, { adapter: bad })), (e: unknown) => e instanceof LoraStudioError && e.field === 'transformer.h.0.attn.c_proj.lora_A.weight');
    const missing = { ...s.adapter, lora: new Map(s.adapter.lora) };
    missing.lora.delete('transformer.h.1.mlp.c_fc');
    assert.throws(() => GPT2LoraModel.create(specOf(s, { adapter: missing })), /no lora_A\/lora_B for target transformer\.h\.1\.mlp\.c_fc/);
    const extra = { ...s.adapter, extra: new Map([['transformer.h.0.attn.c_atn.bias', { shape: [48], data: new Float32Array(48), dtype: 'F32' as const }]]) };
    assert.throws(() => GPT2LoraModel.create(specOf(s, { adapter: extra })), /did you mean transformer\.h\.0\.attn\.c_attn\.bias/);
    const model = GPT2LoraModel.create(specOf(s));
    const n = tf.memory().numTensors;
    assert.throws(() => model.loadAdapter(bad), /expected \[2, 16\]/);
    assert.equal(tf.memory().numTensors, n);
    model.dispose();
  });
});
