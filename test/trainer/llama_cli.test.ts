/**
 * The Llama family through the real `lora-studio` CLI (issue 13, first slice): inspect prints PEFT's line for
 * SmolLM2-135M from config.json alone, --json carries the module table the Modules view renders, and every job
 * that would load a Llama folder (train, eval, merge, generate, classify, analyze --base) exits 1 with one error
 * naming config.json and model_type, and no stack trace. Real processes: run `npm run build` first.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runCli, scratch, tinyRun, writeJsonl, writeRandomAdapter, type CliResult, type TinyRun } from './helpers';
import { byteLevelTokenizerJson } from '../../trainer/tokenizer/byte_level';
import { SMOLLM2_135M } from '../util/llama_configs';

const TINY_LLAMA = {
  model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_size: 16, intermediate_size: 40, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 257, max_position_embeddings: 64, rms_norm_eps: 1e-6,
  rope_theta: 10000, hidden_act: 'silu', tie_word_embeddings: true, bos_token_id: 256, eos_token_id: 256,
};

const NOT_IMPLEMENTED = 'llama models can be inspected and their LoRA targets picked, but training/evaluating/merging them is not implemented yet; GPT-2 (model_type "gpt2") is';
const JS_FRAME = /^\s+at .*\.[cm]?[jt]s:\d+:\d+\)?$/m;

function assertRefused(res: CliResult, configFile: string): void {
  const what = `exit ${res.code}; stderr: ${res.stderr}`;
  assert.equal(res.code, 1, what);
  const errors = res.stderr.split('\n').filter((l) => l.startsWith('lora-studio: error: '));
  assert.deepEqual(errors, [`lora-studio: error: ${configFile}: model_type: ${NOT_IMPLEMENTED}`], what);
  assert.doesNotMatch(res.stderr, JS_FRAME, 'no stack trace');
  assert.doesNotMatch(res.stderr, /internal error|TypeError|RangeError/);
}

describe('Llama-family folders through the CLI (real processes)', () => {
  let work: string;
  let smol: string;
  let tiny: string;
  let gpt2: TinyRun;

  before(() => {
    work = scratch('lora-llama-cli-');
    smol = path.join(work, 'smollm2');
    tiny = path.join(work, 'tiny-llama');
    fs.mkdirSync(smol);
    fs.mkdirSync(tiny);
    fs.writeFileSync(path.join(smol, 'config.json'), JSON.stringify(SMOLLM2_135M, null, 2));
    fs.writeFileSync(path.join(tiny, 'config.json'), JSON.stringify(TINY_LLAMA, null, 2));
    fs.writeFileSync(path.join(tiny, 'tokenizer.json'), JSON.stringify(byteLevelTokenizerJson()));
    gpt2 = tinyRun({ task: 'causal-lm' });
  });
  after(() => {
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(gpt2.dir, { recursive: true, force: true });
  });

  it('inspect SmolLM2-135M --target-modules q_proj,v_proj --r 8 prints PEFT\'s line exactly', async () => {
    const res = await runCli(['inspect', smol, '--target-modules', 'q_proj,v_proj', '--r', '8']);
    assert.equal(res.code, 0, res.stderr);
    const lines = res.stdout.trimEnd().split('\n');
    assert.equal(lines.at(-1), 'trainable params: 460,800 || all params: 134,975,808 || trainable%: 0.3414');
    assert.ok(lines.some((l) => /^ {10}q_proj {2}Linear {2}576→576 {2}331,776 {2}◆ LoRA r=8 α=8$/.test(l)), res.stdout.slice(0, 2000));
    assert.doesNotMatch(res.stderr, /fan_in_fan_out/);
  });

  it('inspect --json: the module table the Modules view renders, and select-ready names', async () => {
    const res = await runCli(['inspect', tiny, '--json']);
    assert.equal(res.code, 0, res.stderr);
    const out = res.events.at(-1) as unknown as { model_type: string; modules: Array<{ name: string; type: string; lora?: unknown }>; targets: Array<{ name: string }> };
    assert.equal(out.model_type, 'llama');
    const q = out.modules.find((m) => m.name === 'model.layers.0.self_attn.q_proj');
    assert.equal(q?.type, 'Linear');
    assert.ok(q?.lora, 'q_proj is a default target (PEFT: q_proj, v_proj)');
    assert.deepEqual(out.targets.map((t) => t.name), ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']);
  });

  it('train, eval, generate, classify, merge, analyze --base on a Llama folder: exit 1, one clear error, no stack', async () => {
    const configFile = path.join(tiny, 'config.json');
    const data = writeJsonl(path.join(work, 'data.jsonl'), [{ text: 'hello there' }, { text: 'general kenobi' }]);
    const runConfig = path.join(work, 'lora-run.json');
    fs.writeFileSync(runConfig, JSON.stringify({ model: tiny, task: 'causal-lm', data: { train: data, eval: data, max_length: 16 }, lora: { target_modules: ['q_proj', 'v_proj'] }, training: { output_dir: path.join(work, 'out') } }));
    const adapter = path.join(work, 'adapter');
    writeRandomAdapter(adapter, gpt2.modelDir, { targets: ['q_proj'], modules: { 'model.layers.0.self_attn.q_proj': [16, 16] } });

    assertRefused(await runCli(['train', '--config', runConfig]), configFile);
    // output_dir is checked (created) before anything else, and metrics.jsonl logs the run, by design: no adapter, no checkpoint
    const out = path.join(work, 'out');
    assert.deepEqual((fs.existsSync(out) ? fs.readdirSync(out) : []).filter((f) => f !== 'metrics.jsonl'), [], 'train wrote no adapter');
    assertRefused(await runCli(['eval', tiny, '--data', data]), configFile);
    assertRefused(await runCli(['generate', tiny, '--prompt', 'hi']), configFile);
    assertRefused(await runCli(['classify', tiny, '--text', 'hi']), configFile);
    assertRefused(await runCli(['merge', tiny, '--adapter', adapter, '--out', path.join(work, 'merged')]), configFile);
    assert.equal(fs.existsSync(path.join(work, 'merged')), false, 'merge wrote nothing');
    assertRefused(await runCli(['analyze', adapter, '--base', tiny]), configFile);
    // --json: the same message as an error event
    const json = await runCli(['generate', tiny, '--prompt', 'hi', '--json']);
    assert.equal(json.code, 1);
    assert.deepEqual(json.events.at(-1), { event: 'error', message: NOT_IMPLEMENTED, file: configFile, field: 'model_type' });
  });
});
