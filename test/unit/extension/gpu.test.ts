/**
 * "Install GPU Backend…": the plan and paths (extension/gpu.ts), a failed install saying why, and the trainer
 * loading `webgpu` from the install folder it is told through LORA_STUDIO_NATIVE_DIR, from a bundle outside any
 * node_modules (as the VSIX runs it), with the package symlinked from this checkout's node_modules.
 */
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import { DAWN_PLATFORMS, dawnNodePath, dawnPlatform, gpuPlan, INSTALL_GPU_COMMAND, installedGpu, installGpu, WEBGPU_VERSION, webgpuDir } from '../../../extension/gpu';
import { NativeInstallError, nativeModulesDir } from '../../../extension/native';
import { webgpuSkipReason } from '../model/webgpu_probe';

const REPO = path.resolve(__dirname, '..', '..', '..');
const temps: string[] = [];
const tmp = (prefix: string) => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  temps.push(d);
  return d;
};
afterEach(() => {
  for (const d of temps.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('GPU backend install: plan and paths', () => {
  it('pins the webgpu version of package.json and node_modules', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    assert.equal(pkg.dependencies.webgpu, WEBGPU_VERSION);
    assert.equal((JSON.parse(fs.readFileSync(path.join(REPO, 'node_modules', 'webgpu', 'package.json'), 'utf8')) as { version: string }).version, WEBGPU_VERSION);
    assert.equal(gpuPlan().spec, `webgpu@${WEBGPU_VERSION}`);
    assert.equal(gpuPlan().pkg, 'webgpu');
    assert.match(gpuPlan().requirements, /Vulkan on Linux, Metal on macOS, D3D12 on Windows/);
  });

  it('knows the platforms webgpu ships a dawn.node for', () => {
    assert.deepEqual([...DAWN_PLATFORMS].sort(), fs.readdirSync(path.join(REPO, 'node_modules', 'webgpu', 'dist')).sort());
    assert.equal(dawnPlatform('linux', 'x64'), 'linux-x64');
    assert.equal(dawnPlatform('darwin', 'arm64'), 'darwin-universal');
    assert.equal(dawnPlatform('darwin', 'x64'), 'darwin-universal');
    assert.equal(dawnPlatform('win32', 'x64'), 'win32-x64');
    assert.equal(dawnPlatform('linux', 'ia32'), undefined);
    assert.equal(dawnPlatform('freebsd', 'x64'), undefined);
  });

  it('installs into the native backend folder and counts as installed only with this platform’s dawn.node', () => {
    const storage = tmp('lora-gpu-');
    assert.equal(webgpuDir(storage), path.join(nativeModulesDir(storage), 'webgpu'));
    assert.equal(dawnNodePath(storage, 'linux', 'x64'), path.join(storage, 'native', 'node_modules', 'webgpu', 'dist', 'linux-x64', 'dawn.node'));
    assert.equal(installedGpu(storage, 'linux', 'x64'), undefined);
    fs.mkdirSync(path.join(webgpuDir(storage), 'dist', 'linux-x64'), { recursive: true });
    fs.writeFileSync(path.join(webgpuDir(storage), 'package.json'), JSON.stringify({ name: 'webgpu', version: WEBGPU_VERSION }));
    assert.equal(installedGpu(storage, 'linux', 'x64'), undefined, 'no dawn.node yet');
    fs.writeFileSync(dawnNodePath(storage, 'linux', 'x64')!, '');
    assert.equal(installedGpu(storage, 'linux', 'x64'), WEBGPU_VERSION);
    assert.equal(installedGpu(storage, 'win32', 'x64'), undefined, 'another platform’s dawn.node is missing');
  });

  it('refuses a platform without dawn.node, before running npm', async () => {
    await assert.rejects(installGpu(tmp('lora-gpu-'), { npm: 'npm-that-does-not-exist' }, 'linux', 'ia32'), /ship no dawn\.node for linux-ia32/);
  });

  it('without network it fails with a clear message, and nothing counts as installed', { timeout: 120_000 }, async () => {
    const storage = tmp('lora-gpu-');
    await assert.rejects(
      installGpu(storage, { npmArgs: ['--registry', 'http://127.0.0.1:9/', '--fetch-retries', '0', '--fetch-timeout', '3000', '--prefer-online', '--cache', path.join(storage, 'npm-cache')] }),
      (e: unknown) => {
        assert.ok(e instanceof NativeInstallError, String(e));
        assert.match(e.message, /^No network: npm could not reach the package registry to download webgpu\. The GPU backend needs internet access/);
        assert.match(e.message, /npm install webgpu@0\.6\.2/);
        return true;
      },
    );
    assert.equal(installedGpu(storage), undefined);
  });
});

describe('the trainer finds webgpu in the install folder', () => {
  /** trainer/backend.ts bundled as the trainer ships (webgpu external) into a folder with no node_modules above it. */
  async function bundleOutside(): Promise<string> {
    const dir = tmp('lora-gpu-bundle-');
    const entry = path.join(dir, 'entry.ts');
    fs.writeFileSync(entry, `import { initBackend } from ${JSON.stringify(path.join(REPO, 'trainer', 'backend.ts'))};
initBackend('webgpu').then((i) => console.log(JSON.stringify(i)), (e) => console.log(JSON.stringify({ error: e.message }))).finally(() => process.exit(0));
`);
    await esbuild.build({
      entryPoints: [entry], outfile: path.join(dir, 'main.js'), bundle: true, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'error',
      external: ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'wabt', 'webgpu'], nodePaths: [path.join(REPO, 'node_modules')],
    });
    return path.join(dir, 'main.js');
  }
  const run = (main: string, env: NodeJS.ProcessEnv) => {
    const r = spawnSync(process.execPath, [main], { cwd: path.dirname(main), encoding: 'utf8', timeout: 120_000, env: { ...process.env, LORA_STUDIO_NATIVE_DIR: '', ...env } });
    const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
    assert.ok(line, `no result line (status ${r.status}): ${r.stdout}\n${r.stderr}`);
    return JSON.parse(line) as { backend?: string; adapter?: { device: string; software: boolean }; error?: string };
  };

  it('not installed: a forced webgpu names the command to run', { timeout: 180_000 }, async () => {
    const main = await bundleOutside();
    const r = run(main, {});
    assert.ok(r.error, JSON.stringify(r));
    assert.match(r.error, /Dawn's Node bindings \(npm "webgpu"\) are not installed/);
    assert.ok(r.error.includes(`"${INSTALL_GPU_COMMAND}"`), r.error);
    const empty = tmp('lora-gpu-empty-');
    assert.match(run(main, { LORA_STUDIO_NATIVE_DIR: empty }).error ?? '', new RegExp(`LORA_STUDIO_NATIVE_DIR=${empty.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  });

  it('installed: loads webgpu (a symlink to node_modules/webgpu) from LORA_STUDIO_NATIVE_DIR and runs on an adapter', { timeout: 180_000 }, async (t) => {
    const skip = await webgpuSkipReason();
    if (skip) return t.skip(skip);
    const main = await bundleOutside();
    const storage = tmp('lora-gpu-storage-');
    fs.mkdirSync(nativeModulesDir(storage), { recursive: true });
    fs.symlinkSync(path.join(REPO, 'node_modules', 'webgpu'), webgpuDir(storage), 'dir');
    const r = run(main, { LORA_STUDIO_NATIVE_DIR: nativeModulesDir(storage) });
    assert.equal(r.error, undefined, r.error);
    assert.equal(r.backend, 'webgpu');
    assert.ok(r.adapter?.device || r.adapter, JSON.stringify(r));
  });
});
