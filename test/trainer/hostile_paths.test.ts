/**
 * Hostile paths and files around a training run, through the real `lora-studio train` process: output_dir that is
 * a file, a FIFO as data, a tampered trainer_state.json on resume, and a killed run's temp files. Plus the
 * TrainingArguments the loop now honours: eval_on_start and logging_strategy. `npm run build` first.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { runCli, tinyRun, type CliResult, type TinyRun } from './helpers';

const runs: TinyRun[] = [];
after(() => {
  for (const r of runs) fs.rmSync(r.dir, { recursive: true, force: true });
});
function run(opts: Parameters<typeof tinyRun>[0] = {}): TinyRun {
  const r = tinyRun(opts);
  runs.push(r);
  return r;
}

/** Rewrites fields of the run config. */
function setConfig(r: TinyRun, edit: (cfg: Record<string, Record<string, unknown>>) => void): void {
  const cfg = JSON.parse(fs.readFileSync(r.configFile, 'utf8'));
  edit(cfg);
  fs.writeFileSync(r.configFile, JSON.stringify(cfg));
}

/** The error of a failed `train --json`: non-zero exit, no stack trace, the file and field in the event and on stderr. */
function expectTrainError(res: CliResult, file: string, field: string, message: RegExp): void {
  assert.notEqual(res.code, 0, res.stdout);
  assert.equal(res.signal, null);
  assert.doesNotMatch(res.stderr, /^\s+at .+:\d+:\d+\)?$/m, 'no JavaScript stack trace');
  const err = res.events.at(-1) as Record<string, unknown>;
  assert.equal(err.event, 'error', res.stdout);
  assert.equal(err.file, file);
  assert.equal(err.field, field);
  assert.match(err.message as string, message);
  assert.match(res.stderr, new RegExp(`lora-studio: error: .*${field.replace(/[.[\]]/g, '\\$&')}`));
}

describe('hostile paths (real processes)', () => {
  it('training.output_dir that is an existing file', async () => {
    const r = run();
    fs.writeFileSync(r.outputDir, 'not a folder');
    const res = await runCli(['train', '--config', r.configFile, '--json']);
    expectTrainError(res, r.outputDir, 'training.output_dir', /is a file, not a folder/);
    assert.equal(fs.readFileSync(r.outputDir, 'utf8'), 'not a folder');
  });

  it('a FIFO as data.train is refused, not read (it would block forever)', { timeout: 120_000 }, async () => {
    const r = run();
    const fifo = path.join(r.dir, 'pipe.jsonl');
    execFileSync('mkfifo', [fifo]);
    setConfig(r, (c) => (c.data.train = 'pipe.jsonl'));
    const res = await runCli(['train', '--config', r.configFile, '--json']);
    expectTrainError(res, fifo, 'data.train', /is a FIFO \(named pipe\), not a data file/);
  });

  it('resume refuses a tampered trainer_state.json, naming the file and the field; the checkpoint stays as it was', async () => {
    const r = run({ training: { num_train_epochs: 1, save_strategy: 'steps', save_steps: 2, eval_strategy: 'no' } });
    const first = await runCli(['train', '--config', r.configFile, '--json']);
    assert.equal(first.code, 0, first.stderr);
    const ck = path.join(r.outputDir, 'checkpoint-2');
    const stateFile = path.join(ck, 'trainer_state.json');
    const good = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
    for (const [field, value, message] of [
      ['global_step', 'abc', /must be an integer/],
      ['global_step', -5, /must be an integer/],
      ['global_step', 1.5, /must be an integer/],
      ['log_history', null, /must be a list/],
      ['best_model_checkpoint', 123, /must be a checkpoint folder path or null/],
      ['global_step', 99, /beyond this run's 4 steps/],
    ] as const) {
      fs.writeFileSync(stateFile, JSON.stringify({ ...good, [field]: value }));
      if (field === 'global_step' && value === 99) fs.writeFileSync(path.join(ck, 'rng_state.json'), JSON.stringify({ ...JSON.parse(fs.readFileSync(path.join(ck, 'rng_state.json'), 'utf8')), global_step: 99 }));
      const res = await runCli(['train', '--config', r.configFile, '--resume', ck, '--json']);
      expectTrainError(res, stateFile, field, message);
    }
  });

  it('a killed run\'s temp files in output_dir are removed at the next start, and said so', async () => {
    const r = run({ training: { num_train_epochs: 1, save_strategy: 'no', eval_strategy: 'no' } });
    fs.mkdirSync(r.outputDir);
    const dead = 2 ** 22 + 4321;
    const leftovers = [`.checkpoint-3.tmp-${dead}-0a1b2c3d`, `.adapter_model.safetensors.tmp-${dead}-deadbeef`];
    fs.mkdirSync(path.join(r.outputDir, leftovers[0]));
    fs.writeFileSync(path.join(r.outputDir, leftovers[1]), 'half');
    fs.writeFileSync(path.join(r.outputDir, 'my-notes.txt'), 'mine');
    const res = await runCli(['train', '--config', r.configFile, '--json']);
    assert.equal(res.code, 0, res.stderr);
    for (const l of leftovers) {
      assert.ok(!fs.existsSync(path.join(r.outputDir, l)), l);
      assert.ok(res.events.some((e) => e.event === 'log' && String(e.message).includes(l)), `no log line for ${l}`);
    }
    assert.equal(fs.readFileSync(path.join(r.outputDir, 'my-notes.txt'), 'utf8'), 'mine');
  });
});

describe('eval_on_start and logging_strategy (as transformers)', () => {
  const history = (r: TinyRun) => JSON.parse(fs.readFileSync(path.join(r.outputDir, 'trainer_state.json'), 'utf8')).log_history as Array<Record<string, number>>;

  it('eval_on_start evaluates once before the first step', async () => {
    const r = run({ training: { num_train_epochs: 1, eval_on_start: true, save_strategy: 'no' } });
    const res = await runCli(['train', '--config', r.configFile, '--json']);
    assert.equal(res.code, 0, res.stderr);
    const kinds = res.events.filter((e) => e.event === 'eval' || e.event === 'step').map((e) => `${e.event}@${e.step}`);
    assert.deepEqual(kinds.slice(0, 2), ['eval@0', 'step@1']);
    assert.equal(history(r).filter((h) => 'eval_loss' in h && h.step === 0).length, 1);
  });

  it('logging_strategy "no" logs no loss; "epoch" logs one per epoch; "steps" every logging_steps', async () => {
    const cases: Array<[string, Record<string, unknown>, number[]]> = [
      ['no', { logging_strategy: 'no' }, []],
      ['epoch', { logging_strategy: 'epoch', num_train_epochs: 2 }, [4, 8]],
      ['steps', { logging_strategy: 'steps', logging_steps: 3, num_train_epochs: 2 }, [3, 6]],
    ];
    for (const [name, training, steps] of cases) {
      const r = run({ training: { num_train_epochs: 1, eval_strategy: 'no', save_strategy: 'no', ...training } });
      const res = await runCli(['train', '--config', r.configFile, '--json']);
      assert.equal(res.code, 0, res.stderr);
      const h = history(r);
      assert.deepEqual(h.filter((e) => 'loss' in e).map((e) => e.step), steps, name);
      assert.ok(Number.isFinite(h.at(-1)!.train_loss), `${name}: train_loss ${h.at(-1)!.train_loss}`);
    }
  });
});
