/**
 * The tensor building blocks of GPT-2, written so that forward and backward stay on every backend's fast path:
 * 2-D matmuls whose gradients use explicit transposes (wasm's matmul is fast only for plain untransposed 2-D
 * products), LayerNorm, the activations, seeded dropout, and cross entropy through a one-hot mask (no gather:
 * wasm has no gradient for it).
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core alone registers no gradients; the umbrella package would import this for us.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { Rng } from '../../util/rng';

/**
 * x [N, in] · w [in, out] for a frozen w: the backward pass computes only dx = dy · wᵀ.
 * `wT` is w's transpose when the caller already holds it (the tied LM head holds wte itself).
 */
export function matmulFrozen(x: tf.Tensor2D, w: tf.Tensor2D, wT?: tf.Tensor2D): tf.Tensor2D {
  const op = tf.customGrad((xIn: tf.Tensor | tf.GradSaveFunc) => ({
    value: tf.matMul(xIn as tf.Tensor2D, w),
    gradFunc: (dy: tf.Tensor) => tf.tidy(() => tf.matMul(dy as tf.Tensor2D, wT ?? tf.transpose(w))),
  }));
  return op(x) as tf.Tensor2D;
}

/** x [N, in] · w [in, out] with gradients for both: dx = dy · wᵀ, dw = xᵀ · dy, each a plain 2-D product. */
export function matmulBoth(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  const op = tf.customGrad((xIn: tf.Tensor | tf.GradSaveFunc, wIn: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const a = xIn as tf.Tensor2D;
    const b = wIn as tf.Tensor2D;
    (save as tf.GradSaveFunc)([a, b]);
    return {
      value: tf.matMul(a, b),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sa, sb] = saved as tf.Tensor2D[];
        return tf.tidy(() => [tf.matMul(dy as tf.Tensor2D, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy as tf.Tensor2D)]);
      },
    };
  });
  return op(x, w) as tf.Tensor2D;
}

/** x · w, choosing the variant by whether w is trainable (a trainable tf.Variable). */
export function matmul(x: tf.Tensor2D, w: tf.Tensor2D, wT?: tf.Tensor2D): tf.Tensor2D {
  return isTrainable(w) ? matmulBoth(x, w) : matmulFrozen(x, w, wT);
}

export function isTrainable(t: tf.Tensor): boolean {
  return t instanceof tf.Variable && t.trainable;
}

/** LayerNorm over the last axis, as torch.nn.LayerNorm (biased variance). */
export function layerNorm(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): tf.Tensor2D {
  const mean = tf.mean(x, -1, true);
  const centered = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centered), -1, true);
  return tf.add(tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, eps))), gamma), beta);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** transformers' ACT2FN for the names GPT-2 configs use. */
export function activation(name: string, x: tf.Tensor): tf.Tensor {
  switch (name) {
    case 'gelu_new':
    case 'gelu_pytorch_tanh': {
      // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
      const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), SQRT_2_OVER_PI);
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
    }
    case 'gelu':
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
    case 'relu':
      return tf.relu(x);
    default:
      throw new Error(`unsupported activation_function ${JSON.stringify(name)}`);
  }
}

/**
 * Dropout for one forward pass: identity in eval mode; in training every dropout site draws its own seed from
 * one stream, so a given seed reproduces the whole pass.
 */
export class DropoutStream {
  private readonly rng: Rng | null;

  constructor(training: boolean, seed: number) {
    this.rng = training ? new Rng(seed) : null;
  }

  apply<T extends tf.Tensor>(x: T, rate: number): T {
    if (!this.rng || rate <= 0) return x;
    return tf.dropout(x, rate, undefined, this.rng.int(2 ** 31)) as T;
  }
}

/**
 * Rows of a frozen table, off the tape: a gather's gradient (UnsortedSegmentSum) is missing on wasm, and a taped
 * gather would also copy the whole table to save it for a backward pass that never comes.
 */
export function frozenRows(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  const op = tf.customGrad((idsIn: tf.Tensor | tf.GradSaveFunc) => ({
    value: tf.gather(table, idsIn as tf.Tensor1D) as tf.Tensor2D,
    gradFunc: () => tf.zerosLike(idsIn as tf.Tensor),
  }));
  return op(ids) as tf.Tensor2D;
}

