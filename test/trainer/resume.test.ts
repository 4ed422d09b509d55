/**
 * Checkpoints and resume: a run stopped half-way and resumed replays the uninterrupted run exactly
 * (same losses, bit for bit, and the same adapter bytes) on the same backend — with dropout, gradient
 * accumulation, evaluation and pruning on. And a SIGKILL in the middle of a checkpoint write leaves the
 * previous checkpoint whole and resumable.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runCli, tinyRun } from './helpers';
import { loadRunConfig } from '../../trainer/config/run_config';
import { train } from '../../trainer/train/trainer';
import { listCheckpoints, loadCheckpoint } from '../../trainer/train/checkpoint';
import type { TrainEvent } from '../../trainer/protocol';
import { webgpuSkipReason } from '../unit/model/webgpu_probe';

const RESUME_TRAINING = {
  num_train_epochs: 3, per_device_train_batch_size: 4, gradient_accumulation_steps: 2, learning_rate: 2e-2, warmup_ratio: 0.2,
  eval_strategy: 'steps', eval_steps: 3, save_strategy: 'steps', save_steps: 3, save_total_limit: 2,
  load_best_model_at_end: true, metric_for_best_model: 'accuracy', logging_steps: 1,
};

function stepLosses(events: TrainEvent[]): Array<[number, number]> {
  return events.flatMap((e) => (e.event === 'step' ? [[e.step, e.loss] as [number, number]] : []));
}

describe('resume', () => {
  // the automatic backend (wasm here), and webgpu on any adapter Dawn offers (llvmpipe here)
  for (const backend of [null, 'webgpu'] as const) it(`equals the uninterrupted run, step for step and byte for byte${backend ? ` (${backend})` : ''}`, async (t) => {
    const skip = backend === 'webgpu' && (await webgpuSkipReason());
    if (skip) return t.skip(skip);
    const opts = { training: { ...RESUME_TRAINING, backend }, lora: { lora_dropout: 0.1 }, model: { config: { resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.1 } } };
    const a = tinyRun(opts);
    const whole: TrainEvent[] = [];
    await train(loadRunConfig(a.configFile), { onEvent: (e) => whole.push(e), configFile: a.configFile });

    const b = tinyRun(opts);
    const first: TrainEvent[] = [];
    const stop = new AbortController();
    const done1 = await train(loadRunConfig(b.configFile), {
      onEvent: (e) => {
        first.push(e);
        if (e.event === 'step' && e.step === 5) stop.abort();
      },
      signal: stop.signal, configFile: b.configFile,
    });
    assert.equal(done1.stopped, true);
    assert.equal(done1.global_step, 5);
    assert.ok(fs.existsSync(path.join(b.outputDir, 'checkpoint-5', 'trainer_state.json')), 'a stop saves a checkpoint first');

    const second: TrainEvent[] = [];
    await train(loadRunConfig(b.configFile, { training: { resume_from_checkpoint: true } }), { onEvent: (e) => second.push(e), configFile: b.configFile });

    const expected = stepLosses(whole);
    assert.equal(expected.length, 12);
    assert.deepEqual([...stepLosses(first), ...stepLosses(second)], expected);
    const evals = (ev: TrainEvent[]) => ev.flatMap((e) => (e.event === 'eval' ? [[e.step, e.metrics.eval_loss, e.metrics.eval_accuracy]] : []));
    assert.deepEqual([...evals(first), ...evals(second)].filter(([s]) => s !== 5), evals(whole));
    const bytes = (dir: string) => fs.readFileSync(path.join(dir, 'adapter_model.safetensors'));
    assert.ok(bytes(a.outputDir).equals(bytes(b.outputDir)), 'the final adapters are identical');
    // save_total_limit 2 keeps the newest and the best
    assert.ok(listCheckpoints(b.outputDir).length <= 2);
    const state = JSON.parse(fs.readFileSync(path.join(b.outputDir, 'trainer_state.json'), 'utf8'));
    assert.equal(state.global_step, 12);
    assert.ok(state.log_history.some((h: Record<string, number>) => 'eval_accuracy' in h));
    assert.ok(typeof state.best_model_checkpoint === 'string');
    // metrics.jsonl holds both halves of the run
    const lines = fs.readFileSync(path.join(b.outputDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.filter((e) => e.event === 'step').length, 12);
    assert.equal(lines.filter((e) => e.event === 'start').length, 2);
    for (const r of [a, b]) fs.rmSync(r.dir, { recursive: true, force: true });
  });

  it('refuses to start a fresh run over the checkpoints of another', async () => {
    const r = tinyRun({ training: { max_steps: 2, save_strategy: 'steps', save_steps: 1, eval_strategy: 'no', load_best_model_at_end: false } });
    await train(loadRunConfig(r.configFile), { onEvent: () => {}, configFile: r.configFile });
    await assert.rejects(train(loadRunConfig(r.configFile), { onEvent: () => {}, configFile: r.configFile }), /already holds checkpoints.*resume_from_checkpoint/);
    fs.rmSync(r.dir, { recursive: true, force: true });
  });

  it('survives SIGKILL during a checkpoint write: the previous checkpoint loads and the run resumes', async () => {
    const r = tinyRun({ training: { max_steps: 6, save_strategy: 'steps', save_steps: 2, eval_strategy: 'no', load_best_model_at_end: false } });
    let pauses = 0;
    const killed = await runCli(['train', '--config', r.configFile, '--json'], {
      env: { LORA_STUDIO_FAULT_CHECKPOINT_DELAY_MS: '1500' },
      onStderr: (text, child) => {
        pauses += (text.match(/fault injection: checkpoint write paused/g) ?? []).length;
        if (pauses === 2) child.kill('SIGKILL'); // the second checkpoint (step 4) is half written
      },
    });
    assert.equal(killed.signal, 'SIGKILL');
    assert.deepEqual(listCheckpoints(r.outputDir).map((c) => c.step), [2], 'only the complete checkpoint counts');
    const ck = loadCheckpoint(path.join(r.outputDir, 'checkpoint-2'));
    assert.equal(ck.state.global_step, 2);
    assert.ok(ck.adapter.lora.size > 0);

    const resumed = await runCli(['train', '--config', r.configFile, '--json', '--resume']);
    assert.equal(resumed.code, 0, resumed.stderr);
    const start = resumed.events.find((e) => e.event === 'start')!;
    assert.equal(start.global_step, 2);
    assert.equal(resumed.events.at(-1)?.event, 'done');
    assert.equal(resumed.events.at(-1)?.global_step, 6);
    fs.rmSync(r.dir, { recursive: true, force: true });
  });
});
