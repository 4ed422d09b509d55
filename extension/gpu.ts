/**
 * "Install GPU Backend…": installs Dawn's Node bindings (npm `webgpu`, pinned to the version the trainer is
 * built and tested against) with npm into the same folder as the native backend (<globalStorage>/native,
 * native.ts). The trainer child already gets that folder's node_modules as LORA_STUDIO_NATIVE_DIR and resolves
 * `webgpu` there (trainer/backend_webgpu.ts, resolveWebgpu). No vscode import.
 *
 * Why a command and not platform-specific VSIXes: see the README's "Backends" section. In short, `dawn.node`
 * is 21 MB for linux-x64 (7.2 MB zipped) but 34 MB with its two DLLs on win32-x64 (14.3 MB zipped), so a
 * Windows VSIX would pass 15 MB; one install path serves every platform, and the universal VSIX stays small.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type InstallOptions, installPlan, NativeInstallError, nativeModulesDir, type NativePlan } from './native';

/** The `webgpu` version in package.json's dependencies (a test holds them equal). */
export const WEBGPU_VERSION = '0.6.2';

/** The title of the command, as the trainer's "not installed" error names it. */
export const INSTALL_GPU_COMMAND = 'LoRA: Install GPU Backend…';

/** The dist/ folders that `webgpu` ships, one `dawn.node` each (index.js picks `${platform}-${arch}`, macOS universal). */
export const DAWN_PLATFORMS = ['linux-x64', 'linux-arm64', 'darwin-universal', 'win32-x64', 'win32-arm64'] as const;

/** The folder of `dawn.node` for this platform, or undefined where `webgpu` ships none. */
export function dawnPlatform(platform: string = process.platform, arch: string = process.arch): string | undefined {
  const name = platform === 'darwin' ? 'darwin-universal' : `${platform}-${arch}`;
  return (DAWN_PLATFORMS as readonly string[]).includes(name) ? name : undefined;
}

export function gpuPlan(): NativePlan {
  return {
    pkg: 'webgpu',
    spec: `webgpu@${WEBGPU_VERSION}`,
    what: 'The GPU backend',
    downloads: 'npm downloads the package, 51 MB, with dawn.node for every platform',
    requirements:
      'The GPU backend runs training on your GPU through WebGPU (Dawn): Vulkan on Linux, Metal on macOS, D3D12 on Windows; no CUDA. ' +
      'It needs npm on the PATH and network access (npm downloads the "webgpu" package, 51 MB, 132 MB on disk). ' +
      'Automatic backend selection uses it only when Dawn finds a hardware GPU; set "loraStudio.backend" to "webgpu" to require it.',
  };
}

/** <globalStorage>/native/node_modules/webgpu */
export function webgpuDir(globalStorage: string): string {
  return path.join(nativeModulesDir(globalStorage), 'webgpu');
}

/** Where this platform's dawn.node lies once installed, or undefined where `webgpu` ships none. */
export function dawnNodePath(globalStorage: string, platform: string = process.platform, arch: string = process.arch): string | undefined {
  const p = dawnPlatform(platform, arch);
  return p ? path.join(webgpuDir(globalStorage), 'dist', p, 'dawn.node') : undefined;
}

/** The installed `webgpu` version when its package.json and this platform's dawn.node are both there. */
export function installedGpu(globalStorage: string, platform: string = process.platform, arch: string = process.arch): string | undefined {
  const dawn = dawnNodePath(globalStorage, platform, arch);
  if (!dawn || !fs.existsSync(dawn)) return undefined;
  try {
    const v = (JSON.parse(fs.readFileSync(path.join(webgpuDir(globalStorage), 'package.json'), 'utf8')) as { version?: unknown }).version;
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** npm install webgpu@WEBGPU_VERSION into <globalStorage>/native; resolves with the installed version. */
export async function installGpu(globalStorage: string, opts: InstallOptions = {}, platform: string = process.platform, arch: string = process.arch): Promise<string> {
  if (!dawnPlatform(platform, arch)) {
    throw new NativeInstallError(`Dawn's Node bindings (npm "webgpu" ${WEBGPU_VERSION}) ship no dawn.node for ${platform}-${arch}; they exist for ${DAWN_PLATFORMS.join(', ')}.`);
  }
  await installPlan(globalStorage, gpuPlan(), opts);
  const v = installedGpu(globalStorage, platform, arch);
  if (!v) throw new NativeInstallError(`npm installed "webgpu", but ${dawnNodePath(globalStorage, platform, arch)} is missing.`);
  return v;
}
