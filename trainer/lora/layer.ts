/**
 * One LoRA-adapted linear layer: y = x·W + b + dropout(x)·A·B·scaling, with A held as [in, r] and B as [r, out]
 * (the transposes of PEFT's lora_A [r, in] and lora_B [out, r]) so every product is a plain 2-D matmul.
 * Also the initial values PEFT would give A and B, and the conversions to and from PEFT's layout.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { HostTensor } from '../io/safetensors';
import type { Rng } from '../util/rng';
import { gemm, linearProduct, linearProductT } from '../ops/gemm';
import { isHalf, type Matrix } from '../ops/half';
import { type DropoutStream, matmul, matmulFast, matmulFrozenFast } from '../ops/layers';

/** PEFT's init_lora_weights: true (A kaiming-uniform, B zeros), 'gaussian' (A ~ N(0, std 1/r), B zeros), false (both random). */
export type LoraInit = boolean | 'gaussian';

export interface LoraFactors {
  /** [in, r] */
  A: tf.Tensor2D;
  /** [r, out] */
  B: tf.Tensor2D;
  scaling: number;
  dropout: number;
}

/**
 * Initial A [r, in] and B [out, r] in PEFT's layout, as PEFT's LoraLayer.reset_lora_parameters draws them:
 * A ~ U(±1/√in) (torch's nn.Linear default, kaiming_uniform with a=√5) or N(0, (1/r)²) for 'gaussian';
 * B = 0, except with init false, where B keeps nn.Linear's default U(±1/√r).
 */
export function initialLoraFactors(inFeatures: number, outFeatures: number, r: number, init: LoraInit, rng: Rng): { A: HostTensor; B: HostTensor } {
  const A = new Float32Array(r * inFeatures);
  if (init === 'gaussian') {
    for (let i = 0; i < A.length; i++) A[i] = rng.normal() / r;
  } else {
    const bound = 1 / Math.sqrt(inFeatures);
    for (let i = 0; i < A.length; i++) A[i] = (2 * rng.next() - 1) * bound;
  }
  const B = new Float32Array(outFeatures * r);
  if (init === false) {
    const bound = 1 / Math.sqrt(r);
    for (let i = 0; i < B.length; i++) B[i] = (2 * rng.next() - 1) * bound;
  }
  return { A: { shape: [r, inFeatures], data: A, dtype: 'F32' }, B: { shape: [outFeatures, r], data: B, dtype: 'F32' } };
}

/** Transposes a row-major [rows, cols] matrix. */
export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < rows; i++) {
    const row = i * cols;
    for (let j = 0; j < cols; j++) out[j * rows + i] = data[row + j];
  }
  return out;
}

/** A host matrix turned around: [a, b] → [b, a]. */
export function transposeHost(t: HostTensor): HostTensor {
  if (t.shape.length !== 2) throw new Error(`transposeHost: expected a matrix, got shape [${t.shape}]`);
  const [rows, cols] = t.shape;
  return { shape: [cols, rows], data: transpose2d(t.data, rows, cols), dtype: t.dtype };
}

/** The LoRA branch alone: dropout(x)·A·B·scaling, for x [N, in]. */
export function loraDelta(x: tf.Tensor2D, f: LoraFactors, drop: DropoutStream): tf.Tensor2D {
  const xa = matmul(drop.apply(x, f.dropout), f.A);
  return tf.mul(matmul(xa, f.B), f.scaling);
}

/**
 * The whole adapted layer: x·W (+ b) (+ the LoRA branch). `wT` optionally holds Wᵀ for a frozen W.
 * `fast`: the frozen base product uses matmulFrozenFast (gradient (W·dyᵀ)ᵀ, no weight transpose).
 */
export function adaptedLinear(
  x: tf.Tensor2D,
  w: tf.Tensor2D,
  bias: tf.Tensor1D | undefined,
  lora: LoraFactors | undefined,
  drop: DropoutStream,
  wT?: tf.Tensor2D,
  fast = false,
): tf.Tensor2D {
  let y = fast ? matmulFast(x, w) : matmul(x, w, wT);
  if (bias) y = tf.add(y, bias);
  if (lora) y = tf.add(y, loraDelta(x, lora, drop));
  return y;
}

