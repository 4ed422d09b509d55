/**
 * Products with a frozen weight on the wasm backend, through LoRA Studio's own GEMM (gemm_wat.ts), registered as
 * the tfjs kernel `LoraStudioGemm`; on every other backend, tf.matMul.
 *
 * `gemm(a, b)` is a·b for b [k, m]; with `transposeB`, a·bᵀ for b [m, k]; `bias` is added in the same pass.
 * So one copy of each weight serves the forward product x·W and the backward product dy·Wᵀ, and the tied head's
 * h·wteᵀ and p·wte, with no transposed copy and no XNNPACK packed copy.
 *
 * Two builds of the module: with fused multiply-adds (relaxed SIMD; V8 ≥ 11.4 has it, Node 20's V8 behind a
 * flag, which prepareGemm sets) and with separate multiplies and adds, for runtimes without relaxed SIMD.
 * `gemmVariant()` says which one runs. The binaries are made by the build (dist/trainer/gemm*.wasm, beside
 * the bundle); running from source, they are assembled from their text with wabt (a dev dependency).
 * prepareGemm() must have run (backend.ts calls it when the wasm backend starts); each backend instance gets
 * its own instance of the module on its own memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as tf from '@tensorflow/tfjs-core';
import { GEMM_B_BF16, GEMM_B_F16, GEMM_B_F32, GEMM_SCRATCH_BYTES, gemmWat } from './gemm_wat';
import { type HalfMatrix, isHalf, type Matrix } from './half';
import { heapOffset, type WasmBackendLike } from './wasm_kernels';

const KERNEL = 'LoraStudioGemm';
const BATCH_KERNEL = 'LoraStudioGemmBatch';
export type GemmVariant = 'fma' | 'mul-add';
/** The binaries' file names beside the bundled trainer. */
export const GEMM_WASM: Record<GemmVariant, string> = { fma: 'gemm-fma.wasm', 'mul-add': 'gemm.wasm' };

/** A module of one function that returns f32x4.relaxed_madd of three zero vectors: valid where relaxed SIMD is. */
const RELAXED_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 61, 1, 59, 0,
  ...[0, 1, 2].flatMap(() => [253, 12, ...new Array<number>(16).fill(0)]), 253, 133, 2, 11,
]);

interface Attrs {
  transposeB: boolean;
  /** B's storage: GEMM_B_F32, or a 16-bit HalfMatrix (GEMM_B_BF16, GEMM_B_F16) whose int32 `packed` is the input */
  bFormat: number;
}
/** The fused elementwise kernels the module also exports (elementwise_wat.ts): byte addresses, float counts. */
export interface ElementwiseKernels {
  gelu_arg(x: number, out: number, n: number): void;
  gelu_out(x: number, s: number, out: number, n: number): void;
  gelu_grad(x: number, s: number, dy: number, out: number, n: number): void;
  layer_norm(x: number, gamma: number, beta: number, y: number, xhat: number, rstd: number, rows: number, C: number, eps: number): void;
  layer_norm_grad(dy: number, xhat: number, rstd: number, gamma: number, dx: number, rows: number, C: number): void;
}
interface Instance {
  gemm: (a: number, lda: number, b: number, ldb: number, bt: number, c: number, ldc: number, bias: number, n: number, k: number, m: number, scratch: number) => void;
  elementwise: ElementwiseKernels;
  scratch: number;
}
type WasmModule = WasmBackendLike['wasm'] & { asm: { memory: WebAssembly.Memory }; _malloc(bytes: number): number };

type Wabt = () => Promise<{ parseWat(name: string, text: string, features: { simd: boolean; relaxed_simd: boolean }): { toBinary(o: object): { buffer: Uint8Array<ArrayBuffer> }; destroy(): void } }>;
/** A run-time require: wabt is a dev dependency, never bundled (the bundle has gemm.wasm instead). */
const devRequire: NodeJS.Require = require;

let compiled: WebAssembly.Module | null = null;
let variant: GemmVariant | null = null;
/** per backend instance, for the module compiled now */
let instances = new WeakMap<object, Instance>();

/** Assembles a variant's text with wabt (from source; the build writes the results to dist/trainer/). */
export async function assembleGemm(which: GemmVariant): Promise<Uint8Array<ArrayBuffer>> {
  const wabt = await (devRequire('wabt') as Wabt)();
  const parsed = wabt.parseWat('gemm.wat', gemmWat({ fma: which === 'fma' }), { simd: true, relaxed_simd: true });
  try {
    return parsed.toBinary({}).buffer;
  } finally {
    parsed.destroy();
  }
}

