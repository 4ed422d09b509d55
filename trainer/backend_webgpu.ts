/**
 * The WebGPU backend: @tensorflow/tfjs-backend-webgpu on Dawn's Node bindings (npm `webgpu`, which ships
 * dawn.node for each platform inside the package). Dawn's default backend (Vulkan, Metal, D3D12) is asked first,
 * then its OpenGL ES backend in compatibility mode (on a machine without a GPU: Mesa's llvmpipe through EGL).
 *
 * Software adapters (llvmpipe, SwiftShader, …) compute correctly but slower than wasm, so the automatic order
 * takes only a hardware adapter; `--backend webgpu` takes whatever Dawn offers. `webgpu` is imported at run time
 * (the bundle keeps it external: dawn.node is a native file), so a missing package is a reported fallback.
 *
 * On this backend only the async reads (`data()`, `array()`) work: tfjs's synchronous read needs OffscreenCanvas.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { WebGPUBackend, type WebGPUProgram, webgpu_util } from '@tensorflow/tfjs-backend-webgpu';
import { DROPOUT_MASK, DROPOUT_MASK_WGSL, type DropoutMaskAttrs } from './ops/dropout_kernel';

/** What the trainer reports about the adapter it runs on. */
export interface AdapterReport {
  vendor: string;
  architecture: string;
  /** the device name (Dawn fills it where vendor and architecture stay empty, e.g. llvmpipe) */
  device: string;
  description: string;
  /** a software rasterizer (llvmpipe, SwiftShader, a fallback adapter): correct, not fast */
  software: boolean;
  /** which Dawn backend gave it: the platform default (Vulkan/Metal/D3D12) or OpenGL ES */
  via: 'default' | 'opengles';
}

/** The parts of WebGPU's API this file uses (the trainer's tsconfig does not load @webgpu/types). */
interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
  type?: string;
}
interface AdapterLike {
  info?: AdapterInfoLike;
  isFallbackAdapter?: boolean;
  features: { has(name: string): boolean };
  limits: Record<string, number>;
  requestDevice(descriptor?: object): Promise<unknown>;
}
interface GpuLike {
  requestAdapter(options?: object): Promise<AdapterLike | null>;
  wgslLanguageFeatures?: unknown;
}
interface DawnModule {
  create(flags: string[]): GpuLike;
  globals: Record<string, unknown>;
}

/** Names that mark a software adapter in its vendor, architecture, device or description. */
const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|software|basic render driver|\bwarp\b/i;

export function isSoftwareAdapter(adapter: AdapterLike): boolean {
  const i = adapter.info ?? {};
  if (adapter.isFallbackAdapter === true || i.isFallbackAdapter === true) return true;
  if (typeof i.type === 'string' && /cpu/i.test(i.type)) return true;
  return SOFTWARE.test([i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' '));
}

function reportOf(adapter: AdapterLike, via: AdapterReport['via']): AdapterReport {
  const i = adapter.info ?? {};
  return { vendor: i.vendor ?? '', architecture: i.architecture ?? '', device: i.device ?? '', description: i.description ?? '', software: isSoftwareAdapter(adapter), via };
}

/** One line naming an adapter, for the CLI and for errors. */
export function describeAdapter(a: AdapterReport): string {
  const name = [a.vendor, a.architecture, a.device].filter(Boolean).join(' ') || 'unnamed adapter';
  return `${name}${a.description ? ` (${a.description})` : ''}${a.software ? ', software' : ''}, via Dawn ${a.via === 'opengles' ? 'OpenGL ES' : 'default backend'}`;
}

let dawn: DawnModule | null = null;
/** for resolving `webgpu` (the bundle keeps it external) */
const nodeRequire: NodeJS.Require = require;

/** The folder the extension installs backend packages into (backend.ts's NATIVE_DIR_ENV; "LoRA: Install GPU Backend…" puts `webgpu` there). */
const INSTALL_DIR_ENV = 'LORA_STUDIO_NATIVE_DIR';

/**
 * The entry file of `webgpu`: from node_modules beside the trainer (a checkout, an npm install), else from the
 * folder in $LORA_STUDIO_NATIVE_DIR. The error names every place tried and how to install it.
 */
