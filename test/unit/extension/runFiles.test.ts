/**
 * The run files the host handles without vscode: dotted-path edits of lora-run.json, model/output_dir
 * resolution, metrics.jsonl replay, the latest checkpoint, the template (valid against the trainer's own
 * run-config loader), adapter copies (temp name, then rename), merge output checks, the trainer CLI runner
 * against the real CLI, and the native-backend install failing clearly without network.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadRunConfig } from '../../../trainer/config/run_config';
import { writeRandomGPT2 } from '../../../trainer/models/gpt2/random_init';
import {
  adapterDirOf, applyEdits, checkMergeOut, copyAdapter, getPath, latestCheckpoint, looksLikeHubId, modelFieldFor, outputDirOf,
  parseMetrics, readAdapterConfig, resolveModel, runConfigTemplate, setPath,
} from '../../../extension/runFiles';
import { CliError, lastJsonObject, runCli } from '../../../extension/cli';
import { explainInstallFailure, installedNative, installNative, NativeInstallError, nativeModulesDir, nativePlan } from '../../../extension/native';

const ROOT = path.resolve(__dirname, '../../..');

describe('run files', () => {
  let tmp = '';
  before(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-files-'))));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('setPath / applyEdits: dotted paths, new sections, deletion, key order kept', () => {
    const cfg = { model: 'gpt2', lora: { r: 8, target_modules: ['c_attn'] } };
    const out = setPath(cfg, 'lora.target_modules', '.*c_attn');
    assert.deepEqual(out, { model: 'gpt2', lora: { r: 8, target_modules: '.*c_attn' } });
    assert.deepEqual(cfg.lora.target_modules, ['c_attn']); // a copy
    assert.deepEqual(setPath(cfg, 'training.learning_rate', 1e-4).training, { learning_rate: 1e-4 });
    assert.deepEqual(setPath(cfg, 'lora.r', undefined).lora, { target_modules: ['c_attn'] });
    const text = applyEdits(JSON.stringify(cfg), [{ path: 'lora.r', value: 16 }, { path: 'task', value: 'seq-cls' }]);
    assert.equal(text, JSON.stringify({ model: 'gpt2', lora: { r: 16, target_modules: ['c_attn'] }, task: 'seq-cls' }, null, 2) + '\n');
    assert.equal(getPath(JSON.parse(text), 'lora.r'), 16);
    assert.throws(() => applyEdits('[1]', []), /JSON object/);
  });

  it('model and output_dir resolve against the config file; hub ids stay ids', () => {
    const cfgFile = path.join(tmp, 'lora-run.json');
    fs.mkdirSync(path.join(tmp, 'models', 'tiny'), { recursive: true });
    assert.deepEqual(resolveModel(cfgFile, 'models/tiny'), { kind: 'folder', ref: path.join(tmp, 'models', 'tiny') });
    assert.deepEqual(resolveModel(cfgFile, 'gpt2'), { kind: 'hub', ref: 'gpt2' });
    assert.deepEqual(resolveModel(cfgFile, 'openai-community/gpt2'), { kind: 'hub', ref: 'openai-community/gpt2' });
    assert.equal(looksLikeHubId('../x'), false);
    assert.equal(modelFieldFor(cfgFile, path.join(tmp, 'models', 'tiny')), 'models/tiny');
    assert.equal(modelFieldFor(cfgFile, '/elsewhere/m'), '/elsewhere/m');
    assert.equal(outputDirOf(cfgFile, { training: { output_dir: 'runs/a' } }), path.join(tmp, 'runs', 'a'));
    assert.equal(outputDirOf(cfgFile, {}), path.join(tmp, 'trainer_output'));
  });

  it('metrics.jsonl: events back in order; a torn last line and junk are skipped', () => {
    const lines = [
      JSON.stringify({ event: 'start', backend: 'cpu', gpu: false, task: 'causal-lm', model: 'm', output_dir: 'o', trainable_params: 1, all_params: 2, total_steps: 2, num_train_epochs: 1, global_step: 0 }),
      JSON.stringify({ event: 'step', step: 1, epoch: 0.5, loss: 2, learning_rate: 1e-3, grad_norm: 1, tokens_per_second: 1, samples_per_second: 1, rss_mb: 1, eta_s: 1 }),
      '{"not":"an event"}',
      '{"event":"step","step":2,',
    ];
    const events = parseMetrics(lines.join('\n'));
    assert.deepEqual(events.map((e) => e.event), ['start', 'step']);
  });

  it('latestCheckpoint picks the largest step number, not the last name', () => {
    const out = path.join(tmp, 'ckpt');
    for (const n of [5, 40, 300]) fs.mkdirSync(path.join(out, `checkpoint-${n}`), { recursive: true });
    fs.writeFileSync(path.join(out, 'checkpoint-9999'), 'a file, not a folder');
    assert.equal(latestCheckpoint(out), path.join(out, 'checkpoint-300'));
    assert.equal(latestCheckpoint(path.join(tmp, 'none')), undefined);
  });

  it('the New Run Config template loads with the trainer\'s own run-config loader', () => {
    writeRandomGPT2(path.join(tmp, 'm'), { task: 'seq-cls' });
    fs.mkdirSync(path.join(tmp, 'data'), { recursive: true });
    fs.writeFileSync(path.join(tmp, 'data', 'train.jsonl'), '{"text":"a","label":0}\n');
    for (const task of ['causal-lm', 'seq-cls'] as const) {
      const file = path.join(tmp, `${task}.lora-run.json`);
      fs.writeFileSync(file, JSON.stringify(runConfigTemplate({ model: 'm', task, target_modules: '.*c_attn', schema: 'file:///x.json' }), null, 2));
      const cfg = loadRunConfig(file);
      assert.equal(cfg.task, task);
      assert.equal(cfg.lora.target_modules, '.*c_attn');
      if (task === 'seq-cls') assert.deepEqual(cfg.lora.modules_to_save, ['score']);
    }
  });

  it('copyAdapter: both files, temp name then rename, no leftovers; refuses an unfinished adapter', () => {
    const src = path.join(tmp, 'run-out');
    fs.mkdirSync(src, { recursive: true });
    assert.throws(() => copyAdapter(src, path.join(tmp, 'saved')), /no adapter_config.json or adapter_model.safetensors/);
    fs.writeFileSync(path.join(src, 'adapter_config.json'), '{"peft_type":"LORA","r":4,"target_modules":["c_attn"]}');
    fs.writeFileSync(path.join(src, 'adapter_model.safetensors'), Buffer.alloc(64, 7));
    assert.equal(adapterDirOf(src), src);
    const dest = path.join(tmp, 'saved');
    copyAdapter(src, dest);
    assert.deepEqual(fs.readdirSync(dest).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
    assert.deepEqual(fs.readFileSync(path.join(dest, 'adapter_model.safetensors')), Buffer.alloc(64, 7));
    assert.throws(() => copyAdapter(src, src), /itself/);
    const cfg = readAdapterConfig(dest);
    assert.ok(cfg.ok && cfg.config.r === 4);
    assert.match((readAdapterConfig(tmp) as { reason: string }).reason, /not a PEFT adapter folder/);
  });

  it('merge output: never the base or adapter folder (or inside them), never a non-empty folder', () => {
    const base = path.join(tmp, 'm');
    const adapter = path.join(tmp, 'saved');
    assert.match(checkMergeOut(base, adapter, base)!, /base model/);
    assert.match(checkMergeOut(base, adapter, path.join(base, 'merged'))!, /base model/);
    assert.match(checkMergeOut(base, adapter, adapter)!, /adapter/);
    assert.match(checkMergeOut(base, adapter, path.join(tmp, 'data'))!, /not empty/);
    assert.equal(checkMergeOut(base, adapter, path.join(tmp, 'm-merged')), undefined);
  });
});

describe('trainer CLI runner', () => {
  const cli = path.join(ROOT, 'dist', 'trainer', 'cli.js');
  const built = fs.existsSync(cli);

  it('lastJsonObject takes the last JSON object line', () => {
    assert.deepEqual(lastJsonObject('warning: x\n{"a":1}\nnoise\n{"b":2}\n'), { b: 2 });
    assert.equal(lastJsonObject('nothing here'), undefined);
  });

  it('runs the real CLI: inspect --json answers one object', { skip: !built && 'run `npm run build` first' }, async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-cli-'));
    try {
      writeRandomGPT2(path.join(tmp, 'm'));
      const r = await runCli(cli, 'inspect', [path.join(tmp, 'm'), '--target-modules', 'c_attn']);
      assert.match(r.line, /^trainable params: /);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('a CLI error becomes a CliError with the trainer\'s message', { skip: !built && 'run `npm run build` first' }, async () => {
    await assert.rejects(runCli(cli, 'merge', ['/no/such/model', '--adapter', '/no/such/adapter', '--out', path.join(os.tmpdir(), 'never-written')]), (e: unknown) => {
      assert.ok(e instanceof CliError);
      assert.equal(e.exitCode, 1);
      assert.match(e.message, /adapter_config\.json/);
      return true;
    });
  });

  it('a missing CLI says to build', async () => {
    await assert.rejects(runCli('/no/cli.js', 'inspect', []), /npm run build/);
  });
});

describe('native backend install', () => {
  it('names what each build needs (CUDA 11.2 + cuDNN 8.1 for the GPU build)', () => {
    assert.match(nativePlan('gpu').requirements, /CUDA 11\.2 and cuDNN 8\.1/);
    assert.equal(nativePlan('gpu').pkg, '@tensorflow/tfjs-node-gpu');
    assert.equal(nativePlan('cpu').pkg, '@tensorflow/tfjs-node');
  });

  it('without network it fails with a clear message, and nothing counts as installed', { timeout: 120_000 }, async () => {
    const storage = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-native-'));
    const lines: string[] = [];
    try {
      await assert.rejects(
        installNative(storage, 'cpu', {
          // an unreachable registry: what a machine without network sees, without waiting for DNS timeouts
          npmArgs: ['--registry', 'http://127.0.0.1:9/', '--fetch-retries', '0', '--fetch-timeout', '3000', '--prefer-online', '--cache', path.join(storage, 'npm-cache')],
          onLine: (l) => lines.push(l),
        }),
        (e: unknown) => {
          assert.ok(e instanceof NativeInstallError, String(e));
          assert.match(e.message, /^No network: npm could not reach the package registry to download @tensorflow\/tfjs-node/);
          assert.match(e.message, /WebAssembly\/CPU backend/);
          return true;
        },
      );
      assert.ok(lines.length > 0, 'npm output reaches the log');
      assert.equal(installedNative(storage), undefined);
      assert.equal(nativeModulesDir(storage), path.join(storage, 'native', 'node_modules'));
    } finally {
      fs.rmSync(storage, { recursive: true, force: true });
    }
  });

  it('a missing npm is named', async () => {
    const storage = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-native-'));
    try {
      await assert.rejects(installNative(storage, 'gpu', { npm: 'npm-that-does-not-exist' }), /npm was not found/);
    } finally {
      fs.rmSync(storage, { recursive: true, force: true });
    }
  });

  /** A stand-in for npm: installs `pkg` as a package.json only, or also with its binding (as a run install script). */
  function fakeNpm(dir: string, withBinding: boolean): string {
    const npm = path.join(dir, 'fake-npm.sh');
    fs.writeFileSync(npm, [
      '#!/bin/sh',
      'spec="$2"; pkg="${spec%@*}"',
      'mkdir -p "node_modules/$pkg" && echo "{\\"name\\":\\"$pkg\\"}" > "node_modules/$pkg/package.json"',
      withBinding ? 'mkdir -p "node_modules/$pkg/lib/napi-v8" && : > "node_modules/$pkg/lib/napi-v8/tfjs_binding.node"'
        : 'echo "npm warn install-scripts 1 package has install scripts not yet covered by allowScripts:"',
      'exit 0',
    ].join('\n') + '\n', { mode: 0o755 });
    return npm;
  }

  it('allows the install script in its package.json, and refuses a package whose script did not run', async () => {
    const storage = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-native-'));
    try {
      const manifest = path.join(storage, 'native', 'package.json');
      await assert.rejects(installNative(storage, 'gpu', { npm: fakeNpm(storage, false) }), (e: unknown) => {
        assert.ok(e instanceof NativeInstallError, String(e));
        assert.match(e.message, /^npm installed @tensorflow\/tfjs-node-gpu, but its install script did not put the libtensorflow binding in place \(.*napi-v\*.*tfjs_binding\.node is missing\)\. npm skipped its install script/);
        assert.match(e.message, /Or install it by hand: `npm install @tensorflow\/tfjs-node-gpu@4\.22\.0`/);
        return true;
      });
      const m = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name: string; allowScripts: Record<string, boolean> };
      assert.deepEqual(m.allowScripts, { '@tensorflow/tfjs-node-gpu': true });
      // a second package joins the first; what else the manifest holds stays
      fs.writeFileSync(manifest, JSON.stringify({ ...m, dependencies: { webgpu: '0.6.2' } }));
      assert.equal(await installNative(storage, 'cpu', { npm: fakeNpm(storage, true) }), '@tensorflow/tfjs-node');
      const m2 = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { allowScripts: Record<string, boolean>; dependencies: unknown };
      assert.deepEqual(m2.allowScripts, { '@tensorflow/tfjs-node-gpu': true, '@tensorflow/tfjs-node': true });
      assert.deepEqual(m2.dependencies, { webgpu: '0.6.2' });
      fs.writeFileSync(manifest, '{ not json');
      await assert.rejects(installNative(storage, 'cpu', { npm: fakeNpm(storage, true) }), /native[/\\]package\.json is not valid JSON .*fix or delete it/);
    } finally {
      fs.rmSync(storage, { recursive: true, force: true });
    }
  });

  it('explains other failures with the tail of npm output', () => {
    assert.match(explainInstallFailure('npm ERR! code E404\nnpm ERR! 404 Not Found', 1, nativePlan('cpu'), '/x'), /failed \(exit code 1\): .*404/);
  });
});
