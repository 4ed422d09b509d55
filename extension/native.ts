/**
 * "Install Native Backend…": installs @tensorflow/tfjs-node-gpu (or tfjs-node) with npm into the extension's
 * global storage (<globalStorage>/native/node_modules). The trainer child gets that folder as
 * LORA_STUDIO_NATIVE_DIR and loads the binding from there. "Install GPU Backend…" (gpu.ts) installs `webgpu`
 * into the same folder with installPlan. No vscode import.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The tfjs version the trainer is built against; the native binding must match it. */
export const TFJS_VERSION = '4.22.0';

export type NativeFlavor = 'gpu' | 'cpu';

export interface NativePlan {
  pkg: string;
  spec: string;
  /** what the user's machine needs, shown before installing */
  requirements: string;
  /** what it is called in messages, e.g. "The native backend" */
  what?: string;
  /** what the install downloads, for the no-network message */
  downloads?: string;
  /**
   * The package's install script must run (tfjs-node's downloads libtensorflow and its binding). npm 11.19 and
   * later skip dependency install scripts unless package.json's `allowScripts` names the package, and then
   * report success: the manifest allows it, and `installed` checks that the script did its work.
   */
  installScript?: boolean;
  /** after npm succeeded: why the package in `pkgDir` is not usable, or undefined when it is */
  installed?: (pkgDir: string) => string | undefined;
}

/** tfjs-node's binding, which its install script places in lib/napi-v<N>/ with libtensorflow beside it. */
export function tfjsBinding(pkgDir: string): string | undefined {
  const lib = path.join(pkgDir, 'lib');
  const napi = fs.existsSync(lib) ? fs.readdirSync(lib).filter((d) => /^napi-v\d+$/.test(d)) : [];
  for (const d of napi) if (fs.existsSync(path.join(lib, d, 'tfjs_binding.node'))) return path.join(lib, d, 'tfjs_binding.node');
  return undefined;
}

function tfjsInstalled(pkgDir: string): string | undefined {
  if (tfjsBinding(pkgDir)) return undefined;
  return `npm installed ${path.basename(path.dirname(pkgDir))}/${path.basename(pkgDir)}, but its install script did not put the libtensorflow binding in place (${path.join(pkgDir, 'lib', 'napi-v*', 'tfjs_binding.node')} is missing).`;
}

export function nativePlan(flavor: NativeFlavor): NativePlan {
  if (flavor === 'gpu') {
    return {
      pkg: '@tensorflow/tfjs-node-gpu',
      spec: `@tensorflow/tfjs-node-gpu@${TFJS_VERSION}`,
      requirements:
        'The GPU build needs Linux x64 or Windows x64, an NVIDIA GPU with CUDA 11.2 and cuDNN 8.1 installed, and network access ' +
        '(npm downloads the package, then libtensorflow from storage.googleapis.com, about 400 MB).',
      installScript: true,
      installed: tfjsInstalled,
    };
  }
  return {
    pkg: '@tensorflow/tfjs-node',
    spec: `@tensorflow/tfjs-node@${TFJS_VERSION}`,
    requirements: 'The CPU build needs Linux, macOS or Windows x64 and network access (npm downloads the package, then libtensorflow, about 100 MB).',
    installScript: true,
    installed: tfjsInstalled,
  };
}

/** <globalStorage>/native: holds package.json and node_modules/. */
export function nativeRoot(globalStorage: string): string {
  return path.join(globalStorage, 'native');
}

/** The folder the trainer searches (LORA_STUDIO_NATIVE_DIR). */
export function nativeModulesDir(globalStorage: string): string {
  return path.join(nativeRoot(globalStorage), 'node_modules');
}

/** Which native package is installed there, if any. */
export function installedNative(globalStorage: string): string | undefined {
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    if (fs.existsSync(path.join(nativeModulesDir(globalStorage), pkg, 'package.json'))) return pkg;
  }
  return undefined;
}

export class NativeInstallError extends Error {
  override readonly name = 'NativeInstallError';
}

const NETWORK = /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|network|getaddrinfo|socket hang up|request to .* failed/i;

function byHand(plan: NativePlan, root: string): string {
  return `Or install it by hand: \`npm install ${plan.spec}\` inside ${root}.`;
}

