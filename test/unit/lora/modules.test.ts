/**
 * The module table: names, order and class names as PyTorch's named_modules() prints them for
 * transformers' GPT2LMHeadModel / GPT2ForSequenceClassification, and parameter counts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../../trainer/models/gpt2/config';
import { namedModules, totalParams } from '../../../trainer/models/gpt2/modules';
import { gpt2WeightShapes } from '../../../trainer/models/gpt2/weights';

/** GPT-2 small's config.json as the Hub ships it (openai-community/gpt2). */
const GPT2_SMALL = parseConfig({
  activation_function: 'gelu_new', architectures: ['GPT2LMHeadModel'], attn_pdrop: 0.1, bos_token_id: 50256,
  embd_pdrop: 0.1, eos_token_id: 50256, initializer_range: 0.02, layer_norm_epsilon: 1e-5, model_type: 'gpt2',
  n_ctx: 1024, n_embd: 768, n_head: 12, n_layer: 12, n_positions: 1024, resid_pdrop: 0.1,
  summary_activation: null, summary_first_dropout: 0.1, summary_proj_to_labels: true, summary_type: 'cls_index',
  summary_use_proj: true, task_specific_params: { 'text-generation': { do_sample: true, max_length: 50 } }, vocab_size: 50257,
}, 'config.json');

const TWO_LAYER = parseConfig({ model_type: 'gpt2', vocab_size: 100, n_positions: 16, n_embd: 8, n_layer: 2, n_head: 2 }, 'config.json');

/** Block i's modules, written out by hand from modeling_gpt2.py's __init__ registration order. */
const block = (i: number, act = 'NewGELUActivation'): Array<[string, string]> => [
  [`transformer.h.${i}`, 'GPT2Block'],
  [`transformer.h.${i}.ln_1`, 'LayerNorm'],
  [`transformer.h.${i}.attn`, 'GPT2Attention'],
  [`transformer.h.${i}.attn.c_attn`, 'Conv1D'],
  [`transformer.h.${i}.attn.c_proj`, 'Conv1D'],
  [`transformer.h.${i}.attn.attn_dropout`, 'Dropout'],
  [`transformer.h.${i}.attn.resid_dropout`, 'Dropout'],
  [`transformer.h.${i}.ln_2`, 'LayerNorm'],
  [`transformer.h.${i}.mlp`, 'GPT2MLP'],
  [`transformer.h.${i}.mlp.c_fc`, 'Conv1D'],
  [`transformer.h.${i}.mlp.c_proj`, 'Conv1D'],
  [`transformer.h.${i}.mlp.act`, act],
  [`transformer.h.${i}.mlp.dropout`, 'Dropout'],
];