/** Where each row's target sits in the flattened [rows, K] block (0 for rows without a target), and a 0/1 row mask. */
function targetIndex(targets: Int32Array, K: number): { flat: Int32Array; valid: Float32Array } {
  const flat = new Int32Array(targets.length);
  const valid = new Float32Array(targets.length);
  targets.forEach((t, r) => {
    if (t >= 0 && t < K) {
      flat[r] = r * K + t;
      valid[r] = 1;
    }
  });
  return { flat, valid };
}

/** Per-row NLL of a [n, K] logits block, computed outside the tape (inside a custom op's forward). */
function blockNll(logits: tf.Tensor2D, targets: Int32Array): tf.Tensor1D {
  const { flat, valid } = targetIndex(targets, logits.shape[1]);
  const picked = tf.gather(tf.reshape(tf.logSoftmax(logits), [-1]), tf.tensor1d(flat, 'int32'));
  return tf.mul(tf.neg(picked), tf.tensor1d(valid)) as tf.Tensor1D;
}

/** d(row NLL)/d(logits) scaled by the upstream dy: (softmax − onehot) · dy, zero for rows without a target. */
function blockNllGrad(logits: tf.Tensor2D, targets: Int32Array, dy: tf.Tensor1D): tf.Tensor2D {
  const K = logits.shape[1];
  const { valid } = targetIndex(targets, K);
  // int32 one-hot then a cast: wasm's OneHot kernel ignores a float32 dtype and writes int32 bits.
  const onehot = tf.cast(tf.oneHot(tf.tensor1d(targets, 'int32'), K), 'float32');
  const scale = tf.reshape(tf.mul(dy, tf.tensor1d(valid)), [-1, 1]);
  return tf.mul(tf.sub(tf.softmax(logits), onehot), scale) as tf.Tensor2D;
}

/**
 * Cross entropy of rows of logits [N, K] against integer targets; a target of -1 (or any index outside [0, K))
 * contributes nothing. Returns the per-row NLL [N]. One custom op: it saves only the logits.
 */
export function crossEntropyRows(logits: tf.Tensor2D, targets: Int32Array): tf.Tensor1D {
  const op = tf.customGrad((x: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    (save as tf.GradSaveFunc)([x as tf.Tensor]);
    return {
      value: blockNll(x as tf.Tensor2D, targets),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => blockNllGrad(saved[0] as tf.Tensor2D, targets, dy as tf.Tensor1D)),
    };
  });
  return op(logits) as tf.Tensor1D;
}

/** Rows per block of the tied head, so that a [rows, vocab] block stays near 16M floats (64 MB). */
export const headRowsPerBlock = (vocab: number) => Math.max(1, Math.floor(2 ** 24 / vocab));

/**
 * Per-row NLL of the frozen tied LM head, h [N, C] · wT [C, V], without ever holding [N, V]: the logits are made
 * block by block, in the forward pass and again in the backward pass (only h is saved). `w` is wT's transpose
 * (wte itself), so dh = g · w is a plain matmul.
 */
export function tiedHeadNll(h: tf.Tensor2D, wT: tf.Tensor2D, w: tf.Tensor2D, targets: Int32Array, rows = headRowsPerBlock(wT.shape[1])): tf.Tensor1D {
  const N = h.shape[0];
  const C = h.shape[1];
  const blocks: Array<[number, number]> = [];
  for (let start = 0; start < N; start += rows) blocks.push([start, Math.min(rows, N - start)]);
  const op = tf.customGrad((hIn: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const x = hIn as tf.Tensor2D;
    (save as tf.GradSaveFunc)([x]);
    const parts = blocks.map(([start, n]) => tf.tidy(() => blockNll(tf.matMul(tf.slice(x, [start, 0], [n, C]), wT), targets.subarray(start, start + n))));
    return {
      value: parts.length === 1 ? parts[0] : tf.concat(parts),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const hs = saved[0] as tf.Tensor2D;
        const grads = blocks.map(([start, n]) => tf.tidy(() => {
          const logits = tf.matMul(tf.slice(hs, [start, 0], [n, C]), wT) as tf.Tensor2D;
          const g = blockNllGrad(logits, targets.subarray(start, start + n), tf.slice(dy as tf.Tensor1D, [start], [n]));
          return tf.matMul(g, w);
        }));
        return grads.length === 1 ? grads[0] : tf.tidy(() => tf.concat(grads));
      },
    };
  });
  return op(h) as tf.Tensor1D;
}