export function resolveWebgpu(): string {
  const errors: string[] = [];
  try {
    return nodeRequire.resolve('webgpu');
  } catch (e) {
    errors.push(firstLine(e));
  }
  const dir = process.env[INSTALL_DIR_ENV];
  if (dir) {
    try {
      return createRequire(path.join(path.resolve(dir), 'noop.js')).resolve('webgpu');
    } catch (e) {
      errors.push(`${INSTALL_DIR_ENV}=${dir}: ${firstLine(e)}`);
    }
  }
  throw new Error(`Dawn's Node bindings (npm "webgpu") are not installed (${errors.join('; ')}); in VS Code run "LoRA: Install GPU Backend…", from the command line \`npm install webgpu@0.6.2\``);
}

async function loadDawn(): Promise<DawnModule> {
  if (dawn) return dawn;
  const entry = resolveWebgpu();
  try {
    // a run-time import: the bundle leaves `webgpu` outside (it is ESM and loads the native dawn.node)
    dawn = (await import(pathToFileURL(entry).href)) as DawnModule;
  } catch (e) {
    throw new Error(`Dawn's Node bindings (npm "webgpu") did not load: ${firstLine(e)}`);
  }
  // GPUBufferUsage, GPUMapMode, … are globals in a browser; tfjs-backend-webgpu reads them as such
  for (const [k, v] of Object.entries(dawn.globals)) if (!(k in globalThis)) Object.defineProperty(globalThis, k, { value: v, configurable: true, writable: true });
  return dawn;
}

interface Found {
  gpu: GpuLike;
  adapter: AdapterLike;
  report: AdapterReport;
  featureLevel: string;
}

/** Where Dawn is asked, in order: its default backend (core), then OpenGL ES (compatibility). */
const ATTEMPTS: Array<{ via: AdapterReport['via']; flags: string[]; featureLevel: string }> = [
  { via: 'default', flags: [], featureLevel: 'core' },
  { via: 'opengles', flags: ['backend=opengles'], featureLevel: 'compatibility' },
];

/** What one attempt gave: an adapter's report, nothing, or an error. */
type Outcome = { via: AdapterReport['via']; report?: AdapterReport; error?: string };

/** The first acceptable outcome's index, or an error that says what each attempt gave. */
function choose(outcomes: Outcome[], hardwareOnly: boolean): number {
  const notes: string[] = [];
  for (const [i, o] of outcomes.entries()) {
    if (o.error !== undefined) notes.push(`${o.via}: ${o.error}`);
    else if (!o.report) notes.push(`${o.via === 'default' ? 'Vulkan/Metal/D3D12' : 'OpenGL ES'}: no adapter`);
    else if (hardwareOnly && o.report.software) notes.push(`only a software adapter: ${describeAdapter(o.report)}`);
    else return i;
  }
  throw new Error(
    notes.some((n) => n.startsWith('only a software adapter'))
      ? `Dawn offers no hardware adapter (${notes.join('; ')}); the automatic order never takes a software one (--backend webgpu forces it)`
      : `Dawn found no WebGPU adapter (${notes.join('; ')})`,
  );
}

function eglForOpenGles(): void {
  // no display needed: Mesa renders off-screen (an EGL_PLATFORM the user set is kept)
  if (process.env.EGL_PLATFORM === undefined) process.env.EGL_PLATFORM = 'surfaceless';
}

/**
 * Asks Dawn for adapters in this process, in ATTEMPTS order. With `hardwareOnly`, a software adapter is passed
 * over (and named in the error); otherwise the first adapter found is taken.
 */
export async function findAdapter(hardwareOnly: boolean): Promise<Found> {
  const d = await loadDawn();
  const outcomes: Outcome[] = [];
  for (const a of ATTEMPTS) {
    if (a.via === 'opengles') eglForOpenGles();
    try {
      const gpu = d.create(a.flags);
      const adapter = await gpu.requestAdapter({ featureLevel: a.featureLevel, powerPreference: 'high-performance' });
      const report = adapter ? reportOf(adapter, a.via) : undefined;
      outcomes.push({ via: a.via, report });
      if (adapter && report && !(hardwareOnly && report.software)) return { gpu, adapter, report, featureLevel: a.featureLevel };
    } catch (e) {
      outcomes.push({ via: a.via, error: firstLine(e) });
    }
  }
  choose(outcomes, hardwareOnly);
  throw new Error('internal: no adapter chosen');
}

