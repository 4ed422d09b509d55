/**
 * The Llama family (models/llama/), first slice: config.json checks, the module table as named_modules() prints
 * it, weight shapes, PEFT's defaults, inspect's PEFT line and select over real-shaped configs, and that jobs which
 * load the model reach the folder loader (models/llama/folder.ts; tested in llama_folder.test.ts).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeJsonAtomic } from '../../../trainer/io/atomic';
import { LORA_DEFAULTS, type LoraConfig } from '../../../trainer/lora/config';
import { formatInspect, inspect } from '../../../trainer/commands/inspect';
import { selectModules } from '../../../trainer/commands/select';
import { LoraStudioError } from '../../../trainer/errors';
import { parseModelConfig, readRunnableModelConfig } from '../../../trainer/models/registry';
import { LLAMA_FAMILY } from '../../../trainer/models/llama/family';
import type { ModelConfig } from '../../../trainer/models/family';
import { QWEN25_05B, SMOLLM2_135M } from '../../util/llama_configs';
import { checkAdapterFitsModel } from '../../../trainer/lora/adapter_io';
import type { AdapterConfigJson } from '../../../trainer/lora/types';

const lora = (o: Partial<LoraConfig>): LoraConfig => ({ ...LORA_DEFAULTS, ...o });

/** A 2-layer Llama, untied, with every optional field a real config may carry. */
const TINY_LLAMA = {
  model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_size: 16, intermediate_size: 40, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 257, max_position_embeddings: 64, rms_norm_eps: 1e-6,
  rope_theta: 10000, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  hidden_act: 'silu', tie_word_embeddings: false, bos_token_id: 1, eos_token_id: [2, 3], pad_token_id: null, torch_dtype: 'float32',
  some_future_key: { kept: true },
};

const parse = (raw: object) => parseModelConfig(raw, '/m/config.json');
function refuses(raw: object, field: string, message: RegExp) {
  assert.throws(() => parse(raw), (e: unknown) => e instanceof LoraStudioError && e.file === '/m/config.json' && e.field === field && message.test(e.message));
}

describe('Llama family: config.json', () => {
  it('llama, qwen2, mistral find the family; unknown keys are kept; GQA and head_dim defaults', () => {
    const { family, config } = parse(TINY_LLAMA);
    assert.equal(family, LLAMA_FAMILY);
    assert.deepEqual(config.some_future_key, { kept: true });
    assert.equal(parse(QWEN25_05B).family, LLAMA_FAMILY);
    assert.equal(parse({ ...TINY_LLAMA, model_type: 'mistral', sliding_window: null, architectures: ['MistralForCausalLM'] }).family, LLAMA_FAMILY);
    // transformers v5's rope_parameters form, and the legacy `type` key
    parse({ ...TINY_LLAMA, rope_scaling: undefined, rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 500000 } });
    parse({ ...TINY_LLAMA, rope_scaling: { type: 'linear', factor: 2 } });
    assert.equal(LLAMA_FAMILY.eosTokenId(parse(TINY_LLAMA).config), 2);
  });

  it('refuses bad values with the JSON path, before building anything', () => {
    refuses({ ...TINY_LLAMA, hidden_act: 'gelu' }, 'hidden_act', /must be "silu"/);
    refuses({ ...TINY_LLAMA, num_key_value_heads: 3 }, 'num_key_value_heads', /must divide num_attention_heads \(4\)/);
    refuses({ ...TINY_LLAMA, hidden_size: 18 }, 'num_attention_heads', /divisible/);
    parse({ ...TINY_LLAMA, hidden_size: 18, head_dim: 4 }); // head_dim set: no divisibility needed
    refuses({ ...TINY_LLAMA, num_hidden_layers: 1e9 }, 'num_hidden_layers', /integer from 1 to 1024/);
    refuses({ ...TINY_LLAMA, rope_scaling: { rope_type: 'yarn', factor: 4 } }, 'rope_scaling.rope_type', /RoPE type "yarn" is not supported; supported: "default", "linear", "llama3"/);
    refuses({ ...TINY_LLAMA, rope_parameters: { rope_type: 'dynamic', factor: 4 } }, 'rope_parameters.rope_type', /not supported/);
    refuses({ ...TINY_LLAMA, rope_scaling: { rope_type: 'llama3', factor: 8 } }, 'rope_scaling.low_freq_factor', /required for rope_type "llama3"/);
    refuses({ ...TINY_LLAMA, rope_scaling: { type: 'linear' } }, 'rope_scaling.factor', /required/);
    refuses({ ...TINY_LLAMA, eos_token_id: [2, 'x'] }, 'eos_token_id', /token id/);
    refuses({ ...TINY_LLAMA, sliding_window: -1 }, 'sliding_window', /null or an integer/);
    refuses({ ...TINY_LLAMA, use_sliding_window: 'yes' }, 'use_sliding_window', /true or false/);
    refuses({ ...TINY_LLAMA, rope_theta: 'big' }, 'rope_theta', /number > 0/);
    refuses({ ...TINY_LLAMA, vocab_size: 1_000_000, hidden_size: 65536, num_attention_heads: 64, intermediate_size: 262144, num_hidden_layers: 1024 }, 'num_hidden_layers', /describes a model of/);
  });
});

