/**
 * Picks the TensorFlow.js backend the trainer computes on: the native TensorFlow binding when it is installed
 * (tfjs-node-gpu, then tfjs-node; also from the folder in LORA_STUDIO_NATIVE_DIR), else WebGPU when Dawn offers a
 * hardware adapter (backend_webgpu.ts), else WebAssembly, else plain JS.
 * Every backend package is loaded with a guarded require, so a missing one is a reported fallback, never a crash
 * at import time, and bundlers that keep packages external leave them alone.
 */
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { version_cpu } from '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { LoraStudioError } from './errors';
import { prepareGemm } from './ops/gemm';
import { type AdapterReport, loadWebGpu } from './backend_webgpu';

import { BACKEND_NAMES, type BackendName } from './backend_names';
export { BACKEND_NAMES, type BackendName };

export interface BackendInfo {
  /** what tf.getBackend() reports after initialization */
  backend: string;
  /** true only on a GPU: tfjs-node-gpu with a GPU device, or webgpu on a hardware adapter */
  gpu: boolean;
  /** webgpu: the adapter Dawn gave (a software one, e.g. llvmpipe, only when webgpu was forced) */
  adapter?: AdapterType;
  /** backends tried before the one that ran, with why each failed */
  tried: Array<{ name: string; error: string }>;
}

/** The env variable naming the folder where the extension installs the native backend (its node_modules inside). */
export const NATIVE_DIR_ENV = 'LORA_STUDIO_NATIVE_DIR';

/** Run-time requires for the optional native packages (kept out of the bundle), each inside a try. */
const nodeRequire: NodeJS.Require = require;

export type AdapterType = Pick<AdapterReport, 'vendor' | 'architecture' | 'device' | 'description' | 'software'>;

type Loader = () => Promise<{ gpu: boolean; adapter?: AdapterType }>;

/**
 * Initializes a backend. With `preferred`, only that one is tried and a failure is an error saying why;
 * without it, tensorflow → webgpu (a hardware adapter only) → wasm → cpu, first that works.
 */
export async function initBackend(preferred?: BackendName): Promise<BackendInfo> {
  if (preferred !== undefined && !BACKEND_NAMES.includes(preferred)) {
    throw new LoraStudioError(`unknown backend ${JSON.stringify(preferred)}; choose one of ${BACKEND_NAMES.join(', ')}`, undefined, 'backend');
  }
  const loaders: Record<BackendName, Loader> = { tensorflow: loadTensorflow, webgpu: () => loadWebgpu(preferred !== 'webgpu'), wasm: loadWasm, cpu: loadCpu };
  const order = preferred ? [preferred] : BACKEND_NAMES;
  const tried: BackendInfo['tried'] = [];
  for (const name of order) {
    try {
      const { gpu, adapter } = await loaders[name]();
      return { backend: tf.getBackend(), gpu, ...(adapter ? { adapter } : {}), tried };
    } catch (e) {
      tried.push({ name, error: e instanceof Error ? e.message : String(e) });
    }
  }
  const why = tried.map((t) => `${t.name}: ${t.error}`).join('; ');
  throw new LoraStudioError(preferred ? `backend "${preferred}" cannot run: ${why}` : `no TensorFlow.js backend could start: ${why}`, undefined, 'backend');
}

/** Requires a native-backend package from node_modules, then from `$LORA_STUDIO_NATIVE_DIR`; errors list every place tried. */
function requireFromAnywhere(pkg: string): unknown {
  const errors: string[] = [];
  try {
    return nodeRequire(pkg);
  } catch (e) {
    errors.push(firstLine(e));
  }
  const dir = process.env[NATIVE_DIR_ENV];
  if (dir) {
    try {
      return createRequire(path.join(path.resolve(dir), 'noop.js'))(pkg);
    } catch (e) {
      errors.push(`${NATIVE_DIR_ENV}=${dir}: ${firstLine(e)}`);
    }
  }
  throw new Error(errors.join('; '));
}

async function loadTensorflow(): Promise<{ gpu: boolean }> {
  const errors: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      requireFromAnywhere(pkg);
      await setBackendOrThrow('tensorflow');
    } catch (e) {
      errors.push(`${pkg}: ${firstLine(e)}`);
      continue;
    }
    const b = tf.backend() as unknown as { isUsingGpuDevice?: boolean };
    return { gpu: pkg.endsWith('-gpu') && b.isUsingGpuDevice === true };
  }
  throw new Error(`native TensorFlow binding unavailable (${errors.join('; ')})`);
}

/**
 * The .wasm binaries: beside the bundled trainer (the build copies them into dist/trainer/), else in the
 * package's own dist/ (running from source).
 */
function wasmDir(): string {
  const candidates = [__dirname];
  try {
    candidates.push(path.dirname(nodeRequire.resolve('@tensorflow/tfjs-backend-wasm')));
  } catch {
    // not installed as a package: the bundled copy must do
  }
  const dir = candidates.find((d) => fs.existsSync(path.join(d, 'tfjs-backend-wasm-simd.wasm')));
  if (!dir) throw new Error(`tfjs-backend-wasm-simd.wasm not found in ${candidates.join(' or ')}`);
  return dir;
}

async function loadWasm(): Promise<{ gpu: boolean }> {
  // The wasm and cpu backends are bundled (static imports register them); only their binaries are files.
  setWasmPaths(wasmDir() + path.sep);
  await setBackendOrThrow('wasm');
  // products with frozen weights run through our GEMM on this backend (ops/gemm.ts)
  await prepareGemm();
  return { gpu: false };
}

/** A software adapter only when forced (`hardwareOnly` false); `gpu` only for a hardware one. */
async function loadWebgpu(hardwareOnly: boolean): Promise<{ gpu: boolean; adapter: AdapterType }> {
  const { vendor, architecture, device, description, software } = await loadWebGpu(hardwareOnly);
  return { gpu: !software, adapter: { vendor, architecture, device, description, software } };
}

async function loadCpu(): Promise<{ gpu: boolean }> {
  // Importing the package registers the backend; naming an export keeps the bundler from dropping it.
  if (!version_cpu) throw new Error('@tensorflow/tfjs-backend-cpu is missing');
  await setBackendOrThrow('cpu');
  // The CPU backend prints an "install tfjs-node" banner on its first tensor; we report the backend ourselves.
  (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
  return { gpu: false };
}

/**
 * tf.setBackend reports failure only as `false` plus console warnings; we capture those warnings to say why.
 */
async function setBackendOrThrow(name: string): Promise<void> {
  if (tf.findBackendFactory(name) === null) throw new Error(`backend "${name}" is not registered`);
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    warnings.push(args.map(String).join(' '));
  };
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
    await tf.ready();
  } finally {
    console.warn = warn;
  }
  if (!ok || tf.getBackend() !== name) {
    const why = warnings.filter((w) => !/^Initialization of backend/.test(w)).map((w) => w.split('\n')[0]).join('; ');
    throw new Error(`initialization failed${why ? `: ${why}` : ''}`);
  }
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}
