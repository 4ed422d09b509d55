/**
 * Hostile checkpoint and output folders: trainer_state.json / rng_state.json / optimizer metadata validated (file and
 * field named), file-system failures (a file as output_dir, EACCES, a full disk) as LoraStudioErrors naming the
 * path, and the temporary files of a killed run removed on the next start, nothing else.
 */
import { after, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { LoraStudioError } from '../../../trainer/errors';
import { removeStaleTemps, writeDirAtomic, writeFileAtomic } from '../../../trainer/io/atomic';
import { cleanOutputDir, loadCheckpoint } from '../../../trainer/train/checkpoint';
import { parseStateMeta } from '../../../trainer/train/optimizer';
import { prepareOutputDir } from '../../../trainer/train/trainer';

/** The fs module object itself (the trainer's `import * as fs` reads through to it), for injecting errors. */
const realFs = createRequire(__filename)('node:fs') as typeof fs;

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-ck-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => fs.mkdtempSync(path.join(root, `${n++}-`));

function throwsLS(fn: () => unknown, file: string, field: string | undefined, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof LoraStudioError, `expected a LoraStudioError, got ${String(e)}`);
    assert.equal(e.file, file);
    assert.equal(e.field, field);
    assert.match(e.message, message);
    return true;
  });
}

const GOOD_STATE = { global_step: 4, epoch: 1, max_steps: 8, best_metric: null, best_model_checkpoint: null, log_history: [{ loss: 1, step: 4 }], num_input_tokens_seen: 10, total_flos: 0 };
const GOOD_RNG = { seed: 42, global_step: 4, epoch: 1, backend: 'cpu' };

function checkpointWith(state: unknown, rng: unknown = GOOD_RNG): { dir: string; out: string } {
  const out = fresh();
  const dir = path.join(out, 'checkpoint-4');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'trainer_state.json'), typeof state === 'string' ? state : JSON.stringify(state));
  fs.writeFileSync(path.join(dir, 'rng_state.json'), JSON.stringify(rng));
  return { dir, out };
}

describe('resume validates what it reads', () => {
  const cases: Array<[string, unknown, string, RegExp]> = [
    ['log_history null (was a TypeError)', { ...GOOD_STATE, log_history: null }, 'log_history', /must be a list of objects of numbers \(got null\)/],
    ['best_model_checkpoint 123 (was ERR_INVALID_ARG_TYPE)', { ...GOOD_STATE, best_model_checkpoint: 123 }, 'best_model_checkpoint', /must be a checkpoint folder path or null \(got 123\)/],
    ['global_step 1.5 (was "collate: empty batch")', { ...GOOD_STATE, global_step: 1.5 }, 'global_step', /must be an integer from 0 to 1000000000 \(got 1\.5\)/],
    ['global_step "abc"', { ...GOOD_STATE, global_step: 'abc' }, 'global_step', /must be an integer/],
    ['global_step -5', { ...GOOD_STATE, global_step: -5 }, 'global_step', /must be an integer/],
    ['global_step []', { ...GOOD_STATE, global_step: [] }, 'global_step', /must be an integer/],
    ['a string in log_history', { ...GOOD_STATE, log_history: [{ loss: 'x' }] }, 'log_history[0].loss', /must be a number/],
    ['missing global_step', { ...GOOD_STATE, global_step: undefined }, 'global_step', /\(missing\)/],
    ['best_model_checkpoint outside output_dir', { ...GOOD_STATE, best_model_checkpoint: '/etc' }, 'best_model_checkpoint', /is not a checkpoint folder inside output_dir/],
  ];
  for (const [name, state, field, message] of cases) {
    it(name, () => {
      const { dir } = checkpointWith(state);
      throwsLS(() => loadCheckpoint(dir, path.dirname(dir)), path.join(dir, 'trainer_state.json'), field, message);
    });
  }

  it('a nested trainer_state.json and rng_state.json that disagrees', () => {
    const deep = checkpointWith(`{"global_step": ${'['.repeat(5000)}${']'.repeat(5000)}}`);
    assert.throws(() => loadCheckpoint(deep.dir), (e: LoraStudioError) => e.file === path.join(deep.dir, 'trainer_state.json') && e.field!.startsWith('global_step[0]') && /nested more than 64 levels/.test(e.message));
    const rng = checkpointWith(GOOD_STATE, { ...GOOD_RNG, global_step: 9 });
    throwsLS(() => loadCheckpoint(rng.dir), path.join(rng.dir, 'rng_state.json'), 'global_step', /is 9, but trainer_state\.json says 4/);
    const seed = checkpointWith(GOOD_STATE, { ...GOOD_RNG, seed: 'x' });
    throwsLS(() => loadCheckpoint(seed.dir), path.join(seed.dir, 'rng_state.json'), 'seed', /must be an integer/);
  });

  it('the optimizer metadata names its field', () => {
    const f = '/ck/optimizer.safetensors';
    throwsLS(() => parseStateMeta({ optimizer_state: '{"optimizer":"adamw","step":-1,"steps":{}}' }, f), f, '__metadata__.optimizer_state.step', /must be an integer/);
    throwsLS(() => parseStateMeta({ optimizer_state: '{"optimizer":"adamw","step":1,"steps":{"a":"x"}}' }, f), f, '__metadata__.optimizer_state.steps.a', /must be an integer/);
    throwsLS(() => parseStateMeta({ optimizer_state: '{"optimizer":' }, f), f, '__metadata__.optimizer_state', /not valid JSON at line 1/);
  });
});