/** Run in a child process by probeInChild: argv[1] the URL of `webgpu`, argv[2] ATTEMPTS; prints the outcomes. */
const PROBE = `
const [url, attempts] = [process.argv[1], JSON.parse(process.argv[2])];
import(url).then(async ({ create }) => {
  const out = [];
  for (const a of attempts) {
    if (a.via === 'opengles' && process.env.EGL_PLATFORM === undefined) process.env.EGL_PLATFORM = 'surfaceless';
    try {
      const ad = await create(a.flags).requestAdapter({ featureLevel: a.featureLevel, powerPreference: 'high-performance' });
      const i = (ad && ad.info) || {};
      out.push(ad ? { via: a.via, info: { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, isFallbackAdapter: i.isFallbackAdapter, type: i.type }, fallback: ad.isFallbackAdapter } : { via: a.via });
    } catch (e) {
      out.push({ via: a.via, error: String((e && e.message) || e).split('\\n')[0] });
    }
  }
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
}, (e) => {
  process.stdout.write(JSON.stringify({ error: String((e && e.message) || e).split('\\n')[0] }));
  process.exit(0);
});
`;

/**
 * The automatic order's look at the adapters, in a child process: Dawn prints warnings of its own on stderr
 * (a missing Vulkan loader, reduced limits), which a run that ends up on wasm should not show.
 */
async function probeInChild(): Promise<Outcome[]> {
  const url = pathToFileURL(resolveWebgpu()).href;
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['-e', PROBE, url, JSON.stringify(ATTEMPTS)], { timeout: 60_000, windowsHide: true }, (err, out) => {
      if (err && !out) reject(new Error(`the adapter probe failed: ${firstLine(err)}`));
      else resolve(out);
    });
  });
  const parsed = JSON.parse(stdout) as Array<{ via: AdapterReport['via']; info?: AdapterInfoLike; fallback?: boolean; error?: string }> | { error: string };
  if (!Array.isArray(parsed)) throw new Error(`Dawn's Node bindings (npm "webgpu") did not load: ${parsed.error}`);
  return parsed.map((o) => ({
    via: o.via, error: o.error,
    report: o.info ? reportOf({ info: o.info, isFallbackAdapter: o.fallback, features: new Set<string>(), limits: {}, requestDevice: () => Promise.resolve(null) }, o.via) : undefined,
  }));
}

let current: AdapterReport | null = null;

/**
 * Registers and starts tfjs's webgpu backend on the adapter Dawn gives (see findAdapter), and returns it.
 * Again in the same process: the backend already set up is reused.
 */
export async function loadWebGpu(hardwareOnly: boolean): Promise<AdapterReport> {
  if (current && tf.engine().registry.webgpu) {
    if (hardwareOnly && current.software) throw new Error(`only a software adapter: ${describeAdapter(current)}`);
    await setWebGpu();
    return current;
  }
  // the automatic order loads Dawn here only when a child process saw a hardware adapter
  if (hardwareOnly) choose(await probeInChild(), true);
  const found = await findAdapter(hardwareOnly);
  // tfjs-backend-webgpu checks navigator.gpu in its constructor; Node ≥ 21 has a navigator without gpu
  const gpu = { requestAdapter: () => Promise.resolve(found.adapter), wgslLanguageFeatures: found.gpu.wgslLanguageFeatures, getPreferredCanvasFormat: () => 'rgba8unorm' };
  const nav = (globalThis as { navigator?: object }).navigator;
  if (nav) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true, writable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  if (tf.findBackendFactory('webgpu') !== null) tf.removeBackend('webgpu');
  chunkAddN();
  registerDropoutMask();
  const { adapter } = found;
  // the limits tfjs asks for itself (the defaults would cap a buffer at 128 MiB, less than GPT-2's wte)
  tf.registerBackend('webgpu', async () => {
    const requiredFeatures = ['timestamp-query'].filter((f) => adapter.features.has(f));
    const l = adapter.limits;
    const requiredLimits = Object.fromEntries(
      ['maxComputeWorkgroupStorageSize', 'maxComputeWorkgroupsPerDimension', 'maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupSizeX', 'maxComputeInvocationsPerWorkgroup',
        // compatibility mode starts at 8 storage buffers per stage, the adapter may allow more (llvmpipe: 16)
        'maxStorageBuffersPerShaderStage']
        .map((k) => [k, l[k]]),
    );
    const device = (await adapter.requestDevice({ requiredFeatures, requiredLimits })) as DeviceLike;
    failOnGpuErrors(device);
    return new WebGPUBackend(device as unknown as ConstructorParameters<typeof WebGPUBackend>[0], adapter.info as ConstructorParameters<typeof WebGPUBackend>[1]);
  }, 0);
  await setWebGpu();
  current = found.report;
  return current;
}

interface DeviceLike {
  limits: Record<string, number>;
  addEventListener(type: 'uncapturederror', listener: (e: { error: { message: string } }) => void): void;
}

