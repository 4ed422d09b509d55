/**
 * The CLI behaving as people expect a CLI to (issue 11): one error line per usage error with exit code 2 and a
 * pointer to --help, --version, a bare `lora-studio` that prints the help, errors that name the flag the user
 * typed, warnings about a random classification head, one inspect warning, base_model_name_or_path as given,
 * named errors for bad generate/eval flags, and no stack trace for an internal error. Real processes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { REPO, runCli, scratch, tinyRun, writeJsonl, writeRandomAdapter, type CliResult, type TinyRun } from './helpers';

const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
type Json = Record<string, unknown>;
/** A JavaScript stack frame (native libraries may print their own `at` lines, which are not ours). */
const JS_FRAME = /^\s+at .*\.[cm]?[jt]s:\d+:\d+\)?$/m;

/** A failed run: exit code, one `lora-studio: error:` line naming `field` (and `file`), no stack trace. */
function assertFails(res: CliResult, want: { code?: number; field: string; file?: string; message?: RegExp }): string {
  const what = `stderr: ${res.stderr}`;
  if (want.code !== undefined) assert.equal(res.code, want.code, what);
  else assert.ok(res.code !== 0 && res.code !== null, what);
  const errors = res.stderr.split('\n').filter((l) => l.startsWith('lora-studio: error: '));
  assert.equal(errors.length, 1, what);
  assert.ok(errors[0].includes(`: ${want.field}: `), `names ${want.field}: ${errors[0]}`);
  if (want.file) assert.ok(errors[0].startsWith(`lora-studio: error: ${want.file}: `), `names ${want.file}: ${errors[0]}`);
  if (want.message) assert.match(errors[0], want.message);
  assert.doesNotMatch(res.stderr, JS_FRAME, 'no stack trace');
  assert.doesNotMatch(res.stderr, /TypeError|RangeError|token_ids must be/);
  return errors[0];
}