/** Whether this runtime compiles relaxed SIMD; on a V8 that has it behind a flag (Node 20), sets the flag. */
function relaxedSimd(): boolean {
  if (WebAssembly.validate(RELAXED_PROBE)) return true;
  v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
  return WebAssembly.validate(RELAXED_PROBE);
}

/**
 * Compiles the module once per thread and registers the kernel for wasm (idempotent). `which` forces a build
 * (tests run both); by default, fma where the runtime has relaxed SIMD.
 */
export async function prepareGemm(which?: GemmVariant): Promise<void> {
  if (compiled && (which === undefined || which === variant)) return;
  which ??= relaxedSimd() ? 'fma' : 'mul-add';
  const built = path.join(__dirname, GEMM_WASM[which]);
  const bytes = fs.existsSync(built) ? new Uint8Array(fs.readFileSync(built)) : await assembleGemm(which);
  compiled = new WebAssembly.Module(bytes);
  variant = which;
  instances = new WeakMap();
  if (!tf.getKernel(KERNEL, 'wasm')) {
    tf.registerKernel({ kernelName: KERNEL, backendName: 'wasm', kernelFunc: ({ inputs, attrs, backend }) => run(inputs, attrs as unknown as Attrs, backend as unknown as WasmBackendLike) });
    tf.registerKernel({ kernelName: BATCH_KERNEL, backendName: 'wasm', kernelFunc: ({ inputs, attrs, backend }) => runBatch(inputs, attrs as unknown as BatchAttrs, backend as unknown as WasmBackendLike) });
  }
}

/** The module instance on this backend's memory, with its scratch buffer. */
function instanceFor(backend: WasmBackendLike): Instance {
  let inst = instances.get(backend);
  if (!inst) {
    const wasm = backend.wasm as WasmModule;
    const exports = new WebAssembly.Instance(compiled!, { env: { memory: wasm.asm.memory } }).exports as unknown as Pick<Instance, 'gemm'> & ElementwiseKernels;
    // never freed: one scratch buffer per backend, for as long as the backend lives
    inst = { gemm: exports.gemm, elementwise: exports, scratch: wasm._malloc(GEMM_SCRATCH_BYTES) };
    instances.set(backend, inst);
  }
  return inst;
}

function run(inputs: tf.NamedTensorInfoMap, attrs: Attrs, backend: WasmBackendLike): tf.TensorInfo {
  const { a, b, bias } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo; bias?: tf.TensorInfo };
  const [n, k] = a.shape;
  const fmt = attrs.bFormat ?? GEMM_B_F32;
  // a 16-bit B arrives as its int32 words: two elements per word
  const bShape = fmt === GEMM_B_F32 ? b.shape : [b.shape[0], b.shape[1] * 2];
  const [m, kb] = attrs.transposeB ? bShape : [bShape[1], bShape[0]];
  if (kb !== k) throw new Error(`internal: gemm of [${a.shape}] by ${attrs.transposeB ? 'the transpose of ' : ''}[${bShape}]`);
  const inst = instanceFor(backend);
  // allocate first: an allocation may grow the heap (the module sees the same memory object either way)
  const out = backend.makeOutput([n, m], 'float32');
  const at = (t: tf.TensorInfo) => heapOffset(backend, t);
  const ldb = bShape[1] * (fmt === GEMM_B_F32 ? 4 : 2);
  inst.gemm(at(a), k * 4, at(b), ldb, (attrs.transposeB ? 1 : 0) | (fmt << 1), at(out), m * 4, bias ? at(bias) : 0, n, k, m, inst.scratch);
  return out;
}

/**
 * One product of gemmBatch: C block = A block · B block (or · B blockᵀ), each block given by the index of its
 * tensor among the inputs (A, B) or the output (C), an offset and a row stride, in elements.
 */
export interface GemmJob {
  a: number;
  aOffset: number;
  lda: number;
  b: number;
  bOffset: number;
  ldb: number;
  transposeB: boolean;
  cOffset: number;
  ldc: number;
  n: number;
  k: number;
  m: number;
}
const JOB_FIELDS = 12;
interface BatchAttrs {
  shape: number[];
  jobs: number[];
}

