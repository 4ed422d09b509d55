/**
 * The extension's checks of the trainer CLI's --json results (extension/cliResults.ts) and runCli's use of them:
 * a result of the protocol's shape passes as it is; a missing field, a wrong type or a non-object becomes one
 * message naming the command and the field; runCli turns that into a CliError (a fake CLI script prints the
 * results), and the real CLI's generate/eval/merge/classify results pass.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AnalyzeResult, ClassifyResult, EvalResult, GenerateResult, InspectResult, MergeResult, ResultBackend } from '../../../trainer/protocol';
import { checkCliResult, cliResultProblem, type CliCommand, type CliResults } from '../../../extension/cliResults';
import { CliError, runCli } from '../../../extension/cli';
import { writeRandomGPT2 } from '../../../trainer/models/gpt2/random_init';

const ROOT = path.resolve(__dirname, '../../..');

/** One well-formed result per command, typed by the protocol (so the examples follow it). */
const GOOD: { [C in CliCommand]: CliResults[C] } = {
  inspect: {
    backend: null, gpu: false, model_dir: '/m', model_type: 'gpt2', task: 'causal-lm', num_labels: 2, modules: [], targets: [], modules_to_save: [],
    warnings: [], fan_in_fan_out: true, trainable_params: 10, all_params: 100, line: 'trainable params: 10 || all params: 100 || trainable%: 10.0000',
  } satisfies ResultBackend & InspectResult,
  merge: { backend: null, gpu: false, out_dir: '/m-merged', merged_modules: 4, warnings: [] } satisfies MergeResult,
  eval: { backend: 'wasm', gpu: false, task: 'seq-cls', loss: 0.69, accuracy: 0.5, f1: 0.4, num_examples: 8, id2label: { 0: 'negative', 1: 'positive' } } satisfies EvalResult,
  generate: { backend: 'cpu', gpu: false, prompt: 'Once', completion: ' upon', token_ids: [510] } satisfies GenerateResult,
  classify: { backend: 'webgpu', gpu: true, adapter: { vendor: 'v', architecture: 'a', device: 'd', description: '', software: false }, text: 'hi', label: 'positive', label_id: 1, probabilities: { negative: 0.25, positive: 0.75 } } satisfies ClassifyResult,
  analyze: { backend: null, gpu: false, adapter: '/a', modules: [], similarity: [], warnings: [] } satisfies Pick<ResultBackend, 'backend' | 'gpu'> & AnalyzeResult,
};

/** The fields each result must have (the extension reads them, or the protocol declares them required). */
const REQUIRED: { [C in CliCommand]: string[] } = {
  inspect: ['backend', 'gpu', 'model_dir', 'model_type', 'task', 'num_labels', 'modules', 'targets', 'modules_to_save', 'warnings', 'fan_in_fan_out', 'trainable_params', 'all_params', 'line'],
  merge: ['backend', 'gpu', 'out_dir', 'merged_modules', 'warnings'],
  eval: ['backend', 'gpu', 'task', 'loss'],
  generate: ['backend', 'gpu', 'prompt', 'completion', 'token_ids'],
  classify: ['backend', 'gpu', 'text', 'label', 'label_id', 'probabilities'],
  analyze: ['backend', 'gpu', 'adapter', 'modules', 'similarity', 'warnings'],
};

const COMMANDS = Object.keys(GOOD) as CliCommand[];
const without = (o: object, key: string) => Object.fromEntries(Object.entries(o).filter(([k]) => k !== key));

describe('trainer CLI results: shape checks', () => {
  it('a result of the protocol\'s shape passes, as the same object', () => {
    for (const c of COMMANDS) {
      assert.equal(cliResultProblem(c, GOOD[c]), undefined, c);
      assert.equal(checkCliResult(c, GOOD[c]), GOOD[c]);
    }
  });

  it('each required field, when missing, is named; an optional one may be missing', () => {
    for (const c of COMMANDS) {
      for (const key of Object.keys(GOOD[c])) {
        const problem = cliResultProblem(c, without(GOOD[c], key));
        if (REQUIRED[c].includes(key)) assert.match(problem ?? '', new RegExp(`^${key}: should be .*, got nothing$`), `${c}.${key}`);
        else assert.equal(problem, undefined, `${c}.${key} is optional`);
      }
    }
  });

  it('a wrong type is named with what it should be and what came', () => {
    assert.equal(cliResultProblem('eval', { ...GOOD.eval, loss: '0.5' }), 'loss: should be a number or null, got "0.5"');
    assert.match(cliResultProblem('eval', { ...GOOD.eval, task: 'lm' })!, /^task: should be "causal-lm" or "seq-cls"/);
    assert.match(cliResultProblem('eval', { ...GOOD.eval, id2label: { 0: 1 } })!, /^id2label: should be an object of strings/);
    assert.match(cliResultProblem('generate', { ...GOOD.generate, token_ids: [1, 2.5] })!, /^token_ids: should be a list of token ids/);
    assert.match(cliResultProblem('generate', { ...GOOD.generate, completion: null })!, /^completion: should be a string, got null$/);
    assert.match(cliResultProblem('classify', { ...GOOD.classify, probabilities: { a: 'x' } })!, /^probabilities: should be an object of numbers/);
    assert.match(cliResultProblem('classify', { ...GOOD.classify, label_id: -1 })!, /^label_id: should be a whole number ≥ 0, got -1$/);
    assert.match(cliResultProblem('merge', { ...GOOD.merge, warnings: ['a', 3] })!, /^warnings: should be a list of strings/);
    assert.match(cliResultProblem('merge', { ...GOOD.merge, gpu: 'no' })!, /^gpu: should be true or false/);
    assert.match(cliResultProblem('classify', { ...GOOD.classify, adapter: 'llvmpipe' })!, /^adapter: should be an object/);
  });

  it('a value in the message is cut short', () => {
    const problem = cliResultProblem('generate', { ...GOOD.generate, prompt: 7, completion: 'x'.repeat(1000) })!;
    assert.equal(problem, 'prompt: should be a string, got 7');
    const long = cliResultProblem('generate', { ...GOOD.generate, completion: ['x'.repeat(1000)] })!;
    assert.ok(long.length < 120, long);
    assert.match(long, /…$/);
  });

  it('not an object at all', () => {
    for (const v of [null, [], 'text', 3]) assert.match(cliResultProblem('merge', v)!, /^not a JSON object: /);
  });

  it('non-finite metrics (null in JSON) and unknown fields from a newer CLI pass', () => {
    assert.equal(cliResultProblem('eval', { backend: 'wasm', gpu: false, task: 'causal-lm', loss: null, perplexity: null, num_tokens: 0, extra: { x: 1 } }), undefined);
  });

  it('checkCliResult throws naming the command', () => {
    assert.throws(() => checkCliResult('merge', without(GOOD.merge, 'out_dir')), { message: 'the trainer CLI\'s merge result is malformed: out_dir: should be a string, got nothing' });
  });
});