describe('lora-studio as a CLI (real processes)', () => {
  let run: TinyRun;
  let work: string;
  let data: string;
  let clsModel: string;

  before(() => {
    run = tinyRun({ task: 'causal-lm' });
    work = scratch();
    data = path.join(run.dir, 'eval.jsonl');
    clsModel = path.join(work, 'cls-model');
    fs.cpSync(run.modelDir, clsModel, { recursive: true });
  });
  after(() => {
    fs.rmSync(run.dir, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  });

  describe('help, version, usage errors', () => {
    it('a bare lora-studio prints the help on stdout and exits 0, as --help does', async () => {
      const bare = await runCli([]);
      assert.equal(bare.code, 0, bare.stderr);
      assert.match(bare.stdout, /^Usage: lora-studio/);
      assert.match(bare.stdout, /\n {2}train /);
      assert.equal(bare.stderr, '');
      assert.equal(bare.stdout, (await runCli(['--help'])).stdout);
    });

    it('--version prints package.json\'s version, from bin/lora-studio.js and from the bundle itself', async () => {
      for (const flag of ['--version', '-V']) {
        const res = await runCli([flag]);
        assert.equal(res.code, 0, res.stderr);
        assert.equal(res.stdout, `${VERSION}\n`);
      }
      const bundle = spawnSync(process.execPath, [path.join(REPO, 'dist', 'trainer', 'cli.js'), '--version'], { encoding: 'utf8' });
      assert.equal(bundle.status, 0, bundle.stderr);
      assert.equal(bundle.stdout, `${VERSION}\n`);
    });

    it('an unknown option: one error naming it, one hint line, exit 2; with --json one error event', async () => {
      const res = await runCli(['eval', run.modelDir, '--data', data, '--bogus']);
      assert.equal(res.code, 2);
      assert.equal(res.stdout, '');
      const lines = res.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 2, res.stderr);
      assertFails(res, { code: 2, field: '--bogus', message: /unknown option/ });
      assert.equal(lines[1], 'see lora-studio eval --help');
      assert.doesNotMatch(res.stderr, /Usage:|^error:/m);

      const json = await runCli(['eval', run.modelDir, '--data', data, '--bogus', '--json']);
      assert.equal(json.code, 2);
      assert.equal(json.events.length, 1, json.stdout);
      assert.equal(json.stdout.trim().split('\n').length, 1);
      const e = json.events[0] as Json;
      assert.equal(e.event, 'error');
      assert.equal(e.field, '--bogus');
    });

    it('other usage errors exit 2 with one line: unknown command (with a suggestion), a missing value, a bad choice', async () => {
      const cmd = await runCli(['evl']);
      assertFails(cmd, { code: 2, field: 'command', message: /unknown command "evl"; did you mean eval\?$/ });
      assert.match(cmd.stderr, /^see lora-studio --help$/m);
      assertFails(await runCli(['eval', run.modelDir, '--data']), { code: 2, field: '--data', message: /needs a value/ });
      assertFails(await runCli(['eval', run.modelDir]), { code: 2, field: '--data', message: /required/ });
      assertFails(await runCli(['eval', run.modelDir, '--data', data, '--backend', 'gpu']), { code: 2, field: '--backend', message: /"gpu" is invalid: allowed choices are tensorflow, / });
    });
  });

  describe('errors name the flag the user typed', () => {
    it('eval --data with a missing file names --data and the file, not data.train', async () => {
      const res = await runCli(['eval', run.modelDir, '--data', 'missing.jsonl'], { cwd: work });
      const line = assertFails(res, { field: '--data', file: path.join(work, 'missing.jsonl'), message: /file not found/ });
      assert.doesNotMatch(line, /data\.train/);
    });

    it('a missing --adapter folder names --adapter (eval, generate, classify)', async () => {
      const nowhere = path.join(work, 'no-adapter');
      assertFails(await runCli(['eval', run.modelDir, '--data', data, '--adapter', nowhere]), { field: '--adapter', file: nowhere });
      assertFails(await runCli(['generate', run.modelDir, '--prompt', 'hi', '--adapter', nowhere]), { field: '--adapter', file: nowhere });
      assertFails(await runCli(['classify', run.modelDir, '--text', 'hi', '--adapter', nowhere]), { field: '--adapter', file: nowhere });
    });

    it('generate with a seq-cls adapter points to classify (generate has no --task), and classify with a causal-lm one to generate', async () => {
      const seqCls = path.join(work, 'seq-cls-adapter');
      writeRandomAdapter(seqCls, run.modelDir, { task: 'seq-cls' });
      const line = assertFails(await runCli(['generate', run.modelDir, '--prompt', 'hi', '--adapter', seqCls]), { field: 'task_type', message: /use `lora-studio classify` instead/ });
      assert.doesNotMatch(line, /--task/);
      const causal = path.join(work, 'causal-adapter');
      writeRandomAdapter(causal, run.modelDir, { task: 'causal-lm' });
      assertFails(await runCli(['classify', run.modelDir, '--text', 'hi', '--adapter', causal]), { field: 'task_type', message: /use `lora-studio generate` instead/ });
    });
  });

  describe('flags with values that cannot work', () => {
    it('generate: --max-new-tokens 0, --temperature < 0, a bad --seed, an empty --prompt, a prompt that fills n_positions', async () => {
      const gen = (...a: string[]) => runCli(['generate', run.modelDir, ...a]);
      assertFails(await gen('--prompt', 'hi', '--max-new-tokens', '0'), { code: 2, field: '--max-new-tokens', message: /≥ 1/ });
      assertFails(await gen('--prompt', 'hi', '--temperature', '-0.5'), { code: 2, field: '--temperature', message: /≥ 0/ });
      assertFails(await gen('--prompt', 'hi', '--seed', 'abc'), { code: 2, field: '--seed' });
      assertFails(await gen('--prompt', 'hi', '--seed', '-1'), { code: 2, field: '--seed' });
      assertFails(await gen('--prompt', ''), { field: '--prompt', message: /empty/ });
      // the tiny model: byte-level tokens, n_positions 32
      const full = await gen('--prompt', 'a'.repeat(32));
      assertFails(full, { field: '--prompt', message: /32 tokens.*n_positions\) is 32.*at most 31/ });
      const fits = await gen('--prompt', 'a'.repeat(31), '--json');
      assert.equal(fits.code, 0, fits.stderr);
      assert.equal(((fits.events.at(-1) as Json).token_ids as number[]).length, 1, 'one position left: one token');
    });

    it('eval: --batch-size 0 and --max-length 0; classify: an empty --text', async () => {
      assertFails(await runCli(['eval', run.modelDir, '--data', data, '--batch-size', '0']), { code: 2, field: '--batch-size' });
      assertFails(await runCli(['eval', run.modelDir, '--data', data, '--max-length', '0']), { code: 2, field: '--max-length' });
      assertFails(await runCli(['eval', run.modelDir, '--data', data, '--batch-size', '2.5']), { code: 2, field: '--batch-size' });
      assertFails(await runCli(['classify', run.modelDir, '--text', '']), { field: '--text', message: /empty/ });
    });
  });

  describe('warnings', () => {
    const RANDOM_HEAD = /classification head \(score\.weight\) is randomly initialised/;

    it('eval --task seq-cls and classify without a trained head warn that it is random; with an adapter that has one they do not', async () => {
      const clsData = writeJsonl(path.join(work, 'cls.jsonl'), [{ text: 'yes a', label: 1 }, { text: 'no b', label: 0 }]);
      const evalRes = await runCli(['eval', run.modelDir, '--task', 'seq-cls', '--data', clsData]);
      assert.equal(evalRes.code, 0, evalRes.stderr);
      assert.match(evalRes.stderr, RANDOM_HEAD);
      const cls = await runCli(['classify', run.modelDir, '--text', 'yes a']);
      assert.equal(cls.code, 0, cls.stderr);
      assert.match(cls.stderr, RANDOM_HEAD);
      const adapter = path.join(work, 'head-adapter');
      writeRandomAdapter(adapter, run.modelDir, { task: 'seq-cls' });
      const withHead = await runCli(['classify', run.modelDir, '--text', 'yes a', '--adapter', adapter]);
      assert.equal(withHead.code, 0, withHead.stderr);
      assert.doesNotMatch(withHead.stderr, RANDOM_HEAD);
      assert.doesNotMatch(withHead.stderr, /newly initialized/);
    });

    it('inspect prints the fan_in_fan_out warning once, on stderr', async () => {
      const res = await runCli(['inspect', run.modelDir, '--target-modules', 'c_attn']);
      assert.equal(res.code, 0, res.stderr);
      const all = `${res.stdout}\n${res.stderr}`;
      assert.equal(all.match(/fan_in_fan_out is set to False/g)?.length, 1, all);
      assert.match(res.stderr, /^warning: .*fan_in_fan_out/m);
    });
  });

  describe('train', () => {
    let trained: TinyRun;
    before(() => {
      trained = tinyRun({ task: 'seq-cls', training: { num_train_epochs: 1 } });
    });
    after(() => fs.rmSync(trained.dir, { recursive: true, force: true }));

    it('writes base_model_name_or_path relative to each adapter folder when the run config gave a relative model', async () => {
      const res = await runCli(['train', '--config', trained.configFile]);
      assert.equal(res.code, 0, res.stderr);
      const base = (dir: string) => (JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as Json).base_model_name_or_path;
      assert.equal(base(trained.outputDir), '../model');
      const checkpoint = fs.readdirSync(trained.outputDir).find((d) => d.startsWith('checkpoint-'))!;
      assert.equal(base(path.join(trained.outputDir, checkpoint)), '../../model');
      // and it still loads: eval with the adapter runs
      const evalRes = await runCli(['eval', trained.modelDir, '--adapter', trained.outputDir, '--data', path.join(trained.dir, 'eval.jsonl')]);
      assert.equal(evalRes.code, 0, evalRes.stderr);
    });

    it('re-running a finished run says so and names --resume, exit 1', async () => {
      const res = await runCli(['train', '--config', trained.configFile]);
      const line = assertFails(res, { code: 1, field: 'training.output_dir', file: trained.outputDir });
      assert.match(line, /has finished \(step \d+ of \d+\)/);
      assert.match(line, /--resume/);
      assert.match(line, /resume_from_checkpoint: true/);
      assert.doesNotMatch(line, /another run/);
    });

    it('an absolute model path stays absolute', async () => {
      const cfg = JSON.parse(fs.readFileSync(trained.configFile, 'utf8')) as Json;
      const file = path.join(trained.dir, 'absolute.json');
      fs.writeFileSync(file, JSON.stringify({ ...cfg, model: trained.modelDir, training: { ...(cfg.training as Json), output_dir: 'out-abs', save_strategy: 'no', eval_strategy: 'no' } }));
      const res = await runCli(['train', '--config', file]);
      assert.equal(res.code, 0, res.stderr);
      const written = JSON.parse(fs.readFileSync(path.join(trained.dir, 'out-abs', 'adapter_config.json'), 'utf8')) as Json;
      assert.equal(written.base_model_name_or_path, trained.modelDir);
    });
  });

  it('an adapter of another architecture: the "built for" note resolves a relative base_model_name_or_path against the adapter folder', async () => {
    const adapter = path.join(work, 'llama-adapter');
    writeRandomAdapter(adapter, run.modelDir, { modules: { 'model.layers.0.self_attn.q_proj': [16, 16] } });
    const cfgFile = path.join(adapter, 'adapter_config.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), base_model_name_or_path: '../llama-base' }));
    const line = assertFails(await runCli(['eval', run.modelDir, '--adapter', adapter, '--data', data]), { field: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' });
    assert.ok(line.includes(`"../llama-base", i.e. ${path.join(work, 'llama-base')}`), line);
  });

  it('an internal error (not a LoraStudioError) prints one line and "please report", the stack only with LORA_STUDIO_DEBUG=1', () => {
    const cli = path.join(REPO, 'dist', 'trainer', 'cli.js');
    // A bug anywhere: here an exception thrown while a command runs, outside its promise.
    const script = `setTimeout(() => { throw new TypeError('boom from a bug'); }, 0); require(${JSON.stringify(cli)}).main(['node', 'lora-studio', 'inspect', ${JSON.stringify(run.modelDir)}, '--json']);`;
    const plain = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, LORA_STUDIO_DEBUG: '' } });
    assert.equal(plain.status, 1, plain.stderr);
    assert.match(plain.stderr, /^lora-studio: error: internal error: boom from a bug$/m);
    assert.match(plain.stderr, /please report/);
    assert.doesNotMatch(plain.stderr, JS_FRAME);
    const event = plain.stdout.trim().split('\n').map((l) => JSON.parse(l) as Json).find((e) => e.event === 'error');
    assert.equal(event?.message, 'internal error: boom from a bug');
    const debug = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, LORA_STUDIO_DEBUG: '1' } });
    assert.equal(debug.status, 1);
    assert.match(debug.stderr, /TypeError: boom from a bug\n\s+at /);
  });
});
