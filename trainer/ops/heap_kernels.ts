/**
 * Fused kernels for tfjs-backend-wasm that work in place in the wasm heap: one pass over memory where the
 * tf-op compositions ran one stock kernel per elementwise step (tanh GELU was nine kernels and the slowest of
 * them, tanh, is scalar on wasm; LayerNorm was ten). The elementwise passes are the SIMD functions of our wasm
 * module (elementwise_wat.ts, compiled with the GEMM); LayerNorm over rows whose length is not a multiple of 4
 * and the transposes are JavaScript over heap views (float64 inside a row). Registered once per thread for
 * the wasm backend only; elsewhere `heapKernelsAvailable()` is false and the model keeps the tf-op
 * compositions in layers.ts.
 *
 * - gelu_new(x) = 0.5·x·(1 + tanh(u)) = x·σ(2u), u = √(2/π)·(x + 0.044715·x³), and its derivative
 *   σ + x·σ·(1 − σ)·2u′: 2u and the products are SIMD passes, σ is XNNPACK's vectorized Sigmoid (the stock
 *   Tanh is scalar); backprop keeps only x.
 * - LayerNormRows / LayerNormRowsGrad: torch's LayerNorm over the last axis (biased variance) with frozen γ, β;
 *   forward also returns x̂ and 1/σ for the backward pass, dx = (1/σ)·(g − mean(g) − x̂·mean(g·x̂)), g = dy·γ.
 * - Transpose (float32 override for 2-D, and 3-D with perm [0, 2, 1]): a cache-blocked transpose. The stock
 *   kernel walks the output with strided reads; attention transposes its [B·H, T, T] blocks.
 */
import * as tf from '@tensorflow/tfjs-core';
import { elementwiseKernels, gemmAvailable } from './gemm';
import { heapF32, heapOffset, overrideWasmKernel, type WasmBackendLike } from './wasm_kernels';

const GELU_ARG = 'LoraStudioGeluNewArg';
const GELU_OUT = 'LoraStudioGeluNewOut';
const GELU_GRAD = 'LoraStudioGeluNewGrad';
const LAYER_NORM = 'LoraStudioLayerNormRows';
const LAYER_NORM_GRAD = 'LoraStudioLayerNormRowsGrad';

/**
 * Allocates outputs, all before any view is taken: an allocation can grow the heap, which detaches every
 * Float32Array made on the old buffer (writes to it would be silently lost).
 */
function outputs(backend: WasmBackendLike, shapes: number[][]): tf.TensorInfo[] {
  return shapes.map((shape) => backend.makeOutput(shape, 'float32'));
}

function layerNormForward(x: Float32Array, gamma: Float32Array, beta: Float32Array, eps: number, y: Float32Array, xhat: Float32Array, rstd: Float32Array): void {
  const C = gamma.length;
  const rows = x.length / C;
  for (let r = 0, o = 0; r < rows; r++, o += C) {
    let sum = 0;
    for (let j = 0; j < C; j++) sum += x[o + j];
    const mean = sum / C;
    let sq = 0;
    for (let j = 0; j < C; j++) {
      const d = x[o + j] - mean;
      sq += d * d;
    }
    const rs = 1 / Math.sqrt(sq / C + eps);
    rstd[r] = rs;
    for (let j = 0; j < C; j++) {
      const h = (x[o + j] - mean) * rs;
      xhat[o + j] = h;
      y[o + j] = h * gamma[j] + beta[j];
    }
  }
}

function layerNormBackward(dy: Float32Array, xhat: Float32Array, rstd: Float32Array, gamma: Float32Array, dx: Float32Array): void {
  const C = gamma.length;
  const rows = dy.length / C;
  for (let r = 0, o = 0; r < rows; r++, o += C) {
    let sg = 0;
    let sgx = 0;
    for (let j = 0; j < C; j++) {
      const g = dy[o + j] * gamma[j];
      sg += g;
      sgx += g * xhat[o + j];
    }
    const mg = sg / C;
    const mgx = sgx / C;
    const rs = rstd[r];
    for (let j = 0; j < C; j++) dx[o + j] = rs * (dy[o + j] * gamma[j] - mg - xhat[o + j] * mgx);
  }
}

const BLOCK = 8;

/** out [cols, rows] = xᵀ for x [rows, cols], in BLOCK × BLOCK tiles (8 measured fastest here, 8–32 close). */
function transpose2d(x: Float32Array, rows: number, cols: number, out: Float32Array): void {
  for (let i0 = 0; i0 < rows; i0 += BLOCK) {
    const i1 = Math.min(i0 + BLOCK, rows);
    for (let j0 = 0; j0 < cols; j0 += BLOCK) {
      const j1 = Math.min(j0 + BLOCK, cols);
      for (let j = j0; j < j1; j++) {
        const o = j * rows;
        for (let i = i0; i < i1; i++) out[o + i] = x[i * cols + j];
      }
    }
  }
}

let installed = false;

