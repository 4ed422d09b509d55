/**
 * `lora-studio demo` — the README's first command — as a real process: it trains the built-in sentiment
 * job, its eval accuracy climbs clearly above chance, and the merged model reproduces base + adapter.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runCli, scratch } from './helpers';
import { writeRandomGPT2 } from '../../trainer/models/gpt2/random_init';

describe('demo', () => {
  it('trains, beats chance, saves a PEFT adapter, and merges to the same accuracy', async () => {
    const work = path.join(scratch('lora-demo-'), 'demo');
    const r = await runCli(['demo', '--out', work, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const start = r.events.find((e) => e.event === 'start');
    assert.ok(start && ['wasm', 'cpu', 'tensorflow'].includes(String(start.backend)));
    const accuracies = r.events.flatMap((e) => (e.event === 'eval' ? [e.metrics.eval_accuracy] : []));
    assert.equal(accuracies.length, 3, 'one evaluation per epoch');
    assert.ok(Math.max(...accuracies) > 0.75, `eval accuracy ${accuracies.join(', ')} should be clearly above chance (0.5)`);
    const demo = r.events.at(-1) as Record<string, unknown>;
    assert.equal(demo.event, 'demo');
    assert.equal(demo.same, true);
    assert.equal(demo.adapter_accuracy, demo.merged_accuracy);
    const runDir = path.join(work, 'run');
    for (const f of ['adapter_config.json', 'adapter_model.safetensors', 'trainer_state.json', 'metrics.jsonl']) assert.ok(fs.existsSync(path.join(runDir, f)), f);
    const cfg = JSON.parse(fs.readFileSync(path.join(runDir, 'adapter_config.json'), 'utf8'));
    assert.equal(cfg.peft_type, 'LORA');
    assert.equal(cfg.task_type, 'SEQ_CLS');
    assert.equal(cfg.r, 4);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) assert.ok(fs.existsSync(path.join(work, 'merged', f)), f);
    fs.rmSync(path.dirname(work), { recursive: true, force: true });
  });

  it('--model runs the same job on another model folder, given relative to the working directory', async () => {
    const dir = scratch('lora-demo-model-');
    writeRandomGPT2(path.join(dir, 'mine'), { seed: 5, config: { n_embd: 16, n_head: 2, n_layer: 1 } });
    const r = await runCli(['demo', '--model', 'mine', '--out', 'work', '--epochs', '1', '--json'], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    const start = r.events.find((e) => e.event === 'start')!;
    assert.equal(start.model, path.join(dir, 'mine'));
    assert.equal((r.events.at(-1) as Record<string, unknown>).same, true);
    assert.ok(!fs.existsSync(path.join(dir, 'work', 'base')), 'no built-in model is built');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