describe('Llama family: module table and weights', () => {
  it('a 2-layer Llama: named_modules() exactly (transformers modeling_llama.py, 4.5x/v5 layout: rotary_emb on LlamaModel after norm)', () => {
    const { config } = parse(TINY_LLAMA);
    const table = LLAMA_FAMILY.namedModules(config, 'causal-lm', 2);
    const layer = (i: number): Array<[string, string]> => [
      [`model.layers.${i}`, 'LlamaDecoderLayer'],
      [`model.layers.${i}.self_attn`, 'LlamaAttention'],
      [`model.layers.${i}.self_attn.q_proj`, 'Linear'],
      [`model.layers.${i}.self_attn.k_proj`, 'Linear'],
      [`model.layers.${i}.self_attn.v_proj`, 'Linear'],
      [`model.layers.${i}.self_attn.o_proj`, 'Linear'],
      [`model.layers.${i}.mlp`, 'LlamaMLP'],
      [`model.layers.${i}.mlp.gate_proj`, 'Linear'],
      [`model.layers.${i}.mlp.up_proj`, 'Linear'],
      [`model.layers.${i}.mlp.down_proj`, 'Linear'],
      [`model.layers.${i}.mlp.act_fn`, 'SiLUActivation'],
      [`model.layers.${i}.input_layernorm`, 'LlamaRMSNorm'],
      [`model.layers.${i}.post_attention_layernorm`, 'LlamaRMSNorm'],
    ];
    assert.deepEqual(table.map((m) => [m.name, m.type]), [
      ['', 'LlamaForCausalLM'], ['model', 'LlamaModel'], ['model.embed_tokens', 'Embedding'], ['model.layers', 'ModuleList'],
      ...layer(0), ...layer(1),
      ['model.norm', 'LlamaRMSNorm'], ['model.rotary_emb', 'LlamaRotaryEmbedding'], ['lm_head', 'Linear'],
    ]);
    const by = new Map(table.map((m) => [m.name, m]));
    // head_dim 4, 2 KV heads: k/v are 16→8; no biases (attention_bias/mlp_bias false)
    assert.deepEqual(by.get('model.layers.0.self_attn.k_proj'), { name: 'model.layers.0.self_attn.k_proj', type: 'Linear', in_features: 16, out_features: 8, params: 128, weight_keys: ['model.layers.0.self_attn.k_proj.weight'] });
    assert.equal(by.get('model.layers.1.mlp.down_proj')?.in_features, 40);
    assert.equal(by.get('model.norm')?.params, 16);
    assert.deepEqual(by.get('lm_head'), { name: 'lm_head', type: 'Linear', in_features: 16, out_features: 257, params: 257 * 16, weight_keys: ['lm_head.weight'], is_head: true });
    // the table and the weight list agree key for key, parameter for parameter
    const shapes = LLAMA_FAMILY.weightShapes(config, 'causal-lm', 2);
    assert.deepEqual(table.flatMap((m) => m.weight_keys).sort(), [...shapes.keys()].sort());
    assert.equal(table.reduce((a, m) => a + m.params, 0), [...shapes.values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0));
    assert.deepEqual(shapes.get('model.layers.0.self_attn.q_proj.weight'), [16, 16]);
    assert.deepEqual(shapes.get('model.layers.0.mlp.down_proj.weight'), [16, 40]);
    assert.equal(LLAMA_FAMILY.isConv1D('model.layers.0.self_attn.q_proj'), false);
  });

  it('seq-cls: score (no bias) instead of lm_head; Qwen2 has q/k/v biases and Qwen2* classes; attention_bias/mlp_bias for llama; tied lm_head counts 0', () => {
    const cls = LLAMA_FAMILY.namedModules(parse({ ...TINY_LLAMA, architectures: ['LlamaForSequenceClassification'] }).config, 'seq-cls', 3);
    assert.equal(cls[0].type, 'LlamaForSequenceClassification');
    assert.deepEqual(cls.at(-1), { name: 'score', type: 'Linear', in_features: 16, out_features: 3, params: 48, weight_keys: ['score.weight'], is_head: true });
    assert.equal(LLAMA_FAMILY.taskFromConfig(parse({ ...TINY_LLAMA, architectures: ['LlamaForSequenceClassification'] }).config), 'seq-cls');

    const qwen = parse({ ...QWEN25_05B, num_hidden_layers: 1 }).config;
    const q = new Map(LLAMA_FAMILY.namedModules(qwen, 'causal-lm', 2).map((m) => [m.name, m]));
    assert.equal(q.get('')?.type, 'Qwen2ForCausalLM');
    assert.equal(q.get('model.rotary_emb')?.type, 'Qwen2RotaryEmbedding');
    assert.deepEqual(q.get('model.layers.0.self_attn.k_proj')?.weight_keys, ['model.layers.0.self_attn.k_proj.weight', 'model.layers.0.self_attn.k_proj.bias']);
    assert.deepEqual(q.get('model.layers.0.self_attn.o_proj')?.weight_keys, ['model.layers.0.self_attn.o_proj.weight']);
    assert.deepEqual(q.get('lm_head'), { name: 'lm_head', type: 'Linear', in_features: 896, out_features: 151936, params: 0, weight_keys: [], is_head: true, tied_to: 'model.embed_tokens' });
    assert.equal(LLAMA_FAMILY.weightShapes(qwen, 'causal-lm', 2).has('lm_head.weight'), false);

    const biased = new Map(LLAMA_FAMILY.namedModules(parse({ ...TINY_LLAMA, attention_bias: true, mlp_bias: true }).config, 'causal-lm', 2).map((m) => [m.name, m]));
    assert.equal(biased.get('model.layers.0.self_attn.o_proj')?.params, 16 * 16 + 16);
    assert.equal(biased.get('model.layers.0.mlp.up_proj')?.params, 16 * 40 + 40);

    const mistral = LLAMA_FAMILY.namedModules(parse({ ...TINY_LLAMA, model_type: 'mistral', attention_bias: true }).config, 'causal-lm', 2);
    assert.equal(mistral[4].type, 'MistralDecoderLayer');
    assert.equal(mistral.find((m) => m.name.endsWith('q_proj'))?.weight_keys.length, 1, 'MistralAttention has no biases');
  });
});