/** One sentence that says why the install failed and what to do. */
export function explainInstallFailure(output: string, code: number | null, plan: NativePlan, root: string): string {
  const manual = byHand(plan, root);
  if (NETWORK.test(output)) {
    return `No network: npm could not reach the package registry to download ${plan.pkg}. ${plan.what ?? 'The native backend'} needs internet access to install (${plan.downloads ?? 'npm, then libtensorflow'}). Training still works on the WebAssembly/CPU backend. ${manual}`;
  }
  if (/libtensorflow|tfjs-node.*install|node-pre-gyp/i.test(output)) {
    return `${plan.pkg} was downloaded but its libtensorflow binary could not be installed (see the log). ${manual}`;
  }
  const last = output.trim().split('\n').slice(-3).join(' | ');
  return `npm install ${plan.spec} failed (exit code ${code})${last ? `: ${last}` : ''}. ${manual}`;
}

export interface InstallOptions {
  /** npm's executable; default `npm` (`npm.cmd` on Windows) */
  npm?: string;
  /** extra npm arguments (tests point --registry at an unreachable host) */
  npmArgs?: string[];
  env?: NodeJS.ProcessEnv;
  onLine?: (line: string) => void;
  signal?: AbortSignal;
}

/** Runs npm install into <globalStorage>/native; resolves with the installed package name. */
export function installNative(globalStorage: string, flavor: NativeFlavor, opts: InstallOptions = {}): Promise<string> {
  return installPlan(globalStorage, nativePlan(flavor), opts);
}

/**
 * npm install of `plan.spec` into <globalStorage>/native (the folder the trainer gets as LORA_STUDIO_NATIVE_DIR);
 * resolves with the package name once its package.json is there. Used for the native and the GPU backend.
 */
export async function installPlan(globalStorage: string, plan: NativePlan, opts: InstallOptions = {}): Promise<string> {
  const root = nativeRoot(globalStorage);
  fs.mkdirSync(root, { recursive: true });
  writeManifest(root, plan);
  const npm = opts.npm ?? (process.platform === 'win32' ? 'npm.cmd' : 'npm');
  const args = ['install', plan.spec, '--no-audit', '--no-fund', '--no-package-lock', '--loglevel', 'http', ...(opts.npmArgs ?? [])];
  let output = '';
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(npm, args, { cwd: root, env: { ...process.env, ...opts.env }, shell: process.platform === 'win32', signal: opts.signal });
    const onData = (c: Buffer) => {
      const text = c.toString('utf8');
      output += text;
      for (const l of text.split(/\r?\n/)) if (l.trim()) opts.onLine?.(l);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.name === 'AbortError') reject(new NativeInstallError('the install was cancelled'));
      else if (e.code === 'ENOENT') reject(new NativeInstallError(`npm was not found (${npm}); install Node.js with npm and try again, or run \`npm install ${plan.spec}\` inside ${root} yourself.`));
      else reject(new NativeInstallError(`could not run npm: ${e.message}`));
    });
    child.on('close', (c) => resolve(c));
  });
  const pkgDir = path.join(root, 'node_modules', plan.pkg);
  if (code !== 0 || !fs.existsSync(path.join(pkgDir, 'package.json'))) {
    throw new NativeInstallError(explainInstallFailure(output, code, plan, root));
  }
  const unusable = plan.installed?.(pkgDir);
  if (unusable) {
    const skipped = /install-scripts|allowScripts/i.test(output) ? ' npm skipped its install script (see the log).' : '';
    throw new NativeInstallError(`${unusable}${skipped} ${byHand(plan, root)}`);
  }
  return plan.pkg;
}

/**
 * <root>/package.json, created on the first install; its `allowScripts` names each package whose install script
 * must run, so that npm 11.19+ runs it (older npm ignores the field). Written to a temporary file, then renamed.
 */
function writeManifest(root: string, plan: NativePlan): void {
  const manifest = path.join(root, 'package.json');
  let m: Record<string, unknown> = { name: 'lora-studio-native', private: true, description: 'The native TensorFlow and GPU (WebGPU) backends of LoRA Studio' };
  if (fs.existsSync(manifest)) {
    try {
      const parsed: unknown = JSON.parse(fs.readFileSync(manifest, 'utf8'));
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) m = parsed as Record<string, unknown>;
    } catch (e) {
      throw new NativeInstallError(`${manifest} is not valid JSON (${(e as Error).message}); fix or delete it and install again.`);
    }
  }
  const allow = (m.allowScripts && typeof m.allowScripts === 'object' ? m.allowScripts : {}) as Record<string, unknown>;
  if (plan.installScript && allow[plan.pkg] !== true) m.allowScripts = { ...allow, [plan.pkg]: true };
  else if (fs.existsSync(manifest)) return;
  const tmp = `${manifest}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(m, null, 2) + '\n');
  fs.renameSync(tmp, manifest);
}