describe('runCli checks what the child prints', () => {
  let tmp = '';
  /** A stand-in CLI: prints `stdout` (with its argv in place of "ARGV") and exits with `code`. */
  const fakeCli = (name: string, stdout: string, code = 0) => {
    const file = path.join(tmp, `${name}.js`);
    fs.writeFileSync(file, `process.stdout.write(${JSON.stringify(stdout)}.replace('"ARGV"', JSON.stringify(process.argv.slice(2).join(' '))));\nprocess.exitCode = ${code};\n`);
    return file;
  };
  before(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-cli-results-'))));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('a well-formed result resolves, with the command and --json passed', async () => {
    const cli = fakeCli('good', `progress…\n${JSON.stringify({ ...GOOD.generate, prompt: 'ARGV' })}\n`);
    const r = await runCli(cli, 'generate', ['/m', '--prompt', 'Once']);
    assert.equal(r.prompt, 'generate /m --prompt Once --json');
    assert.deepEqual(r.token_ids, [510]);
  });

  it('a malformed result (exit 0) rejects with a CliError naming the field', async () => {
    const cli = fakeCli('bad', `${JSON.stringify({ backend: 'wasm', gpu: false, task: 'causal-lm', loss: 'high' })}\n`);
    await assert.rejects(runCli(cli, 'eval', []), (e: unknown) => {
      assert.ok(e instanceof CliError);
      assert.equal(e.exitCode, 0);
      assert.equal(e.message, 'the trainer CLI\'s eval result is malformed: loss: should be a number or null, got "high"');
      return true;
    });
  });

  it('another command\'s result is not taken for this one', async () => {
    const cli = fakeCli('other', `${JSON.stringify(GOOD.merge)}\n`);
    await assert.rejects(runCli(cli, 'classify', []), /classify result is malformed: text: should be a string, got nothing/);
  });

  it('an error object still wins over the check', async () => {
    const cli = fakeCli('error', `${JSON.stringify({ event: 'error', message: 'no such folder', file: '/m', field: '--adapter' })}\n`, 1);
    await assert.rejects(runCli(cli, 'merge', []), (e: unknown) => e instanceof CliError && e.message === 'no such folder' && e.field === '--adapter');
  });
});

describe('the real CLI\'s results pass the checks', () => {
  const cli = path.join(ROOT, 'dist', 'trainer', 'cli.js');
  const built = fs.existsSync(cli);
  let tmp = '';
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-cli-real-'));
    writeRandomGPT2(path.join(tmp, 'm'));
    writeRandomGPT2(path.join(tmp, 'cls'), { task: 'seq-cls' });
    fs.writeFileSync(path.join(tmp, 'data.jsonl'), ['hello world', 'the cat sat'].map((text) => JSON.stringify({ text })).join('\n') + '\n');
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('generate, eval and classify on a random GPT-2', { skip: !built && 'run `npm run build` first', timeout: 120_000 }, async () => {
    const gen = await runCli(cli, 'generate', [path.join(tmp, 'm'), '--prompt', 'hello', '--max-new-tokens', '2', '--backend', 'cpu']);
    assert.equal(gen.prompt, 'hello');
    assert.ok(gen.token_ids.length >= 1 && gen.token_ids.length <= 2);
    const ev = await runCli(cli, 'eval', [path.join(tmp, 'm'), '--data', path.join(tmp, 'data.jsonl'), '--backend', 'cpu']);
    assert.equal(ev.task, 'causal-lm');
    assert.ok(typeof ev.loss === 'number' && ev.loss > 0);
    const cls = await runCli(cli, 'classify', [path.join(tmp, 'cls'), '--text', 'hello', '--backend', 'cpu']);
    assert.ok(Object.hasOwn(cls.probabilities, cls.label));
  });
});
