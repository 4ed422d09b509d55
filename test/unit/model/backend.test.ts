/**
 * Backend selection: forced backends load or fail with the reason, and the automatic order falls back from the
 * native binding (not installable here) to wasm, reporting what was tried.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, NATIVE_DIR_ENV } from '../../../trainer/backend';
import { LoraStudioError } from '../../../trainer/errors';

const nativeInstalled = (() => {
  try {
    require.resolve('@tensorflow/tfjs-node');
    return true;
  } catch {
    return false;
  }
})();

describe('initBackend', () => {
  it('forces cpu and wasm, and reports what ran', async () => {
    assert.deepEqual(await initBackend('cpu'), { backend: 'cpu', gpu: false, tried: [] });
    assert.equal(tf.getBackend(), 'cpu');
    assert.deepEqual(await initBackend('wasm'), { backend: 'wasm', gpu: false, tried: [] });
    assert.equal(tf.getBackend(), 'wasm');
    assert.deepEqual(Array.from(tf.add(tf.tensor1d([1, 2]), 1).dataSync()), [2, 3]);
  });

  it('a forced native backend that cannot load is an error saying why, naming LORA_STUDIO_NATIVE_DIR', { skip: nativeInstalled && 'skipped: tfjs-node is installed' }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-'));
    const saved = process.env[NATIVE_DIR_ENV];
    process.env[NATIVE_DIR_ENV] = dir;
    try {
      await assert.rejects(initBackend('tensorflow'), (e: unknown) => {
        assert.ok(e instanceof LoraStudioError);
        assert.equal(e.field, 'backend');
        assert.match(e.message, /backend "tensorflow" cannot run/);
        assert.match(e.message, /@tensorflow\/tfjs-node-gpu/);
        assert.ok(e.message.includes(dir));
        return true;
      });
    } finally {
      if (saved === undefined) delete process.env[NATIVE_DIR_ENV];
      else process.env[NATIVE_DIR_ENV] = saved;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('without a preference, falls back past the missing native binding to wasm', { skip: nativeInstalled && 'skipped: tfjs-node is installed' }, async () => {
    const info = await initBackend();
    assert.equal(info.backend, 'wasm');
    assert.equal(info.gpu, false);
    assert.deepEqual(info.tried.map((t) => t.name), ['tensorflow']);
    assert.match(info.tried[0].error, /tfjs-node/);
  });

  it('rejects an unknown backend name', async () => {
    await assert.rejects(initBackend('webgl' as never), /unknown backend "webgl"/);
  });
});
