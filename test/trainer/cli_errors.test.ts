/**
 * Bad input through the real `lora-studio` process: each error goes to stderr with a non-zero exit code and
 * names the file and the field; with --json, stdout carries {"event":"error", message, file, field}.
 * Cases: missing config.json, corrupt safetensors, adapter shape mismatch, an adapter of another architecture,
 * unknown model_type, invalid regexes (flag and run config), unknown run-config fields, too many bad data rows,
 * generate's --top-p / --top-k (usage errors, exit 2), and Hub dataset / model ids with the network unreachable.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { closedPort, runCli, scratch, tinyRun, writeJsonl, writeRandomAdapter, type CliResult, type TinyRun } from './helpers';
import { writeRandomGPT2 } from '../../trainer/models/gpt2/random_init';

interface Expected {
  /** the file the error names (exactly, or a regex) */
  file: string | RegExp;
  /** the field it names; null: no field (a missing file) */
  field: string | RegExp | null;
  message: RegExp;
}

/** Runs ARGS with --json and checks stderr, the exit code and the error event. Returns the result. */
async function expectError(args: string[], want: Expected, env?: NodeJS.ProcessEnv): Promise<CliResult> {
  const res = await runCli([...args, '--json'], { env });
  const what = `lora-studio ${args.join(' ')}`;
  assert.notEqual(res.code, 0, `${what} should fail; stdout: ${res.stdout}`);
  assert.equal(res.signal, null);
  const line = res.stderr.split('\n').find((l) => l.startsWith('lora-studio: error: '));
  assert.ok(line, `${what}: no error line on stderr: ${res.stderr}`);
  const err = res.events.at(-1) as Record<string, unknown>;
  assert.equal(err?.event, 'error', `${what}: last stdout line ${res.stdout}`);
  const match = (v: unknown, w: string | RegExp) => (typeof w === 'string' ? v === w : typeof v === 'string' && w.test(v));
  assert.ok(match(err.file, want.file), `${what}: file ${String(err.file)} ≠ ${String(want.file)}`);
  if (want.field === null) assert.equal(err.field, undefined, `${what}: field`);
  else assert.ok(match(err.field, want.field), `${what}: field ${String(err.field)} ≠ ${String(want.field)}`);
  assert.match(err.message as string, want.message, what);
  // stderr names the same file and field
  assert.ok(line.includes(String(err.file)), `${what}: stderr lacks the file: ${line}`);
  if (err.field) assert.ok(line.includes(String(err.field)), `${what}: stderr lacks the field: ${line}`);
  return res;
}

