/**
 * One LoRA-adapted linear layer: y = x·W + b + dropout(x)·A·B·scaling, with A held as [in, r] and B as [r, out]
 * (the transposes of PEFT's lora_A [r, in] and lora_B [out, r]) so every product is a plain 2-D matmul.
 * Also the initial values PEFT would give A and B, and the conversions to and from PEFT's layout.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { HostTensor } from '../io/safetensors';
import type { Rng } from '../util/rng';
import { type DropoutStream, matmul } from '../models/gpt2/layers';

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

/** The whole adapted layer: x·W (+ b) (+ the LoRA branch). `wT` optionally holds Wᵀ for a frozen W. */
export function adaptedLinear(
  x: tf.Tensor2D,
  w: tf.Tensor2D,
  bias: tf.Tensor1D | undefined,
  lora: LoraFactors | undefined,
  drop: DropoutStream,
  wT?: tf.Tensor2D,
): tf.Tensor2D {
  let y = matmul(x, w, wT);
  if (bias) y = tf.add(y, bias);
  if (lora) y = tf.add(y, loraDelta(x, lora, drop));
  return y;
}