/**
 * A WebGPU validation or out-of-memory error leaves a kernel's output unwritten, so every result after it is
 * wrong: the run ends with the error (Dawn also prints it, on stdout). Without a listener it would go unnoticed.
 */
function failOnGpuErrors(device: DeviceLike): void {
  device.addEventListener('uncapturederror', (e) => {
    const err = new Error(`WebGPU error, results after it would be wrong: ${e.error.message.split('\n')[0]}`);
    process.stderr.write(`lora-studio: ${err.message}\n`);
    setImmediate(() => {
      throw err;
    });
  });
}

let addNChunked = false;

/**
 * tfjs-backend-webgpu's AddN binds every input as a storage buffer, past the device's per-stage limit (8 in
 * compatibility mode) when more are summed (the global gradient norm adds one term per trainable tensor).
 * Chunked here: at most limit − 1 inputs per call, partial sums summed the same way, left to right.
 */
function chunkAddN(): void {
  const stock = tf.getKernel('AddN', 'webgpu');
  if (addNChunked || !stock) return;
  addNChunked = true;
  type Args = { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap };
  const run = stock.kernelFunc as unknown as (args: Args) => tf.TensorInfo;
  tf.unregisterKernel('AddN', 'webgpu');
  tf.registerKernel({
    kernelName: 'AddN',
    backendName: 'webgpu',
    kernelFunc: (args) => {
      const { inputs, attrs } = args;
      const backend = args.backend as tf.KernelBackend;
      const max = Math.max(2, ((backend as unknown as { device: DeviceLike }).device.limits.maxStorageBuffersPerShaderStage ?? 8) - 1);
      let list = Object.values(inputs) as tf.TensorInfo[];
      const temps: tf.TensorInfo[] = [];
      while (list.length > max) {
        const next: tf.TensorInfo[] = [];
        for (let i = 0; i < list.length; i += max) {
          const part = list.slice(i, i + max);
          if (part.length === 1) next.push(part[0]);
          else {
            const sum = run({ inputs: part as unknown as tf.NamedTensorInfoMap, backend, attrs });
            temps.push(sum);
            next.push(sum);
          }
        }
        list = next;
      }
      const out = run({ inputs: list as unknown as tf.NamedTensorInfoMap, backend, attrs });
      for (const t of temps) backend.disposeData(t.dataId);
      return out;
    },
  });
}

/** DROPOUT_MASK (ops/dropout_kernel.ts) as a WGSL program: the dropout masks are made on the GPU, not uploaded. */
function registerDropoutMask(): void {
  if (tf.getKernel(DROPOUT_MASK, 'webgpu')) return;
  tf.registerKernel({
    kernelName: DROPOUT_MASK,
    backendName: 'webgpu',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { seeds, skips } = inputs as { seeds: tf.TensorInfo; skips: tf.TensorInfo };
      const { perRow, threshold, scale } = attrs as unknown as DropoutMaskAttrs;
      const outputShape = [seeds.shape[0] * perRow];
      const dispatchLayout = webgpu_util.flatDispatchLayout(outputShape);
      const workgroupSize: [number, number, number] = [128, 1, 1];
      const program: WebGPUProgram = {
        variableNames: ['seeds', 'skips'], outputShape, shaderKey: 'lora_studio_dropout_mask', size: true,
        uniforms: 'perRow : i32, threshold : u32, scale : f32,',
        dispatchLayout, dispatch: webgpu_util.computeDispatch(dispatchLayout, outputShape, workgroupSize), workgroupSize,
        getUserCode: () => DROPOUT_MASK_WGSL,
      };
      const uniforms = [{ type: 'int32', data: [perRow] }, { type: 'uint32', data: [threshold] }, { type: 'float32', data: [scale] }];
      return (backend as WebGPUBackend).runWebGPUProgram(program, [seeds, skips], 'float32', uniforms);
    },
  });
}

async function setWebGpu(): Promise<void> {
  const warn = console.warn;
  const warnings: string[] = [];
  console.warn = (...args: unknown[]) => void warnings.push(args.map(String).join(' '));
  let ok: boolean;
  try {
    ok = await tf.setBackend('webgpu');
    await tf.ready();
  } finally {
    console.warn = warn;
  }
  if (!ok || tf.getBackend() !== 'webgpu') {
    const why = warnings.filter((w) => !/^Initialization of backend/.test(w)).map((w) => w.split('\n')[0]).join('; ');
    throw new Error(`tfjs-backend-webgpu did not start${why ? `: ${why}` : ''}`);
  }
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}