describe('lora-studio errors (real processes)', () => {
  let run: TinyRun;
  let work: string;
  let data: string;

  before(() => {
    run = tinyRun({ task: 'causal-lm' });
    work = scratch();
    data = path.join(run.dir, 'eval.jsonl');
  });
  after(() => {
    fs.rmSync(run.dir, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  });

  /** A model folder with the tiny model's config and tokenizer, and `weights` as model.safetensors. */
  const folderWith = (name: string, weights: Buffer): string => {
    const dir = path.join(work, name);
    fs.mkdirSync(dir);
    for (const f of ['config.json', 'tokenizer.json']) fs.copyFileSync(path.join(run.modelDir, f), path.join(dir, f));
    fs.writeFileSync(path.join(dir, 'model.safetensors'), weights);
    return dir;
  };
  const safetensors = (header: string | null, headerLen: bigint | null, data: Buffer): Buffer => {
    const h = Buffer.from(header ?? '', 'utf8');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(headerLen ?? BigInt(h.length));
    return Buffer.concat([len, h, data]);
  };

  it('errors go to stderr only, with a non-zero exit; without --json stdout stays empty', async () => {
    const res = await runCli(['eval', path.join(work, 'nowhere'), '--data', data]);
    assert.notEqual(res.code, 0);
    assert.equal(res.stdout, '');
    assert.match(res.stderr, /^lora-studio: error: /m);
    assert.ok(res.stderr.includes(path.join(work, 'nowhere')), res.stderr);
  });

  it('a backend that cannot run names the backend field', async () => {
    const res = await runCli(['eval', run.modelDir, '--data', data, '--backend', 'tensorflow', '--json']);
    // only meaningful where tfjs-node is absent (as in CI); where it is installed the command succeeds
    if (res.code === 0) return;
    const err = res.events.at(-1) as Record<string, unknown>;
    assert.equal(err.event, 'error');
    assert.equal(err.field, 'backend');
    assert.match(err.message as string, /tensorflow/);
    assert.match(res.stderr, /^lora-studio: error: backend: /m);
  });

  it('usage errors (an invalid --backend choice, a missing required option) with --json also print the error event', async () => {
    for (const args of [['eval', run.modelDir, '--data', data, '--backend', 'gpu'], ['merge', run.modelDir, '--out', path.join(work, 'x')]]) {
      const res = await runCli([...args, '--json']);
      assert.notEqual(res.code, 0);
      const err = res.events.at(-1) as Record<string, unknown> | undefined;
      assert.equal(err?.event, 'error', `lora-studio ${args.join(' ')} --json: stdout ${JSON.stringify(res.stdout)}`);
      assert.match(String(err?.field), /--backend|--adapter/);
    }
  });

  it('missing config.json (inspect, eval, merge)', async () => {
    const dir = path.join(work, 'no-config');
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(run.modelDir, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    const want = { file: path.join(dir, 'config.json'), field: null, message: /missing.*config\.json/ };
    await expectError(['inspect', dir], want);
    await expectError(['eval', dir, '--data', data], want);
    const adapter = path.join(work, 'adapter-ok');
    writeRandomAdapter(adapter, run.modelDir);
    await expectError(['merge', dir, '--adapter', adapter, '--out', path.join(work, 'never')], want);
    assert.ok(!fs.existsSync(path.join(work, 'never')));
  });

  it('corrupt safetensors: an absurd header length, and header offsets past the end of the file', async () => {
    const absurd = folderWith('absurd', safetensors('{}', 1n << 40n, Buffer.alloc(8)));
    await expectError(['eval', absurd, '--data', data], { file: path.join(absurd, 'model.safetensors'), field: 'header', message: /absurd/ });
    const header = JSON.stringify({ 'transformer.wte.weight': { dtype: 'F32', shape: [257, 16], data_offsets: [0, 257 * 16 * 4] } });
    const past = folderWith('past-end', safetensors(header, null, Buffer.alloc(64)));
    await expectError(['eval', past, '--data', data], { file: path.join(past, 'model.safetensors'), field: 'transformer.wte.weight.data_offsets', message: /past/ });
    const adapter = path.join(work, 'adapter-for-past');
    writeRandomAdapter(adapter, run.modelDir);
    await expectError(['merge', past, '--adapter', adapter, '--out', path.join(work, 'never2')], { file: path.join(past, 'model.safetensors'), field: 'transformer.wte.weight.data_offsets', message: /past/ });
    // a corrupt adapter file names the adapter file
    const badAdapter = path.join(work, 'adapter-corrupt');
    writeRandomAdapter(badAdapter, run.modelDir);
    fs.writeFileSync(path.join(badAdapter, 'adapter_model.safetensors'), safetensors('{}', 1n << 40n, Buffer.alloc(8)));
    await expectError(['eval', run.modelDir, '--adapter', badAdapter, '--data', data], { file: path.join(badAdapter, 'adapter_model.safetensors'), field: 'header', message: /absurd/ });
  });

  it('an adapter whose shapes do not match the model (made for n_embd 32, used on n_embd 16)', async () => {
    const big = path.join(work, 'model32');
    writeRandomGPT2(big, { config: { n_embd: 32, n_head: 2, n_layer: 2, n_positions: 32 } });
    const adapter = path.join(work, 'adapter32');
    writeRandomAdapter(adapter, big, { targets: ['c_attn'], r: 2 });
    const want = {
      file: path.join(adapter, 'adapter_model.safetensors'),
      field: 'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight',
      message: /shape mismatch.*\[2,16\].*\[2,32\]/,
    };
    await expectError(['eval', run.modelDir, '--adapter', adapter, '--data', data], want);
    await expectError(['merge', run.modelDir, '--adapter', adapter, '--out', path.join(work, 'never3')], want);
    await expectError(['generate', run.modelDir, '--adapter', adapter, '--prompt', 'hi'], want);
    assert.ok(!fs.existsSync(path.join(work, 'never3')));
  });

  it('an adapter built for another architecture (model.layers.0.self_attn.q_proj)', async () => {
    const adapter = path.join(work, 'adapter-llama');
    writeRandomAdapter(adapter, run.modelDir, { modules: { 'model.layers.0.self_attn.q_proj': [16, 16], 'model.layers.0.self_attn.v_proj': [16, 16] } });
    const want = {
      file: path.join(adapter, 'adapter_model.safetensors'),
      field: 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
      message: /another architecture/,
    };
    await expectError(['eval', run.modelDir, '--adapter', adapter, '--data', data], want);
    await expectError(['merge', run.modelDir, '--adapter', adapter, '--out', path.join(work, 'never4')], want);
  });

  it('unknown model_type ("phi3"; llama/qwen2/mistral are the Llama family, llama_cli.test.ts)', async () => {
    const dir = path.join(work, 'phi3');
    fs.mkdirSync(dir);
    const cfg = JSON.parse(fs.readFileSync(path.join(run.modelDir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, model_type: 'phi3', architectures: ['Phi3ForCausalLM'] }));
    const want = { file: path.join(dir, 'config.json'), field: 'model_type', message: /unknown model_type "phi3"; supported: "gpt2", "llama", "qwen2", "mistral"/ };
    await expectError(['inspect', dir], want);
    await expectError(['eval', dir, '--data', data], want);
  });

  it('an invalid regex in --target-modules and in a run config (inspect and train)', async () => {
    await expectError(['inspect', run.modelDir, '--target-modules', 'c_(attn'], { file: '<command line>', field: /target.modules/, message: /regular expression/ });
    const cfg = JSON.parse(fs.readFileSync(run.configFile, 'utf8'));
    const file = path.join(run.dir, 'bad-regex.json');
    fs.writeFileSync(file, JSON.stringify({ ...cfg, lora: { ...cfg.lora, target_modules: 'h\\.[0-9' }, training: { ...cfg.training, output_dir: 'out-regex' } }));
    const want = { file, field: 'lora.target_modules', message: /regular expression/ };
    await expectError(['inspect', run.modelDir, '--config', file], want);
    await expectError(['train', '--config', file], want);
    assert.ok(!fs.existsSync(path.join(run.dir, 'out-regex', 'adapter_model.safetensors')));
  });

  it('a malformed run config: an unknown field gets a did-you-mean; a wrong type names the field', async () => {
    const cfg = JSON.parse(fs.readFileSync(run.configFile, 'utf8'));
    const unknown = path.join(run.dir, 'unknown-field.json');
    fs.writeFileSync(unknown, JSON.stringify({ ...cfg, training: { ...cfg.training, learning_rte: 0.1 } }));
    await expectError(['train', '--config', unknown], { file: unknown, field: 'training.learning_rte', message: /did you mean "learning_rate"/ });
    await expectError(['inspect', run.modelDir, '--config', unknown], { file: unknown, field: 'training.learning_rte', message: /did you mean "learning_rate"/ });
    const wrongType = path.join(run.dir, 'wrong-type.json');
    fs.writeFileSync(wrongType, JSON.stringify({ ...cfg, lora: { ...cfg.lora, r: 'four' } }));
    await expectError(['train', '--config', wrongType], { file: wrongType, field: 'lora.r', message: /./ });
    const notJson = path.join(run.dir, 'not-json.json');
    fs.writeFileSync(notJson, '{"model": "./model",');
    await expectError(['train', '--config', notJson], { file: notJson, field: null, message: /JSON/ });
  });

  it('a dataset with too many bad rows lists their line numbers', async () => {
    const rows: unknown[] = [...Array.from({ length: 10 }, () => ({ text: 'fine text' })), { txt: 'no text column' }, { text: '' }, { text: 42 }];
    const bad = writeJsonl(path.join(run.dir, 'bad-rows.jsonl'), rows);
    const cfg = JSON.parse(fs.readFileSync(run.configFile, 'utf8'));
    const file = path.join(run.dir, 'bad-rows.json');
    fs.writeFileSync(file, JSON.stringify({ ...cfg, data: { ...cfg.data, train: 'bad-rows.jsonl' }, training: { ...cfg.training, output_dir: 'out-bad' } }));
    await expectError(['train', '--config', file], { file: bad, field: 'data.train', message: /3 of 13 rows.*line 11.*line 12.*line 13/ });
  });

  it('generate: a bad --top-p or --top-k is a usage error (exit 2) naming the flag; good ones run', async () => {
    const gen = (...a: string[]) => ['generate', run.modelDir, '--prompt', 'hi', '--temperature', '1', ...a];
    for (const p of ['0', '-0.1', '1.5', 'abc', 'NaN', '']) {
      const res = await expectError(gen('--top-p', p), { file: '<command line>', field: '--top-p', message: /greater than 0 and at most 1/ });
      assert.equal(res.code, 2, `--top-p ${JSON.stringify(p)}`);
    }
    for (const k of ['-1', '2.5', 'ten', 'Infinity']) {
      const res = await expectError(gen('--top-k', k), { file: '<command line>', field: '--top-k', message: /whole number ≥ 0/ });
      assert.equal(res.code, 2, `--top-k ${JSON.stringify(k)}`);
    }
    // the edges are accepted: top_k 1 is greedy, whatever the temperature and seed
    const tokens = async (...a: string[]) => {
      const res = await runCli([...gen('--max-new-tokens', '5', ...a), '--json']);
      assert.equal(res.code, 0, res.stderr);
      return (res.events.at(-1) as Record<string, unknown>).token_ids;
    };
    const greedy = await tokens('--temperature', '0');
    assert.deepEqual(await tokens('--top-k', '1', '--seed', '7'), greedy);
    assert.deepEqual(await tokens('--top-p', '1e-9', '--top-k', '0', '--seed', '8'), greedy);
  });

  describe('Hub ids with the network unreachable', () => {
    let env: NodeJS.ProcessEnv;
    let cache: string;
    before(async () => {
      cache = path.join(work, 'hf-cache');
      env = { HF_ENDPOINT: `http://127.0.0.1:${await closedPort()}`, HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '', HF_TOKEN: '' };
    });

    it('a Hub dataset id in the run config', async () => {
      const cfg = JSON.parse(fs.readFileSync(run.configFile, 'utf8'));
      const file = path.join(run.dir, 'hub-data.json');
      fs.writeFileSync(file, JSON.stringify({ ...cfg, data: { ...cfg.data, train: 'stanfordnlp/imdb' }, training: { ...cfg.training, output_dir: 'out-hub' } }));
      const res = await expectError(['train', '--config', file], { file, field: 'data.train', message: /stanfordnlp\/imdb.*could not be reached/ }, env);
      assert.ok(res.stderr.includes(cache), 'names the cache it looked in');
    });

    it('a Hub model id for eval', async () => {
      const res = await expectError(['eval', 'openai-community/gpt2', '--data', data], { file: /openai-community\/gpt2/, field: /model/, message: /could not be reached/ }, env);
      assert.ok(res.stderr.includes(cache), 'names the cache it looked in');
      assert.ok(!fs.existsSync(path.join(cache, 'models--openai-community--gpt2', 'refs')), 'nothing half-downloaded is recorded');
    });
  });
});