describe('namedModules', () => {
  it('lists a 2-layer GPT2LMHeadModel in named_modules() order with PyTorch class names', () => {
    const got = namedModules(TWO_LAYER, 'causal-lm', 2).map((m) => [m.name, m.type]);
    const want: Array<[string, string]> = [
      ['', 'GPT2LMHeadModel'],
      ['transformer', 'GPT2Model'],
      ['transformer.wte', 'Embedding'],
      ['transformer.wpe', 'Embedding'],
      ['transformer.drop', 'Dropout'],
      ['transformer.h', 'ModuleList'],
      ...block(0),
      ...block(1),
      ['transformer.ln_f', 'LayerNorm'],
      ['lm_head', 'Linear'],
    ];
    assert.deepEqual(got, want);
  });

  it('ends with score for GPT2ForSequenceClassification', () => {
    const mods = namedModules(TWO_LAYER, 'seq-cls', 3);
    assert.equal(mods[0].type, 'GPT2ForSequenceClassification');
    const last = mods[mods.length - 1];
    assert.deepEqual(last, { name: 'score', type: 'Linear', in_features: 8, out_features: 3, params: 24, weight_keys: ['score.weight'], is_head: true });
    assert.ok(!mods.some((m) => m.name === 'lm_head'));
  });

  it('names the activation class after activation_function', () => {
    for (const [fn, cls] of [['gelu_new', 'NewGELUActivation'], ['gelu', 'GELUActivation'], ['relu', 'ReLU'], ['gelu_pytorch_tanh', 'GELUTanh']]) {
      const c = parseConfig({ ...TWO_LAYER, activation_function: fn }, 'config.json');
      assert.equal(namedModules(c, 'causal-lm', 2).find((m) => m.name === 'transformer.h.1.mlp.act')?.type, cls);
    }
  });

  it('gives Conv1D nx→nf, Embedding num×dim, LayerNorm dim, and n_inner when set', () => {
    const c = parseConfig({ ...TWO_LAYER, n_inner: 20 }, 'config.json');
    const by = new Map(namedModules(c, 'causal-lm', 2).map((m) => [m.name, m]));
    const io = (n: string) => [by.get(n)?.in_features, by.get(n)?.out_features];
    assert.deepEqual(io('transformer.h.0.attn.c_attn'), [8, 24]);
    assert.deepEqual(io('transformer.h.0.attn.c_proj'), [8, 8]);
    assert.deepEqual(io('transformer.h.0.mlp.c_fc'), [8, 20]);
    assert.deepEqual(io('transformer.h.0.mlp.c_proj'), [20, 8]);
    assert.deepEqual(io('transformer.wte'), [100, 8]);
    assert.deepEqual(io('transformer.wpe'), [16, 8]);
    assert.deepEqual(io('transformer.ln_f'), [8, 8]);
    assert.deepEqual(io('lm_head'), [8, 100]);
    assert.equal(by.get('lm_head')?.tied_to, 'transformer.wte');
    assert.equal(by.get('lm_head')?.params, 0);
    assert.deepEqual(by.get('transformer.h.1.attn.c_attn')?.weight_keys, ['transformer.h.1.attn.c_attn.weight', 'transformer.h.1.attn.c_attn.bias']);
  });

  for (const task of ['causal-lm', 'seq-cls'] as const) {
    it(`owns exactly the checkpoint's weights, and the counts sum to the model total (${task})`, () => {
      const c = parseConfig({ ...TWO_LAYER, n_inner: 20 }, 'config.json');
      const mods = namedModules(c, task, 5);
      const shapes = gpt2WeightShapes(c, task, 5);
      const keys = mods.flatMap((m) => m.weight_keys);
      assert.deepEqual([...keys].sort(), [...shapes.keys()].sort());
      let fromShapes = 0;
      for (const s of shapes.values()) fromShapes += s.reduce((a, b) => a * b, 1);
      assert.equal(totalParams(mods), fromShapes);
      for (const m of mods) {
        const own = m.weight_keys.reduce((a, k) => a + (shapes.get(k) ?? []).reduce((x, y) => x * y, 1), 0);
        assert.equal(m.params, own, m.name);
      }
    });
  }

  it('counts GPT-2 small at 124,439,808 parameters (the published figure, lm_head tied)', () => {
    const mods = namedModules(GPT2_SMALL, 'causal-lm', 2);
    assert.equal(totalParams(mods), 124_439_808);
    assert.equal(mods.length, 6 + 12 * 13 + 2);
    // seq-cls adds score [num_labels, 768] and no lm_head
    assert.equal(totalParams(namedModules(GPT2_SMALL, 'seq-cls', 2)), 124_439_808 + 2 * 768);
  });

  it('builds GPT-2 XL (48 layers) instantly', () => {
    const xl = parseConfig({ model_type: 'gpt2', n_embd: 1600, n_layer: 48, n_head: 25 }, 'config.json');
    const mods = namedModules(xl, 'causal-lm', 2);
    assert.equal(mods.length, 6 + 48 * 13 + 2);
    assert.equal(totalParams(mods), 1_557_611_200); // GPT-2 XL's published 1.5B (tied head)
  });
});