describe('file-system failures name the path', () => {
  it('training.output_dir that is a file (was EEXIST with a stack trace)', () => {
    const file = path.join(fresh(), 'out');
    fs.writeFileSync(file, 'x');
    throwsLS(() => prepareOutputDir(file), file, 'training.output_dir', /is a file, not a folder/);
    throwsLS(() => prepareOutputDir(path.join(file, 'sub')), path.join(file, 'sub'), 'training.output_dir', /a part of this path is a file|is a file/);
  });

  it('EACCES on output_dir (injected: tests run as root)', (t) => {
    const dir = path.join(fresh(), 'ro');
    t.mock.method(realFs, 'accessSync', () => {
      throw Object.assign(new Error(`EACCES: permission denied, access '${dir}'`), { code: 'EACCES', path: dir });
    });
    throwsLS(() => prepareOutputDir(dir), dir, 'training.output_dir', /permission denied: this process may not write here/);
  });

  it('ENOSPC while writing: a LoraStudioError naming the file; the old file and no temp file are left', (t) => {
    const dir = fresh();
    const file = path.join(dir, 'adapter_model.safetensors');
    fs.writeFileSync(file, 'old');
    t.mock.method(realFs, 'writeSync', () => {
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    });
    throwsLS(() => writeFileAtomic(file, 'new', { field: 'training.output_dir' }), file, 'training.output_dir', /the disk is full \(ENOSPC\)/);
    mock.restoreAll();
    assert.equal(fs.readFileSync(file, 'utf8'), 'old');
    assert.deepEqual(fs.readdirSync(dir), ['adapter_model.safetensors']);
  });

  it('writeDirAtomic: an existing target, a file in the path', () => {
    const dir = fresh();
    throwsLS(() => writeDirAtomic(dir, () => undefined), dir, undefined, /already exists; refusing to overwrite it/);
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, 'x');
    throwsLS(() => writeDirAtomic(path.join(file, 'merged'), () => undefined), file, undefined, /a file, where a folder is needed|exists and is a file/);
  });
});

describe('leftovers of a killed run', () => {
  it('removes our own stale temp files and folders, and nothing else', () => {
    const out = fresh();
    const dead = 2 ** 22 + 12345; // above Linux's default pid_max: never a live process
    const stale = [`.checkpoint-8.tmp-${dead}-0a1b2c3d`, `.adapter_model.safetensors.tmp-${dead}-deadbeef`];
    const kept = [`.adapter_model.safetensors.tmp-${process.pid}-00000000`, 'checkpoint-4', '.tmp-1-zzzz', 'notes.tmp-1-00000000', `.x.tmp-${dead}-0a1b2c3`];
    fs.mkdirSync(path.join(out, stale[0]));
    fs.writeFileSync(path.join(out, stale[0], 'adapter_model.safetensors'), 'half');
    fs.writeFileSync(path.join(out, stale[1]), 'half');
    for (const k of kept) fs.writeFileSync(path.join(out, k), 'keep');
    // an old file of a live PID (a reused one) is stale too
    const old = `.metrics.tmp-${process.ppid}-11111111`;
    fs.writeFileSync(path.join(out, old), 'x');
    const then = new Date(Date.now() - 60 * 60 * 1000);
    fs.utimesSync(path.join(out, old), then, then);
    const removed = removeStaleTemps(out).map((p) => path.basename(p)).sort();
    assert.deepEqual(removed, [...stale, old].sort());
    assert.deepEqual(fs.readdirSync(out).sort(), [...kept].sort());
  });

  it('a swap killed half-way: the new checkpoint is put in place, a leftover old one removed', () => {
    const out = fresh();
    const dead = 2 ** 22 + 999;
    fs.mkdirSync(path.join(out, `checkpoint-6.new-${dead}`));
    fs.writeFileSync(path.join(out, `checkpoint-6.new-${dead}`, 'trainer_state.json'), '{}');
    fs.mkdirSync(path.join(out, `checkpoint-6.old-${dead}`));
    const lines = cleanOutputDir(out);
    assert.deepEqual(fs.readdirSync(out).sort(), ['checkpoint-6']);
    assert.equal(lines.length, 2, lines.join('\n'));
  });
});
