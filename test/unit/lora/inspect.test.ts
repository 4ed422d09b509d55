/**
 * `inspect` over a model folder holding only config.json: task/num_labels defaults from the config,
 * the annotated module table, JSON-serialisability, and the readable tree with PEFT's line.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeJsonAtomic } from '../../../trainer/io/atomic';
import { LORA_DEFAULTS, type LoraConfig } from '../../../trainer/lora/config';
import { formatInspect, inspect } from '../../../trainer/commands/inspect';
import { LoraStudioError } from '../../../trainer/errors';

const GPT2_SMALL_CONFIG = {
  activation_function: 'gelu_new', architectures: ['GPT2LMHeadModel'], attn_pdrop: 0.1, bos_token_id: 50256,
  embd_pdrop: 0.1, eos_token_id: 50256, initializer_range: 0.02, layer_norm_epsilon: 1e-5, model_type: 'gpt2',
  n_ctx: 1024, n_embd: 768, n_head: 12, n_layer: 12, n_positions: 1024, resid_pdrop: 0.1, vocab_size: 50257,
};
const lora = (o: Partial<LoraConfig>): LoraConfig => ({ ...LORA_DEFAULTS, fan_in_fan_out: true, ...o });

describe('inspect', () => {
  let tmp = '';
  let causalDir = '';
  let clsDir = '';
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-'));
    causalDir = path.join(tmp, 'gpt2');
    clsDir = path.join(tmp, 'gpt2-cls');
    fs.mkdirSync(causalDir);
    fs.mkdirSync(clsDir);
    writeJsonAtomic(path.join(causalDir, 'config.json'), GPT2_SMALL_CONFIG);
    writeJsonAtomic(path.join(clsDir, 'config.json'), {
      ...GPT2_SMALL_CONFIG, architectures: ['GPT2ForSequenceClassification'], id2label: { 0: 'neg', 1: 'neu', 2: 'pos' }, label2id: { neg: 0, neu: 1, pos: 2 },
    });
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('GPT-2 small, c_attn r=8 α=16: targets marked, PEFT line, JSON round trip', () => {
    const r = inspect({ modelDir: causalDir, lora: lora({ target_modules: ['c_attn'], lora_alpha: 16 }) });
    assert.equal(r.task, 'causal-lm');
    assert.equal(r.model_type, 'gpt2');
    assert.equal(r.model_dir, path.resolve(causalDir));
    assert.equal(r.line, 'trainable params: 294,912 || all params: 124,734,720 || trainable%: 0.2364');
    assert.equal(r.targets.length, 12);
    const marked = r.modules.filter((m) => m.lora);
    assert.deepEqual(marked.map((m) => m.name), r.targets.map((t) => t.name));
    assert.deepEqual(marked[0].lora, { r: 8, lora_alpha: 16, scaling: 2 });
    assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
  });

  it('seq-cls from config.architectures, num_labels from id2label, score in modules_to_save', () => {
    const r = inspect({ modelDir: clsDir, lora: lora({ target_modules: ['c_attn'] }) });
    assert.equal(r.task, 'seq-cls');
    assert.equal(r.num_labels, 3);
    assert.deepEqual(r.modules_to_save, ['score']);
    const score = r.modules.find((m) => m.name === 'score');
    assert.equal(score?.modules_to_save, true);
    assert.equal(score?.out_features, 3);
    // trainable: 294,912 + 3*768; all: 124,439,808 + 2,304 (score) + 294,912 + 2,304 (copy)
    assert.equal(r.trainable_params, 294_912 + 2304);
    assert.equal(r.all_params, 124_439_808 + 2304 + 294_912 + 2304);
    // explicit options win over the config
    const c = inspect({ modelDir: clsDir, task: 'seq-cls', num_labels: 2, lora: lora({ target_modules: ['c_attn'] }) });
    assert.equal(c.num_labels, 2);
  });

  it('formatInspect shows the tree by dotted path, the marks, and ends with the PEFT line', () => {
    const r = inspect({ modelDir: clsDir, lora: lora({ target_modules: ['c_attn'], lora_alpha: 16 }) });
    const text = formatInspect(r);
    const lines = text.split('\n');
    assert.equal(lines[lines.length - 1], r.line);
    const cAttn = lines.find((l) => /^\s+c_attn\s/.test(l));
    assert.ok(cAttn, text.slice(0, 2000));
    assert.match(cAttn, /^ {10}c_attn {2}Conv1D {2}768→2304 {2}1,771,776 {2}◆ LoRA r=8 α=16$/);
    for (const name of ['transformer', 'wte', 'h', 'attn', 'mlp', 'ln_f', 'score']) {
      assert.ok(lines.some((l) => l.trim().startsWith(`${name} `)), name);
    }
    assert.match(lines.find((l) => l.trim().startsWith('score ')) ?? '', /modules_to_save/);
    assert.match(text, /^ {6}0 {2}GPT2Block$/m);
  });

  it('bad input: missing config.json, unmatched target_modules', () => {
    assert.throws(() => inspect({ modelDir: path.join(tmp, 'nope'), lora: lora({ target_modules: ['c_attn'] }) }), LoraStudioError);
    assert.throws(
      () => inspect({ modelDir: causalDir, lora: lora({ target_modules: ['q_proj'] }), loraFile: 'run.json' }),
      (e: unknown) => e instanceof LoraStudioError && e.field === 'target_modules' && e.file === 'run.json',
    );
  });
});
