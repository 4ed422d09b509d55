/**
 * PEFT's print_trainable_parameters line and the counts behind it, on GPT-2 small's real config.
 * Reference figures: PEFT prints `trainable params: 294,912 || all params: 124,734,720 || trainable%: 0.2364`
 * for gpt2 with LoraConfig(r=8, target_modules=["c_attn"]); the others are derived by hand in the comments.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LORA_DEFAULTS, type LoraConfig } from '../../../trainer/lora/config';
import type { Task } from '../../../trainer/task';
import { parseConfig } from '../../../trainer/models/gpt2/config';
import { namedModules } from '../../../trainer/models/gpt2/modules';
import { resolveTargets } from '../../../trainer/lora/targets';
import { countParams, formatFixed4, peftLine, thousands } from '../../../trainer/lora/peft_line';

/** GPT-2 small's config.json (openai-community/gpt2). */
const GPT2_SMALL = parseConfig({
  activation_function: 'gelu_new', architectures: ['GPT2LMHeadModel'], attn_pdrop: 0.1, bos_token_id: 50256,
  embd_pdrop: 0.1, eos_token_id: 50256, initializer_range: 0.02, layer_norm_epsilon: 1e-5, model_type: 'gpt2',
  n_ctx: 1024, n_embd: 768, n_head: 12, n_layer: 12, n_positions: 1024, resid_pdrop: 0.1, vocab_size: 50257,
}, 'config.json');
const BASE = 124_439_808;

function count(task: Task, o: Partial<LoraConfig>, num_labels = 2) {
  const mods = namedModules(GPT2_SMALL, task, num_labels);
  const l: LoraConfig = { ...LORA_DEFAULTS, fan_in_fan_out: true, ...o };
  const r = resolveTargets(mods, l, task);
  return countParams(mods, r.targets, r.modules_to_save, l.bias);
}

describe('countParams / PEFT line', () => {
  it('gpt2 causal-lm, c_attn, r=8: exactly PEFT\'s line', () => {
    const c = count('causal-lm', { target_modules: ['c_attn'], r: 8 });
    assert.equal(c.line, 'trainable params: 294,912 || all params: 124,734,720 || trainable%: 0.2364');
    assert.equal(c.trainable_params, 12 * 8 * (768 + 2304));
    assert.equal(c.all_params, BASE + 294_912);
  });

  it('gpt2 seq-cls, 2 labels: score is trained through a copy, and PEFT counts original + copy', () => {
    const c = count('seq-cls', { target_modules: ['c_attn'], r: 8 });
    // trainable: 294,912 LoRA + 1,536 score copy; all: base + score original 1,536 + LoRA + copy 1,536
    assert.equal(c.trainable_params, 296_448);
    assert.equal(c.all_params, 124_737_792);
    assert.equal(c.line, 'trainable params: 296,448 || all params: 124,737,792 || trainable%: 0.2377');
  });

  it('c_attn + c_proj (36 targets, as the causal fixture): LoRA adds 8*(768+2304)*12 + 8*(768+768)*12 + 8*(3072+768)*12', () => {
    const c = count('causal-lm', { target_modules: ['c_attn', 'c_proj'], r: 8 });
    const lora = 8 * (768 + 2304) * 12 + 8 * (768 + 768) * 12 + 8 * (3072 + 768) * 12;
    assert.equal(c.trainable_params, lora);
    assert.equal(c.all_params, BASE + lora);
  });

  it('bias="all" unfreezes every base bias (LayerNorm ones too); bias="lora_only" only the targets\'', () => {
    const all = count('causal-lm', { target_modules: ['c_attn'], bias: 'all' });
    // per layer: ln_1 768 + c_attn 2304 + attn.c_proj 768 + ln_2 768 + c_fc 3072 + mlp.c_proj 768; plus ln_f 768
    const biases = 12 * (768 + 2304 + 768 + 768 + 3072 + 768) + 768;
    assert.equal(all.trainable_params, 294_912 + biases);
    assert.equal(all.all_params, BASE + 294_912);
    const only = count('causal-lm', { target_modules: ['c_attn'], bias: 'lora_only' });
    assert.equal(only.trainable_params, 294_912 + 12 * 2304);
  });

  it('a tied lm_head in modules_to_save gets a full untied copy', () => {
    const c = count('causal-lm', { target_modules: ['c_attn'], modules_to_save: ['lm_head'] });
    assert.equal(c.trainable_params, 294_912 + 50257 * 768);
    assert.equal(c.all_params, BASE + 294_912 + 50257 * 768);
  });

  it('formats like Python: {:,d} and {:.4f} (ties to even)', () => {
    assert.equal(thousands(0), '0');
    assert.equal(thousands(999), '999');
    assert.equal(thousands(1000), '1,000');
    assert.equal(thousands(124734720), '124,734,720');
    assert.equal(formatFixed4(0.23643), '0.2364');
    assert.equal(formatFixed4(0.03125), '0.0312'); // '%.4f' % 0.03125 == '0.0312'
    assert.equal(formatFixed4(0.09375), '0.0938'); // '%.4f' % 0.09375 == '0.0938'
    assert.equal(formatFixed4(100), '100.0000');
    assert.equal(peftLine(1, 32 * 100), 'trainable params: 1 || all params: 3,200 || trainable%: 0.0312');
  });
});