describe('Llama family: inspect, select, and the PEFT line from config.json alone', () => {
  let tmp = '';
  const dir = (name: string, config: object) => {
    const d = path.join(tmp, name);
    fs.mkdirSync(d);
    writeJsonAtomic(path.join(d, 'config.json'), config);
    return d;
  };
  before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-llama-')); });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('SmolLM2-135M, q_proj,v_proj r=8: PEFT\'s line; PEFT\'s default targets are q_proj, v_proj', () => {
    const d = dir('smollm2', SMOLLM2_135M);
    const r = inspect({ modelDir: d, lora: lora({ target_modules: ['q_proj', 'v_proj'], r: 8 }) });
    assert.equal(r.line, 'trainable params: 460,800 || all params: 134,975,808 || trainable%: 0.3414');
    assert.equal(r.fan_in_fan_out, false);
    assert.deepEqual(r.warnings, []);
    const byDefault = inspect({ modelDir: d, lora: lora({ target_modules: null, r: 8 }) });
    assert.equal(byDefault.line, r.line);
    assert.match(formatInspect(r), /input_layernorm {2}LlamaRMSNorm {2}\[576\] {2}576/);
  });

  it('Qwen2.5-0.5B: all params = the shapes summed by hand = 494,032,768 (the published count)', () => {
    const H = 896, L = 24, V = 151936, I = 4864, KV = 2 * 64;
    const perLayer = (H * H + H) + (H * KV + KV) + (H * KV + KV) + H * H + 2 * H * I + I * H + 2 * H;
    const expected = V * H + L * perLayer + H;
    assert.equal(expected, 494_032_768);
    const r = inspect({ modelDir: dir('qwen', QWEN25_05B), lora: lora({ target_modules: ['q_proj', 'v_proj'], r: 8 }) });
    // LoRA: per layer q 8·(896+896) + v 8·(896+128)
    assert.equal(r.all_params, expected + L * (8 * (H + H) + 8 * (H + KV)));
    assert.equal(r.trainable_params, L * (8 * (H + H) + 8 * (H + KV)));
  });

  it('select (the Modules view): ["q_proj","v_proj"], all-linear without lm_head, null = PEFT default', () => {
    const d = dir('tiny', TINY_LLAMA);
    const qv = ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj'];
    assert.deepEqual(selectModules({ modelDir: d, target_modules: ['q_proj', 'v_proj'] }).selected, qv);
    assert.deepEqual(selectModules({ modelDir: d, target_modules: null }).selected, qv);
    const all = selectModules({ modelDir: d, target_modules: 'all-linear' }).selected;
    assert.equal(all.length, 14);
    assert.ok(!all.includes('lm_head'));
    assert.ok(all.includes('model.layers.1.mlp.down_proj'));
    const r = inspect({ modelDir: d, lora: lora({ target_modules: 'all-linear' }) });
    assert.equal(r.targets.length, 14);
    assert.ok(r.modules.some((m) => m.name === 'model.layers.0.self_attn.q_proj' && m.lora));
  });

  it('jobs that load the model are no longer refused: the folder loader runs (and names what is missing)', () => {
    const d = dir('runnable', { ...TINY_LLAMA, model_type: 'qwen2' });
    assert.equal(readRunnableModelConfig(d).family, LLAMA_FAMILY);
    assert.throws(() => LLAMA_FAMILY.load(d), (e: unknown) => e instanceof LoraStudioError && e.file === d && /no weights/.test(e.message));
    const config = parse({ ...TINY_LLAMA, model_type: 'qwen2' }).config as ModelConfig;
    assert.deepEqual(LLAMA_FAMILY.configForTask(config, 'causal-lm', 2, []).architectures, ['Qwen2ForCausalLM']);
  });
});

