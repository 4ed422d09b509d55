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
import { readSafetensors } from '../../trainer/io/safetensors';
import { writeLlamaFolder } from '../util/llama_folder';

describe('demo', () => {
  it('trains, beats chance, saves a PEFT adapter, and merges to the same accuracy', async () => {
    const work = path.join(scratch('lora-demo-'), 'demo');
    const r = await runCli(['demo', '--out', work, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const start = r.events.find((e) => e.event === 'start');
    assert.ok(start && ['wasm', 'cpu', 'tensorflow'].includes(String(start.backend)));
    const evals = r.events.filter((e) => e.event === 'eval');
    const accuracies = evals.filter((e) => e.step > 0).map((e) => e.metrics.eval_accuracy);
    assert.equal(accuracies.length, 3, 'one evaluation per epoch');
    assert.ok(Math.max(...accuracies) > 0.75, `eval accuracy ${accuracies.join(', ')} should be clearly above chance (0.5)`);
    // eval_on_start (once the trainer implements it): the accuracy before training, at chance
    const atStart = evals.find((e) => e.step === 0);
    if (atStart) assert.ok(atStart.metrics.eval_accuracy < 0.7, `accuracy before training ${atStart.metrics.eval_accuracy}`);
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
    // negative/positive, not LABEL_0/LABEL_1: in the data, the adapter's metadata, the merged config.json, eval and classify
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(work, 'lora-run.json'), 'utf8')).training.eval_on_start, true);
    assert.match(fs.readFileSync(path.join(work, 'data', 'train.jsonl'), 'utf8'), /"label":"(negative|positive)"/);
    assert.equal(cfg.base_model_name_or_path, '../base', 'relative to the adapter folder');
    const labels = { id2label: { 0: 'negative', 1: 'positive' }, label2id: { negative: 0, positive: 1 } };
    const meta = readSafetensors(path.join(runDir, 'adapter_model.safetensors')).metadata ?? {};
    assert.deepEqual({ id2label: JSON.parse(meta.id2label), label2id: JSON.parse(meta.label2id) }, labels);
    const merged = JSON.parse(fs.readFileSync(path.join(work, 'merged', 'config.json'), 'utf8'));
    assert.deepEqual({ id2label: merged.id2label, label2id: merged.label2id }, labels);
    const ev = await runCli(['eval', path.join(work, 'base'), '--adapter', runDir, '--data', path.join(work, 'data', 'eval.jsonl'), '--json']);
    assert.equal(ev.code, 0, ev.stderr);
    assert.deepEqual((ev.events.at(-1) as Record<string, unknown>).id2label, labels.id2label);
    const cls = await runCli(['classify', path.join(work, 'merged'), '--text', 'the movie was really wonderful', '--json']);
    assert.equal(cls.code, 0, cls.stderr);
    assert.deepEqual(Object.keys((cls.events.at(-1) as Record<string, unknown>).probabilities as object), ['negative', 'positive']);
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

  it('--model with a Llama-family folder (BF16): PEFT\'s default targets for it, and the merge agrees within 16-bit rounding', async () => {
    const dir = scratch('lora-demo-llama-');
    writeLlamaFolder(path.join(dir, 'tiny'), { model_type: 'llama', dtype: 'BF16', seed: 3 });
    const r = await runCli(['demo', '--model', 'tiny', '--out', 'work', '--epochs', '1', '--json'], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'work', 'run', 'adapter_config.json'), 'utf8'));
    assert.deepEqual([...cfg.target_modules].sort(), ['q_proj', 'v_proj']);
    assert.equal(cfg.fan_in_fan_out, false);
    const demo = r.events.at(-1) as Record<string, number | boolean>;
    assert.equal(demo.same, true);
    assert.ok(Math.abs((demo.adapter_accuracy as number) - (demo.merged_accuracy as number)) <= 0.01);
    assert.ok(Math.abs((demo.adapter_loss as number) - (demo.merged_loss as number)) < 1e-4);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
