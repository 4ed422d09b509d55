/**
 * The trainer client against the REAL trainer child (trainer/main.ts under tsx): message guards, typed
 * requests and error responses, notifications and cancel on a real training run, a killed child becoming a
 * TrainerExitedError with the stderr tail and a fresh child on the next request, and dispose leaving no process.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inspect } from '../../../trainer/commands/inspect';
import { LORA_DEFAULTS } from '../../../trainer/lora/config';
import { writeRandomGPT2 } from '../../../trainer/models/gpt2/random_init';
import type { TrainEvent } from '../../../trainer/protocol';
import { ERROR_CODES } from '../../../trainer/protocol';
import {
  isChildMessage, isTrainEvent, RingBuffer, TRAINER_ERROR_CODES, TrainerClient, TrainerExitedError, TrainerRequestError,
} from '../../../extension/trainerClient';

const ROOT = path.resolve(__dirname, '../../..');
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const waitFor = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('trainer message guards', () => {
  it('accepts every well-formed child message', () => {
    assert.ok(isChildMessage({ kind: 'ready', pid: 1 }));
    assert.ok(isChildMessage({ kind: 'notification', id: 1, event: { event: 'log', level: 'info', message: 'x' } }));
    assert.ok(isChildMessage({ kind: 'response', id: 2, result: null }));
    assert.ok(isChildMessage({ kind: 'response', id: 2, error: { code: 1, message: 'bad', file: 'f', field: 'x' } }));
  });

  it('rejects malformed ones', () => {
    for (const m of [
      null, 'ready', 42, {}, { kind: 'ready' }, { kind: 'ready', pid: '1' },
      { kind: 'notification', id: 1 }, { kind: 'notification', id: '1', event: { event: 'step' } },
      { kind: 'notification', id: 1, event: { event: 'explode' } }, { kind: 'response', id: 1 },
      { kind: 'response', id: 1, error: 'bad' }, { kind: 'response', id: 1, error: { code: 'x', message: 'm' } },
      { kind: 'request', id: 1, method: 'train', params: {} },
    ]) {
      assert.equal(isChildMessage(m), false, JSON.stringify(m));
    }
    assert.equal(isTrainEvent({ event: 'step', step: 1 }), true);
    assert.equal(isTrainEvent({ step: 1 }), false);
  });

  it('the error codes mirror trainer/protocol.ts', () => {
    assert.deepEqual(TRAINER_ERROR_CODES, ERROR_CODES);
  });

  it('RingBuffer keeps the last lines and joins partial chunks', () => {
    const rb = new RingBuffer(3, 1000);
    assert.deepEqual(rb.push('a\nb'), ['a']);
    assert.deepEqual(rb.push('c\nd\ne\n'), ['bc', 'd', 'e']);
    assert.equal(rb.text(), 'bc\nd\ne');
    rb.push('f');
    assert.equal(rb.text(), 'd\ne\nf');
  });

  it('TrainerExitedError names the code or signal, flags OOM, and carries the tail', () => {
    const oom = new TrainerExitedError(134, null, 'x\nFATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory');
    assert.equal(oom.outOfMemory, true);
    assert.match(oom.message, /exited with code 134 \(out of memory\?\): .*heap out of memory/);
    const killed = new TrainerExitedError(null, 'SIGKILL', '');
    assert.match(killed.message, /killed by SIGKILL/);
    assert.equal(new TrainerExitedError(1, null, 'Error: boom').outOfMemory, false);
  });
});

describe('TrainerClient with the real trainer child', () => {
  let tmp = '';
  let modelDir = '';
  const logs: string[] = [];
  const client = () =>
    new TrainerClient({
      script: path.join(ROOT, 'trainer', 'main.ts'),
      execArgv: ['--import', 'tsx'],
      cwd: ROOT,
      killGraceMs: 5000,
      log: (l) => logs.push(l),
    });

  /** a long seq-cls run on the tiny model (it is stopped long before its last step) */
  const writeRunConfig = (name: string, outputDir: string) => {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, JSON.stringify({
      model: 'model', task: 'seq-cls', num_labels: 2,
      data: { train: 'train.jsonl', max_length: 16 },
      lora: { r: 2, lora_alpha: 4, target_modules: ['c_attn'] },
      training: { output_dir: outputDir, num_train_epochs: 50, per_device_train_batch_size: 4, logging_steps: 1, save_strategy: 'no', eval_strategy: 'no', backend: 'cpu' },
    }));
    return file;
  };

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-client-'));
    modelDir = path.join(tmp, 'model');
    writeRandomGPT2(modelDir, { task: 'seq-cls', num_labels: 2 });
    const rows = Array.from({ length: 64 }, (_, i) => JSON.stringify({ text: `${i % 2 ? 'good' : 'bad'} movie number ${i}`, label: i % 2 }));
    fs.writeFileSync(path.join(tmp, 'train.jsonl'), rows.join('\n') + '\n');
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('inspect: a typed request answered with the same InspectResult as the trainer computes in-process', async () => {
    const c = client();
    try {
      const lora = { target_modules: ['c_attn'], r: 4, lora_alpha: 8 };
      const r = await c.request('inspect', { model_dir: modelDir, lora }).result;
      const direct = inspect({ modelDir, lora: { ...LORA_DEFAULTS, ...lora }, explicitModulesToSave: false });
      assert.equal(r.line, direct.line);
      assert.deepEqual(r.targets, direct.targets);
      assert.equal(r.task, 'seq-cls');
      assert.ok(c.pid && alive(c.pid));
    } finally {
      await c.dispose();
    }
  });

  it('an error response becomes a TrainerRequestError with its code and field', async () => {
    const c = client();
    try {
      await assert.rejects(c.request('inspect', { model_dir: modelDir, lora: { target_modules: ['no_such_module'] } }).result, (e: unknown) => {
        assert.ok(e instanceof TrainerRequestError);
        assert.equal(e.code, ERROR_CODES.invalid_input);
        assert.equal(e.field, 'target_modules');
        assert.match(e.describe(), /target_modules: .*matched no module/);
        return true;
      });
      // the child survives a bad request
      const ok = await c.request('inspect', { model_dir: modelDir }).result;
      assert.ok(ok.modules.length > 0);
    } finally {
      await c.dispose();
    }
  });

  it('a killed child rejects open requests with TrainerExitedError (signal, stderr tail); the next request forks a new one', async () => {
    const c = client();
    const exits: Array<TrainerExitedError | undefined> = [];
    c.onExit((e) => exits.push(e));
    try {
      await c.request('inspect', { model_dir: modelDir }).result;
      const first = c.pid!;
      // real stderr from the trainer: it reports a malformed message before ignoring it
      (c as unknown as { child: import('node:child_process').ChildProcess }).child.send({ kind: 'bogus' });
      await waitFor(() => c.stderrTail().includes('malformed'));
      // a request that is open while the child dies (the trainer is slowed by nothing: kill it right away)
      const open = c.request('inspect', { model_dir: modelDir });
      process.kill(first, 'SIGKILL');
      await assert.rejects(open.result, (e: unknown) => {
        assert.ok(e instanceof TrainerExitedError, String(e));
        assert.equal(e.signal, 'SIGKILL');
        assert.match(e.stderrTail, /ignored a malformed message/);
        assert.match(e.message, /killed by SIGKILL/);
        return true;
      }).catch(async (e) => {
        // the response may have won the race; then the exit is reported on 'exit' instead
        if (!(e instanceof assert.AssertionError)) throw e;
        await waitFor(() => exits.length > 0);
        assert.ok(exits[0] instanceof TrainerExitedError);
      });
      await waitFor(() => !alive(first));
      const again = await c.request('inspect', { model_dir: modelDir }).result;
      assert.ok(again.modules.length > 0);
      assert.notEqual(c.pid, first);
    } finally {
      await c.dispose();
    }
  });

  it('a crash between requests is reported once on the exit event', async () => {
    const c = client();
    const exits: Array<TrainerExitedError | undefined> = [];
    c.onExit((e) => exits.push(e));
    try {
      await c.request('inspect', { model_dir: modelDir }).result;
      process.kill(c.pid!, 'SIGKILL');
      await waitFor(() => exits.length === 1);
      assert.ok(exits[0] instanceof TrainerExitedError);
      assert.equal(exits[0].signal, 'SIGKILL');
    } finally {
      await c.dispose();
    }
  });

  it('train: streams notifications, cancel stops the run with a checkpoint, and dispose leaves no process', { timeout: 60_000 }, async () => {
    const cfgFile = writeRunConfig('lora-run.json', 'out');
    const c = client();
    const events: TrainEvent[] = [];
    try {
      const h = c.request('train', { config_file: cfgFile, backend: 'cpu' }, (e) => {
        events.push(e);
        if (e.event === 'step' && e.step === 2) c.cancel(h.id);
      });
      const done = await h.result;
      assert.equal(done.event, 'done');
      assert.equal(done.stopped, true);
      assert.ok(done.global_step >= 2 && done.global_step < 800, `stopped at ${done.global_step}`);
      const start = events.findIndex((e) => e.event === 'start');
      assert.ok(start >= 0 && start < events.findIndex((e) => e.event === 'step'), 'start comes before the steps');
      // the trainer wrote the same events to metrics.jsonl, for the dashboard's replay
      assert.ok(fs.existsSync(path.join(tmp, 'out', 'metrics.jsonl')));
      const pid = c.pid!;
      await c.dispose();
      await waitFor(() => !alive(pid));
      await assert.rejects(c.request('inspect', { model_dir: modelDir }).result, /disposed/);
    } finally {
      await c.dispose();
    }
  });

  it('dispose during a run: SIGTERM stops the run cleanly (no SIGKILL needed) and the child is gone', { timeout: 60_000 }, async () => {
    const cfgFile = writeRunConfig('dispose.lora-run.json', 'out-dispose');
    const c = client();
    let exit: { code: number | null; signal: string | null } | undefined;
    try {
      let resolveStep: () => void = () => undefined;
      const stepped = new Promise<void>((r) => (resolveStep = r));
      const h = c.request('train', { config_file: cfgFile, backend: 'cpu' }, (e) => {
        if (e.event === 'step') resolveStep();
      });
      // a run that fails before its first step fails the test instead of hanging it
      await Promise.race([stepped, h.result.then(() => assert.fail('the run ended before it was disposed'))]);
      h.result.catch(() => undefined);
      const child = (c as unknown as { child: import('node:child_process').ChildProcess }).child;
      child.once('exit', (code, signal) => (exit = { code, signal }));
      const pid = child.pid!;
      await c.dispose();
      assert.equal(alive(pid), false);
      assert.deepEqual(exit, { code: 0, signal: null });
    } finally {
      await c.dispose();
    }
  });
});