function runBatch(inputs: tf.NamedTensorInfoMap, attrs: BatchAttrs, backend: WasmBackendLike): tf.TensorInfo {
  const inst = instanceFor(backend);
  const out = backend.makeOutput(attrs.shape, 'float32');
  const ins = Object.keys(inputs).map((_, i) => inputs[`t${i}`] as tf.TensorInfo);
  const at = (t: tf.TensorInfo) => heapOffset(backend, t);
  const base = ins.map(at);
  const c = at(out);
  const j = attrs.jobs;
  for (let i = 0; i < j.length; i += JOB_FIELDS) {
    const [a, aOffset, lda, b, bOffset, ldb, bt, cOffset, ldc, n, k, m] = j.slice(i, i + JOB_FIELDS);
    inst.gemm(base[a] + aOffset * 4, lda * 4, base[b] + bOffset * 4, ldb * 4, bt, c + cOffset * 4, ldc * 4, 0, n, k, m, inst.scratch);
  }
  return out;
}

/**
 * Many products over blocks of the given tensors (strided views: rows of `lda` elements apart), each written into
 * its block of one new [shape] tensor; entries no job writes are unspecified. Only on wasm (gemmAvailable()): it
 * replaces per-block slices, products and concats, e.g. attention's per-(example, head) products. No gradient.
 */
export function gemmBatch(inputs: tf.Tensor[], shape: number[], jobs: GemmJob[]): tf.Tensor {
  if (!gemmAvailable()) throw new Error('internal: gemmBatch runs on the wasm backend only');
  for (const job of jobs) {
    if (job.k < 1) throw new Error('internal: gemmBatch needs k ≥ 1');
  }
  const flat = jobs.flatMap((q) => [q.a, q.aOffset, q.lda, q.b, q.bOffset, q.ldb, q.transposeB ? 1 : 0, q.cOffset, q.ldc, q.n, q.k, q.m]);
  const named: tf.NamedTensorMap = Object.fromEntries(inputs.map((t, i) => [`t${i}`, t]));
  return tf.engine().runKernel(BATCH_KERNEL, named, { shape, jobs: flat } as unknown as tf.NamedAttrMap) as tf.Tensor;
}

/** The module's elementwise kernels on this backend (heap_kernels.ts uses them); null before prepareGemm. */
export function elementwiseKernels(backend: WasmBackendLike): ElementwiseKernels | null {
  return compiled ? instanceFor(backend).elementwise : null;
}

/** Which build of the GEMM runs in this thread (null before prepareGemm). */
export function gemmVariant(): GemmVariant | null {
  return variant;
}

/** True when products run through the GEMM here (the wasm backend, with prepareGemm done). */
export function gemmAvailable(): boolean {
  return compiled !== null && tf.getBackend() === 'wasm';
}

/**
 * a [n, k] · b [k, m] (or a · bᵀ for b [m, k] with `transposeB`) + bias [m]. No gradient: callers use it inside
 * ops with their own gradient. a, the bias and the result are float32; b is float32 or, on wasm only, a 16-bit
 * HalfMatrix (half.ts), widened as it is packed.
 */
export function gemm(a: tf.Tensor2D, b: Matrix, opts: { transposeB?: boolean; bias?: tf.Tensor1D } = {}): tf.Tensor2D {
  const transposeB = opts.transposeB === true;
  const half = isHalf(b);
  if (half && !gemmAvailable()) throw new Error('internal: a 16-bit matrix outside the wasm GEMM');
  if (!gemmAvailable() || a.shape[1] === 0 || a.shape[0] === 0) {
    const product: tf.Tensor2D = half ? tf.zeros([a.shape[0], transposeB ? b.shape[0] : b.shape[1]]) : tf.matMul(a, b, false, transposeB);
    return opts.bias ? (tf.add(product, opts.bias) as tf.Tensor2D) : product;
  }
  const bt = half ? b.packed : b;
  const inputs: tf.NamedTensorMap = opts.bias ? { a, b: bt, bias: opts.bias } : { a, b: bt };
  return tf.engine().runKernel(KERNEL, inputs, { transposeB, bFormat: half ? formatCode(b) : GEMM_B_F32 } as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

function formatCode(b: HalfMatrix): number {
  return b.format === 'BF16' ? GEMM_B_BF16 : GEMM_B_F16;
}

/**
 * x · W for a frozen Linear weight W: held as [in, out] in float32, or as HF's [out, in] in 16 bits (a
 * HalfMatrix is never transposed on the host: the GEMM reads either layout).
 */
export function linearProduct(x: tf.Tensor2D, w: Matrix, bias?: tf.Tensor1D): tf.Tensor2D {
  return gemm(x, w, { transposeB: isHalf(w), bias });
}

/** dy · Wᵀ for the same W (the input gradient of linearProduct). */
export function linearProductT(dy: tf.Tensor2D, w: Matrix): tf.Tensor2D {
  return gemm(dy, w, { transposeB: !isHalf(w) });
}