/**
 * The adapted layer on the fast path, as one op with a hand-written gradient, for a frozen W and bias and a
 * trainable A, B: y = x·W + b + s·(x⊙m)·A·B. Saves x⊙m and (x⊙m)·A only (autograd kept every product's
 * inputs, including the [N, out] pre-bias output). dx = dy·Wᵀ + s·((dy·Bᵀ)·Aᵀ)⊙m, dB = s·(xA)ᵀ·dy,
 * dA = (x⊙m)ᵀ·(s·dy·Bᵀ); the products with W, and those with a transposed operand, go through gemm.
 * Any other mix (trained W or bias, frozen factors) uses adaptedLinear.
 */
export function adaptedLinearFast(
  x: tf.Tensor2D,
  w: Matrix,
  bias: tf.Tensor1D | undefined,
  lora: LoraFactors | undefined,
  drop: DropoutStream,
): tf.Tensor2D {
  if (isHalf(w)) {
    // a 16-bit weight is frozen with a frozen bias (models/plan.ts keeps any other in float32)
    if ((bias && isTrainableVar(bias)) || (lora && !(isTrainableVar(lora.A) && isTrainableVar(lora.B)))) throw new Error('internal: a 16-bit weight beside a trained bias or frozen LoRA factors');
    return lora ? loraProductFast(x, w, bias, lora, drop) : matmulFrozenFast(x, w, bias);
  }
  const plain = !isTrainableVar(w) && !(bias && isTrainableVar(bias)) && (!lora || (isTrainableVar(lora.A) && isTrainableVar(lora.B)));
  if (!plain) return adaptedLinear(x, w, bias, lora, drop, undefined, true);
  if (!lora) return isTrainableVar(w) ? matmulFast(x, w) : matmulFrozenFast(x, w, bias);
  return loraProductFast(x, w, bias, lora, drop);
}

/** x·W + b + s·(dropout(x)·A)·B for a frozen W and bias and trainable A, B: one op. */
function loraProductFast(x: tf.Tensor2D, w: Matrix, bias: tf.Tensor1D | undefined, lora: LoraFactors, drop: DropoutStream): tf.Tensor2D {
  // the dropout mask is a constant of the op, not an input (an input's zero gradient would live until backprop ends)
  const m = drop.multiplier(x.shape, lora.dropout);
  const s = lora.scaling;
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const save = args[3] as tf.GradSaveFunc;
    const [xIn, A, B] = args as tf.Tensor2D[];
    const xd = m ? (tf.mul(xIn, m) as tf.Tensor2D) : xIn;
    const xa = tf.matMul(xd, A);
    save(m ? [xd, xa, A, B, m] : [xd, xa, A, B]);
    const y = tf.add(linearProduct(xIn, w, bias), tf.mul(tf.matMul(xa, B), s));
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [sxd, sxa, sA, sB, sm] = saved as tf.Tensor2D[];
        const g = dy as tf.Tensor2D;
        const gB = tf.mul(gemm(g, sB, { transposeB: true }), s) as tf.Tensor2D; // [N, r]
        let dxLora = gemm(gB, sA, { transposeB: true }); // [N, in]
        if (sm) dxLora = tf.mul(dxLora, sm);
        const dx = tf.add(linearProductT(g, w), dxLora);
        // dA = (x⊙m)ᵀ·gB and dB = s·(xA)ᵀ·dy, made as (gBᵀ·(x⊙m))ᵀ and (xA)ᵀ·dy: only [N, r] tensors are transposed
        const dA = tf.transpose(gemm(tf.transpose(gB), sxd));
        const dB = tf.mul(gemm(tf.transpose(sxa), g), s);
        return [dx, dA, dB];
      }),
    };
  });
  return op(x, lora.A, lora.B) as tf.Tensor2D;
}

function isTrainableVar(t: tf.Tensor): boolean {
  return t instanceof tf.Variable && t.trainable;
}