describe('Llama family: LoRA on lm_head', () => {
  const fits = (config: Record<string, unknown>, modules: string[]) => {
    const c = LLAMA_FAMILY.parseConfig({ ...SMOLLM2_135M, num_hidden_layers: 2, ...config }, 'config.json');
    const shapes = LLAMA_FAMILY.weightShapes(c, 'causal-lm', 2);
    const lora = new Map(modules.map((m) => {
      const [out, inF] = m === 'lm_head' ? [c.vocab_size as number, c.hidden_size as number] : shapes.get(`${m}.weight`)!;
      return [m, { A: { shape: [8, inF], data: new Float32Array(0), dtype: 'F32' as const }, B: { shape: [out, 8], data: new Float32Array(0), dtype: 'F32' as const } }];
    }));
    checkAdapterFitsModel({ config: {} as AdapterConfigJson, lora, extra: new Map() }, '/a/adapter_model.safetensors', LLAMA_FAMILY.adapterFacts(c), shapes);
  };

  it('an untied lm_head takes an adapter\'s LoRA; a tied one is refused with the reason, not as "another architecture"', () => {
    assert.doesNotThrow(() => fits({ tie_word_embeddings: false }, ['lm_head', 'model.layers.0.self_attn.q_proj']));
    assert.throws(() => fits({ tie_word_embeddings: true }, ['lm_head']), (e: unknown) =>
      e instanceof LoraStudioError && e.file === '/a/adapter_model.safetensors' && e.field === 'base_model.model.lm_head.lora_A.weight' &&
      /tied to model\.embed_tokens/.test(e.message) && !/another architecture/.test(e.message));
    assert.throws(() => fits({}, ['model.layers.0.input_layernorm']), (e: unknown) => e instanceof LoraStudioError && /only the Linear layers/.test(e.message));
  });
});
