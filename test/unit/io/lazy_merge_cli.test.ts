/**
 * trainer/cli.ts loads each command's code when that command runs: the CLI bundled as the build bundles it
 * (esbuild, CJS), run in a child process, then asked what got initialised. `--version`, `--help` and a usage error
 * initialise no TensorFlow.js at all, and neither does `merge` (and its errors: the model families require their
 * model code only to make a model), which runs the rank-update kernel's binary beside the bundle as the build puts
 * it, and writes the same bytes as the in-process merge. Also: the backend names cli.ts writes out are
 * backend.ts's, in the same order.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as esbuild from 'esbuild';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BACKEND_NAMES } from '../../../trainer/backend';
import { saveAdapter } from '../../../trainer/lora/adapter_io';
import { writeRandomGPT2 } from '../../../trainer/models/gpt2/random_init';
import { gpt2WeightShapes } from '../../../trainer/models/gpt2/weights';
import { buildProgram } from '../../../trainer/cli';
import { assembleRankUpdate, RANK_UPDATE_WASM } from '../../../trainer/ops/rank_update';
import { mergeToFolder } from '../../../trainer/commands/merge';
import { randomAdapter } from './helpers';

const REPO = path.resolve(__dirname, '..', '..', '..');
let tmp: string;
let cli: string;
let probe: string;

/** Runs the bundled CLI's main(argv) and, at exit, writes what TensorFlow.js state exists to LORA_TEST_PROBE. */
const PROBE = `const fs = require('node:fs');
process.on('exit', () => {
  const e = globalThis._tfengine;
  fs.writeFileSync(process.env.LORA_TEST_PROBE, JSON.stringify({ engine: !!e, backends: e ? Object.keys(e.registryFactory) : [] }));
});
require(process.env.LORA_TEST_CLI).main(['node', 'lora-studio', ...process.argv.slice(2)]);
`;

function run(...args: string[]): { status: number | null; stdout: string; stderr: string; state: { engine: boolean; backends: string[] } } {
  const stateFile = path.join(tmp, 'state.json');
  fs.rmSync(stateFile, { force: true });
  const r = spawnSync(process.execPath, [probe, ...args], { env: { ...process.env, LORA_TEST_CLI: cli, LORA_TEST_PROBE: stateFile }, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, state: JSON.parse(fs.readFileSync(stateFile, 'utf8')) };
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-lazy-cli-'));
  await esbuild.build({
    absWorkingDir: REPO, entryPoints: { cli: 'trainer/cli.ts' }, outdir: tmp, bundle: true, platform: 'node', format: 'cjs',
    target: 'node20', logLevel: 'warning', external: ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'wabt', 'webgpu'],
  });
  cli = path.join(tmp, 'cli.js');
  fs.writeFileSync(path.join(tmp, RANK_UPDATE_WASM), await assembleRankUpdate());
  probe = path.join(tmp, 'probe.cjs');
  fs.writeFileSync(probe, PROBE);
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('the CLI loads a command\'s code only when it runs', () => {
  it('--version, --help, a command\'s --help and a usage error initialise no TensorFlow.js', () => {
    for (const args of [['--version'], ['--help'], ['merge', '--help'], ['train', '--help'], ['eval', 'm', '--backend', 'gpu']]) {
      const r = run(...args);
      assert.equal(r.status, args[0] === 'eval' ? 2 : 0, `${args.join(' ')}: ${r.stderr}`);
      assert.deepEqual(r.state, { engine: false, backends: [] }, args.join(' '));
    }
  });

  it('merge initialises no TensorFlow.js, and writes the same folder and --json result as the in-process merge', () => {
    const base = path.join(tmp, 'base');
    const cfg = writeRandomGPT2(base, { seed: 4 });
    const adapter = randomAdapter(gpt2WeightShapes(cfg, 'causal-lm'), ['transformer.h.0.attn.c_attn', 'transformer.h.1.mlp.c_fc'], 'causal-lm', { r: 4 }, 9);
    const adapterDir = path.join(tmp, 'adapter');
    saveAdapter(adapterDir, adapter);
    const out = path.join(tmp, 'merged');
    const r = run('merge', base, '--adapter', adapterDir, '--out', out, '--json');
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { backend: null, gpu: false, out_dir: out, merged_modules: 2, warnings: [] });
    assert.deepEqual(r.state, { engine: false, backends: [] });
    const inProcess = path.join(tmp, 'merged-in-process');
    mergeToFolder(base, adapterDir, inProcess);
    for (const f of fs.readdirSync(inProcess)) assert.ok(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(inProcess, f))), f);
    // An error inside the lazily loaded command still ends in fail(): exit 1, the one line, the --json event.
    const again = run('merge', base, '--adapter', adapterDir, '--out', out, '--json');
    assert.equal(again.status, 1);
    assert.match(again.stderr, /^lora-studio: error: /);
    assert.equal(JSON.parse(again.stdout).event, 'error');
    assert.deepEqual(again.state, { engine: false, backends: [] });
  });

  it('the --backend choices are backend.ts\'s BACKEND_NAMES, in order', () => {
    const eval_ = buildProgram().commands.find((c) => c.name() === 'eval')!;
    const opt = eval_.options.find((o) => o.long === '--backend')!;
    assert.deepEqual(opt.argChoices, [...BACKEND_NAMES]);
  });
});
