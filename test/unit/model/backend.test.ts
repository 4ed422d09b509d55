/**
 * Backend selection: forced backends load or fail with the reason, and the automatic order falls back from the
 * native binding (not installable here) past webgpu (here only a software adapter, which auto never takes) to
 * wasm, reporting what was tried. A forced webgpu takes the software adapter and says so.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, NATIVE_DIR_ENV } from '../../../trainer/backend';
import { LoraStudioError } from '../../../trainer/errors';
import { findAdapter, isSoftwareAdapter } from '../../../trainer/backend_webgpu';
import { webgpuSkipReason } from './webgpu_probe';

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

  it('without a preference, falls back past the missing native binding to wasm', { skip: nativeInstalled && 'skipped: tfjs-node is installed' }, async (t) => {
    if (await findAdapter(true).then(() => true, () => false)) return t.skip('skipped: Dawn offers a hardware adapter, so auto runs webgpu');
    const info = await initBackend();
    assert.equal(info.backend, 'wasm');
    assert.equal(info.gpu, false);
    assert.deepEqual(info.tried.map((t) => t.name), ['tensorflow', 'webgpu']);
    assert.match(info.tried[0].error, /tfjs-node/);
    assert.match(info.tried[1].error, /no hardware adapter|no WebGPU adapter|did not load|are not installed/);
  });

  it('a hardware adapter decides: Dawn offers one here, or auto skips webgpu and is not run on the GPU', { skip: nativeInstalled && 'skipped: tfjs-node is installed' }, async () => {
    const hardware = await findAdapter(true).then(() => true, () => false);
    const info = await initBackend();
    if (hardware) {
      assert.equal(info.backend, 'webgpu');
      assert.equal(info.gpu, true);
      assert.equal(info.adapter?.software, false);
      return;
    }
    assert.equal(info.backend, 'wasm');
    assert.equal(info.adapter, undefined);
    const why = info.tried.find((t) => t.name === 'webgpu')?.error ?? '';
    const anyAdapter = !(await webgpuSkipReason());
    // here: only llvmpipe, named in the reason; on a machine without any adapter, Dawn says it found none
    if (anyAdapter) assert.match(why, /Dawn offers no hardware adapter \(.*only a software adapter: .+\); the automatic order never takes a software one/);
    else assert.match(why, /no WebGPU adapter|did not load|are not installed/);
  });

  it('a forced webgpu takes the software adapter, reports gpu: false and the adapter', async (t) => {
    const skip = await webgpuSkipReason();
    if (skip) return t.skip(skip);
    const found = await findAdapter(false);
    const info = await initBackend('webgpu');
    assert.equal(info.backend, 'webgpu');
    assert.deepEqual(info.tried, []);
    assert.equal(info.gpu, !found.report.software);
    assert.equal(info.adapter?.software, found.report.software);
    assert.equal(info.adapter?.description, found.report.description);
    if (/llvmpipe/.test(found.report.device)) {
      assert.equal(info.gpu, false);
      assert.match(info.adapter!.description, /OpenGL ES .*Mesa/);
    }
    const x = tf.tensor1d([1, 2, 3]);
    assert.deepEqual(Array.from(await tf.mul(x, 2).data()), [2, 4, 6]);
    // the automatic order still passes over a software adapter already set up
    const auto = await initBackend();
    if (found.report.software) assert.notEqual(auto.backend, 'webgpu');
  });

  it('software adapters: llvmpipe, SwiftShader, lavapipe, WARP, a fallback adapter, a CPU-type adapter; not a GPU', () => {
    const a = (info: Record<string, unknown>, fallback?: boolean) => ({ info, isFallbackAdapter: fallback, features: new Set<string>(), limits: {}, requestDevice: async () => null });
    assert.ok(isSoftwareAdapter(a({ vendor: '', architecture: '', device: 'llvmpipe-llvm-15-0-6-256-bits-', description: 'OpenGL version OpenGL ES 3.2 Mesa 22.3.6' })));
    assert.ok(isSoftwareAdapter(a({ vendor: 'google', architecture: 'swiftshader', device: '', description: 'SwiftShader Device (Subzero)' })));
    assert.ok(isSoftwareAdapter(a({ vendor: 'mesa', device: 'llvmpipe (LLVM 15.0.6, 256 bits)', description: 'lavapipe' })));
    assert.ok(isSoftwareAdapter(a({ vendor: 'microsoft', description: 'Microsoft Basic Render Driver' })));
    assert.ok(isSoftwareAdapter(a({ vendor: 'microsoft', device: 'WARP', description: 'D3D12 WARP' })));
    assert.ok(isSoftwareAdapter(a({ vendor: 'x', description: 'y' }, true)));
    assert.ok(isSoftwareAdapter(a({ vendor: 'x', description: 'y', isFallbackAdapter: true })));
    assert.ok(isSoftwareAdapter(a({ vendor: 'x', description: 'y', type: 'CPU' })));
    assert.ok(!isSoftwareAdapter(a({ vendor: 'nvidia', architecture: 'hopper', device: 'NVIDIA H200', description: 'NVIDIA: 550.54' })));
    assert.ok(!isSoftwareAdapter(a({ vendor: 'apple', architecture: 'metal-3', device: '', description: 'Apple M2' })));
  });

  it('rejects an unknown backend name', async () => {
    await assert.rejects(initBackend('webgl' as never), /unknown backend "webgl"/);
  });
});
