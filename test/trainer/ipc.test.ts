/**
 * The training child process (dist/trainer/main.js) forked as the extension forks it: the ready message,
 * inspect requests (model_dir and config_file forms), a train request streaming notifications and ending
 * with the done event, cancel (checkpoint, then stopped: true), malformed messages ignored, bad configs
 * answered with invalid_input naming file and field, and exit when its parent dies (idle and mid-training).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { alive, DIST_MAIN, killIfAlive, tinyRun, type TinyRun } from './helpers';
import type { ChildMessage, ParentMessage, TrainEvent } from '../../trainer/protocol';
import { ERROR_CODES } from '../../trainer/protocol';
import { loadCheckpoint } from '../../trainer/train/checkpoint';

type Response = Extract<ChildMessage, { kind: 'response' }>;

/** A minimal parent: forks main.js (silent, as the extension does), sends requests, collects answers. */
class TrainerChild {
  readonly proc: ChildProcess;
  stderr = '';
  readonly ready: Promise<number>;
  private waiting = new Map<number, { resolve: (r: Response) => void; onEvent?: (e: TrainEvent) => void }>();

  constructor() {
    if (!fs.existsSync(DIST_MAIN)) throw new Error('dist/trainer/main.js is missing: run `npm run build` first (npm test does)');
    this.proc = fork(DIST_MAIN, [], { silent: true });
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr += d));
    this.proc.stdout!.resume();
    this.ready = new Promise((resolve, reject) => {
      this.proc.once('error', reject);
      this.proc.once('exit', (code) => reject(new Error(`child exited (${code}) before ready: ${this.stderr}`)));
      this.proc.on('message', (m: ChildMessage) => {
        if (m.kind === 'ready') resolve(m.pid);
        else if (m.kind === 'notification') this.waiting.get(m.id)?.onEvent?.(m.event);
        else if (m.kind === 'response') {
          this.waiting.get(m.id)?.resolve(m);
          this.waiting.delete(m.id);
        }
      });
    });
  }

  request(id: number, m: ParentMessage, onEvent?: (e: TrainEvent) => void): Promise<Response> {
    return new Promise((resolve) => {
      this.waiting.set(id, { resolve, onEvent });
      this.proc.send(m);
    });
  }

  send(m: unknown): void {
    this.proc.send(m as ParentMessage);
  }

  kill(): void {
    killIfAlive(this.proc.pid);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `pid` is gone or ~`seconds` passed; true when it is gone. */
async function goneWithin(pid: number, seconds: number): Promise<boolean> {
  for (let i = 0; i < seconds * 10; i++) {
    if (!alive(pid)) return true;
    await sleep(100);
  }
  return !alive(pid);
}

describe('trainer child process over IPC (dist/trainer/main.js)', () => {
  const children: TrainerChild[] = [];
  const pids: number[] = [];
  const dirs: string[] = [];
  let run: TinyRun;
  let child: TrainerChild;

  const newRun = (opts: Parameters<typeof tinyRun>[0]) => {
    const r = tinyRun(opts);
    dirs.push(r.dir);
    return r;
  };

  before(async () => {
    run = newRun({ task: 'seq-cls', training: { max_steps: 4, eval_strategy: 'steps', eval_steps: 2, save_strategy: 'steps', save_steps: 2 } });
    child = new TrainerChild();
    children.push(child);
  });
  after(() => {
    for (const c of children) c.kill();
    for (const p of pids) killIfAlive(p);
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('sends {kind: "ready", pid} first', async () => {
    const pid = await child.ready;
    assert.equal(pid, child.proc.pid);
  });

  it('inspect, model_dir form: modules as named_modules() names them, the targets, the PEFT line', async () => {
    await child.ready;
    const res = await child.request(1, { kind: 'request', id: 1, method: 'inspect', params: { model_dir: run.modelDir, lora: { target_modules: ['c_attn'], r: 2 } } });
    assert.ok('result' in res, JSON.stringify(res));
    const r = res.result as { modules: Array<{ name: string }>; targets: Array<{ name: string }>; line: string; task: string; trainable_params: number };
    assert.equal(r.task, 'causal-lm');
    assert.ok(r.modules.some((m) => m.name === 'transformer.h.1.mlp.c_proj'));
    assert.equal(r.modules.at(-1)!.name, 'lm_head');
    assert.deepEqual(r.targets.map((t) => t.name), ['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_attn']);
    assert.equal(r.trainable_params, 2 * (2 * 16 + 48 * 2));
    assert.match(r.line, /^trainable params: 256 \|\| all params: [\d,]+ \|\| trainable%: \d+\.\d{4}$/);
  });

  it('inspect, config_file form: model, task, num_labels and lora from the run config', async () => {
    const res = await child.request(2, { kind: 'request', id: 2, method: 'inspect', params: { config_file: run.configFile } });
    assert.ok('result' in res, JSON.stringify(res));
    const r = res.result as { modules: Array<{ name: string }>; targets: Array<{ name: string }>; modules_to_save: string[]; line: string; task: string; num_labels: number; model_dir: string };
    assert.equal(r.task, 'seq-cls');
    assert.equal(r.num_labels, 2);
    assert.equal(fs.realpathSync(r.model_dir), fs.realpathSync(run.modelDir));
    assert.equal(r.modules.at(-1)!.name, 'score');
    assert.deepEqual(r.modules_to_save, ['score']);
    assert.equal(r.targets.length, 6, 'c_attn, and c_proj as a suffix of attn.c_proj and mlp.c_proj, in 2 layers');
    assert.match(r.line, /^trainable params: [\d,]+ \|\| all params: [\d,]+ \|\| trainable%: \d+\.\d{4}$/);
  });

  it('a malformed message is ignored (logged to stderr) and the child keeps working', async () => {
    child.send({ hello: 'world' });
    child.send({ kind: 'request', id: 'seven', method: 'inspect', params: {} });
    child.send({ kind: 'request', id: 8, method: 'explode', params: { config_file: run.configFile } });
    const res = await child.request(9, { kind: 'request', id: 9, method: 'inspect', params: { model_dir: run.modelDir } });
    assert.ok('result' in res, JSON.stringify(res));
    // stderr is a different pipe from the IPC channel: its lines may arrive after the response
    for (let i = 0; i < 50 && !/malformed message.*explode/.test(child.stderr); i++) await sleep(100);
    assert.match(child.stderr, /malformed message.*hello/);
    assert.match(child.stderr, /malformed message.*explode/);
    assert.equal(child.proc.exitCode, null, 'still running');
  });

  it('a bad config gets an error response with code invalid_input naming the file and the field', async () => {
    const cfg = JSON.parse(fs.readFileSync(run.configFile, 'utf8'));
    const bad = path.join(run.dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ ...cfg, training: { ...cfg.training, learning_rte: 1 } }));
    for (const [id, method] of [[10, 'train'], [11, 'inspect']] as const) {
      const res = await child.request(id, { kind: 'request', id, method, params: { config_file: bad } } as ParentMessage);
      assert.ok('error' in res, JSON.stringify(res));
      assert.equal(res.error.code, ERROR_CODES.invalid_input);
      assert.equal(res.error.file, bad);
      assert.equal(res.error.field, 'training.learning_rte');
      assert.match(res.error.message, /did you mean "learning_rate"/);
    }
    const badModel = await child.request(12, { kind: 'request', id: 12, method: 'inspect', params: { model_dir: path.join(run.dir, 'nowhere') } });
    assert.ok('error' in badModel);
    assert.equal(badModel.error.code, ERROR_CODES.invalid_input);
    assert.ok(badModel.error.file?.includes(path.join(run.dir, 'nowhere')), JSON.stringify(badModel.error));
  });

  it('train streams notifications (start, step, eval, checkpoint) and responds with the done event', async () => {
    const events: TrainEvent[] = [];
    const res = await child.request(20, { kind: 'request', id: 20, method: 'train', params: { config_file: run.configFile, backend: 'cpu' } }, (e) => events.push(e));
    assert.ok('result' in res, JSON.stringify(res));
    const named = events.filter((e) => e.event !== 'log').map((e) => e.event);
    assert.deepEqual(named, ['start', 'step', 'step', 'eval', 'checkpoint', 'step', 'step', 'eval', 'checkpoint', 'done']);
    const start = events.find((e) => e.event === 'start')!;
    assert.ok(start.event === 'start' && start.backend === 'cpu' && start.gpu === false && start.total_steps === 4);
    const evals = events.filter((e) => e.event === 'eval');
    assert.ok(evals.every((e) => e.event === 'eval' && e.metrics.eval_accuracy >= 0 && e.metrics.eval_accuracy <= 1 && Number.isFinite(e.metrics.eval_f1)));
    const done = res.result as Extract<TrainEvent, { event: 'done' }>;
    assert.equal(done.event, 'done');
    assert.equal(done.stopped, false);
    assert.equal(done.global_step, 4);
    assert.deepEqual(events.at(-1), done, 'the last notification is the done event the response carries');
    assert.ok(fs.existsSync(path.join(run.outputDir, 'adapter_model.safetensors')));
    // metrics.jsonl holds the same events
    const metrics = fs.readFileSync(path.join(run.outputDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(metrics, events);
  });

  it('cancel during training saves a checkpoint and responds with stopped: true', async () => {
    const r = newRun({ task: 'causal-lm', training: { num_train_epochs: 20, eval_strategy: 'no', save_strategy: 'no' } });
    const events: TrainEvent[] = [];
    let cancelled = false;
    const res = await child.request(30, { kind: 'request', id: 30, method: 'train', params: { config_file: r.configFile } }, (e) => {
      events.push(e);
      if (!cancelled && e.event === 'step' && e.step === 2) {
        cancelled = true;
        child.send({ kind: 'cancel', id: 30 });
      }
    });
    assert.ok(cancelled);
    assert.ok('result' in res, JSON.stringify(res));
    const done = res.result as Extract<TrainEvent, { event: 'done' }>;
    assert.equal(done.stopped, true);
    assert.ok(done.global_step >= 2 && done.global_step < 80, `stopped at ${done.global_step}`);
    const ck = events.filter((e) => e.event === 'checkpoint').at(-1);
    assert.ok(ck && ck.event === 'checkpoint');
    assert.equal(path.basename(ck.path), `checkpoint-${done.global_step}`);
    assert.equal(loadCheckpoint(ck.path).state.global_step, done.global_step);
    // and the child is still there for the next request
    const next = await child.request(31, { kind: 'request', id: 31, method: 'inspect', params: { model_dir: r.modelDir } });
    assert.ok('result' in next);
  });

  /** Starts `node -e` that forks main.js and prints the child's pid once `trainerStarted` says so. */
  async function intermediate(script: string): Promise<{ parent: ChildProcess; pid: number }> {
    const parent = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    pids.push(parent.pid!);
    const pid = await new Promise<number>((resolve, reject) => {
      let out = '';
      parent.stdout!.on('data', (d: Buffer) => {
        out += d;
        const m = /pid (\d+)\n/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      parent.once('exit', (code) => reject(new Error(`intermediate exited (${code}) before printing the pid`)));
    });
    pids.push(pid);
    return { parent, pid };
  }

  it('exits when its parent dies (SIGKILL), idle', async () => {
    const { parent, pid } = await intermediate(
      `const c = require('child_process').fork(${JSON.stringify(DIST_MAIN)}, [], { silent: true });
       c.on('message', (m) => { if (m.kind === 'ready') process.stdout.write('pid ' + m.pid + '\\n'); });
       setInterval(() => {}, 1000);`,
    );
    assert.ok(alive(pid));
    parent.kill('SIGKILL');
    assert.ok(await goneWithin(pid, 5), `trainer child ${pid} outlived its parent`);
  });

  it('exits when its parent dies (SIGKILL) in the middle of a training run', async () => {
    const r = newRun({ task: 'causal-lm', training: { num_train_epochs: 50, eval_strategy: 'no', save_strategy: 'no' } });
    const { parent, pid } = await intermediate(
      `const c = require('child_process').fork(${JSON.stringify(DIST_MAIN)}, [], { silent: true });
       c.on('message', (m) => {
         if (m.kind === 'ready') c.send({ kind: 'request', id: 1, method: 'train', params: { config_file: ${JSON.stringify(r.configFile)} } });
         if (m.kind === 'notification' && m.event.event === 'step' && m.event.step === 2) process.stdout.write('pid ' + c.pid + '\\n');
       });
       setInterval(() => {}, 1000);`,
    );
    assert.ok(alive(pid));
    parent.kill('SIGKILL');
    assert.ok(await goneWithin(pid, 5), `trainer child ${pid} outlived its parent`);
    const steps = fs.readFileSync(path.join(r.outputDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.event === 'step');
    assert.ok(steps.length < 200, 'the run did not go on to its end');
  });
});