/** Registers the kernels for the wasm backend (idempotent). */
export function installHeapKernels(): void {
  if (installed || !tf.findBackendFactory('wasm')) return;
  installed = true;
  const wasm = (b: unknown) => b as WasmBackendLike;
  /** the wasm module's SIMD pass (registered only for backends where prepareGemm compiled the module) */
  const elementwise = (kernelName: string, names: string[], simd: 'gelu_arg' | 'gelu_out' | 'gelu_grad') =>
    tf.registerKernel({
      kernelName,
      backendName: 'wasm',
      kernelFunc: ({ inputs, backend }) => {
        const b = wasm(backend);
        const ins = names.map((n) => inputs[n] as tf.TensorInfo);
        const [out] = outputs(b, [[...ins[0].shape]]);
        const k = elementwiseKernels(b)!;
        (k[simd] as (...args: number[]) => void)(...ins.map((t) => heapOffset(b, t)), heapOffset(b, out), tf.util.sizeFromShape(out.shape));
        return out;
      },
    });
  elementwise(GELU_ARG, ['x'], 'gelu_arg');
  elementwise(GELU_OUT, ['x', 's'], 'gelu_out');
  elementwise(GELU_GRAD, ['x', 's', 'dy'], 'gelu_grad');
  tf.registerKernel({
    kernelName: LAYER_NORM,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const b = wasm(backend);
      const x = inputs.x as tf.TensorInfo;
      const [y, xhat, rstd] = outputs(b, [[...x.shape], [...x.shape], [x.shape[0], 1]]);
      const [rows, C] = x.shape;
      const k = elementwiseKernels(b);
      if (k && C % 4 === 0) {
        k.layer_norm(heapOffset(b, x), heapOffset(b, inputs.gamma as tf.TensorInfo), heapOffset(b, inputs.beta as tf.TensorInfo), heapOffset(b, y), heapOffset(b, xhat), heapOffset(b, rstd), rows, C, (attrs as { eps: number }).eps);
        return [y, xhat, rstd];
      }
      layerNormForward(heapF32(b, x), heapF32(b, inputs.gamma as tf.TensorInfo), heapF32(b, inputs.beta as tf.TensorInfo), (attrs as { eps: number }).eps, heapF32(b, y), heapF32(b, xhat), heapF32(b, rstd));
      return [y, xhat, rstd];
    },
  });
  tf.registerKernel({
    kernelName: LAYER_NORM_GRAD,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const b = wasm(backend);
      const dy = inputs.dy as tf.TensorInfo;
      const [out] = outputs(b, [[...dy.shape]]);
      const [rows, C] = dy.shape;
      const k = elementwiseKernels(b);
      if (k && C % 4 === 0) {
        k.layer_norm_grad(heapOffset(b, dy), heapOffset(b, inputs.xhat as tf.TensorInfo), heapOffset(b, inputs.rstd as tf.TensorInfo), heapOffset(b, inputs.gamma as tf.TensorInfo), heapOffset(b, out), rows, C);
        return out;
      }
      layerNormBackward(heapF32(b, dy), heapF32(b, inputs.xhat as tf.TensorInfo), heapF32(b, inputs.rstd as tf.TensorInfo), heapF32(b, inputs.gamma as tf.TensorInfo), heapF32(b, out));
      return out;
    },
  });
  overrideWasmKernel('Transpose', ({ inputs, attrs, backend: b }) => {
    const x = inputs.x as tf.TensorInfo;
    const perm = (attrs as unknown as { perm: number[] }).perm;
    // 2-D [1, 0], or a batch of 2-D transposes: [0, 2, 1]
    const batched = x.shape.length === 3 && perm[0] === 0 && perm[1] === 2;
    if (x.dtype !== 'float32' || !((x.shape.length === 2 && perm[0] === 1) || batched)) return null;
    const [n, rows, cols] = batched ? x.shape : [1, ...x.shape];
    const [out] = outputs(b, [batched ? [n, cols, rows] : [cols, rows]]);
    const [src, dst] = [heapF32(b, x), heapF32(b, out)];
    const size = rows * cols;
    for (let i = 0; i < n; i++) transpose2d(src.subarray(i * size, (i + 1) * size), rows, cols, dst.subarray(i * size, (i + 1) * size));
    return out;
  });
}

/** True when the fused kernels run on the current backend (wasm, with the GEMM module compiled). */
export function heapKernelsAvailable(): boolean {
  return gemmAvailable() && tf.getKernel(GELU_ARG, 'wasm') !== undefined;
}

/** gelu_new(x) with a fused forward and backward; saves x only. Needs heapKernelsAvailable(). */
export function geluNewFused(x: tf.Tensor): tf.Tensor {
  const op = tf.customGrad((xIn: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const v = xIn as tf.Tensor;
    (save as tf.GradSaveFunc)([v]);
    const sigma = (t: tf.Tensor) => tf.sigmoid(tf.engine().runKernel(GELU_ARG, { x: t }) as tf.Tensor);
    return {
      value: tf.engine().runKernel(GELU_OUT, { x: v, s: sigma(v) }) as tf.Tensor,
      // σ(2u) is remade from x: saving it would hold another [N, 4C] per layer until backprop
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => tf.engine().runKernel(GELU_GRAD, { x: saved[0], s: sigma(saved[0]), dy }) as tf.Tensor),
    };
  });
  return op(x);
}

/** LayerNorm over the last axis of x [N, C] with frozen γ, β, fused; saves x̂ and 1/σ. Needs heapKernelsAvailable(). */
export function layerNormFused(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): tf.Tensor2D {
  const op = tf.customGrad((xIn: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const [y, xhat, rstd] = tf.engine().runKernel(LAYER_NORM, { x: xIn as tf.Tensor, gamma, beta }, { eps } as unknown as tf.NamedAttrMap) as tf.Tensor[];
    (save as tf.GradSaveFunc)([xhat, rstd]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.engine().runKernel(LAYER_NORM_GRAD, { dy, xhat: saved[0], rstd: saved[1], gamma }) as tf.Tensor,
    };
  });
  return op(x) as tf.Tensor2D;
}
