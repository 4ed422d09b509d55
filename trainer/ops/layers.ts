/**
 * The tensor building blocks of GPT-2, written so that forward and backward stay on every backend's fast path:
 * 2-D matmuls whose gradients use explicit transposes (wasm's matmul is fast only for plain untransposed 2-D
 * products), LayerNorm, the activations, seeded dropout, and cross entropy through a one-hot mask (no gather:
 * wasm has no gradient for it).
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core alone registers no gradients; the umbrella package would import this for us.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { Rng } from '../util/rng';
import { gemm, linearProduct, linearProductT } from './gemm';
import { type Matrix, matrixRows } from './half';
import { geluNewFused, heapKernelsAvailable, layerNormFused } from './heap_kernels';
import { deviceDropoutMask, deviceMasks } from './dropout_kernel';

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
 * one stream, so a given seed reproduces the whole pass. Each batch row (example) gets its own mask from
 * (site seed, global row index): a shard of the batch (rows rowOffset…rowOffset+rows−1) draws exactly the
 * masks those rows get in the whole batch, which is what lets data-parallel workers equal one worker.
 */
export class DropoutStream {
  private readonly rng: Rng | null;
  /** set on a view from atPositions: tensors hold one entry per batch row, at these positions of T */
  private picked: { positions: Int32Array; T: number } | null = null;

  /** `rows`: batch rows in every tensor this pass drops (its first axis is rows × something). */
  constructor(training: boolean, seed: number, private readonly rows = 1, private readonly rowOffset = 0) {
    this.rng = training ? new Rng(seed) : null;
  }

  /**
   * The same stream (its sites advance together with this one) for tensors that hold only one position of each
   * batch row, `positions[b]` of T: each mask is that row of the mask the whole [rows·T, …] tensor would get.
   */
  atPositions(positions: Int32Array, T: number): DropoutStream {
    const view = Object.create(this) as DropoutStream;
    view.picked = { positions, T };
    return view;
  }

  apply<T extends tf.Tensor>(x: T, rate: number): T {
    if (!this.rng || rate <= 0) return x;
    return tf.mul(x, this.multiplier(x.shape, rate)!) as T;
  }

  /** The 0 or 1/(1−rate) multiplier tf.dropout would use, for the next site; null in eval mode or at rate 0. */
  multiplier(shape: number[], rate: number): tf.Tensor | null {
    if (!this.rng || rate <= 0) return null;
    const site = this.rng.int(2 ** 31);
    const rows = this.rows;
    const picked = this.picked;
    if (picked ? shape[0] !== rows : shape[0] % rows !== 0) throw new Error(`internal: dropout over ${shape[0]} leading entries for ${rows} batch rows`);
    const inner = tf.util.sizeFromShape(shape.slice(1));
    const perRow = picked ? inner : (shape[0] / rows) * inner;
    if (deviceMasks()) {
      // the same streams, made where the backend's tensors live (a GPU): ops/dropout_kernel.ts
      const seeds = Int32Array.from({ length: rows }, (_, b) => rowSeed(site, this.rowOffset + b));
      const skips = picked ? Int32Array.from(picked.positions, (p) => p * inner) : new Int32Array(rows);
      return tf.tidy(() => tf.reshape(deviceDropoutMask(seeds, skips, perRow, rate), shape));
    }
    const data = new Float32Array(tf.util.sizeFromShape(shape));
    for (let b = 0; b < rows; b++) {
      const seed = rowSeed(site, this.rowOffset + b);
      // a picked row draws only its own stretch of the row's stream
      data.set(dropoutMask(perRow, seed, rate, picked ? picked.positions[b] * inner : 0), b * perRow);
    }
    return tf.tensor(data, shape, 'float32');
  }
}

/**
 * n dropout multipliers from one seed: 1/(1 − rate) with probability 1 − rate, else 0, from a mulberry32 stream
 * (the Rng of util/rng, inlined), starting `skip` draws in (its state is a counter, so skipping is one step).
 * Made on the host in one pass: tf.randomUniform plus three elementwise kernels cost about ten times more on wasm.
 */
export function dropoutMask(n: number, seed: number, rate: number, skip = 0): Float32Array {
  const out = new Float32Array(n);
  const scale = 1 / (1 - rate);
  let state = (seed + Math.imul(skip, 0x6d2b79f5)) >>> 0;
  for (let i = 0; i < n; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 4294967296 >= rate ? scale : 0;
  }
  return out;
}

/** A dropout seed for (site, row), in int32 range. */
function rowSeed(site: number, row: number): number {
  let h = Math.imul(site ^ 0x27d4eb2f, 0x165667b1) ^ Math.imul(row + 1, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15), 0x85ebca77);
  return (h ^ (h >>> 13)) & 0x7fffffff;
}

/**
 * x[rows] for x [N, C] with its gradient: the rows of dy scattered back into zeros [N, C] (ScatterNd; a gather's
 * own gradient, UnsortedSegmentSum, is missing on wasm).
 */
export function pickRows(x: tf.Tensor2D, rows: Int32Array): tf.Tensor2D {
  const [N, C] = x.shape;
  const op = tf.customGrad((xIn: tf.Tensor | tf.GradSaveFunc) => ({
    value: tf.gather(xIn as tf.Tensor2D, tf.tensor1d(rows, 'int32')) as tf.Tensor2D,
    gradFunc: (dy: tf.Tensor) => tf.tidy(() => tf.scatterND(tf.tensor2d(rows, [rows.length, 1], 'int32'), dy, [N, C])),
  }));
  return op(x) as tf.Tensor2D;
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

/**
 * The fast frozen matmul: x [N, in] · w [in, out] (+ a frozen bias, in the same pass), with dx = dy · wᵀ. On wasm
 * both go through our GEMM (gemm.ts), which reads w where it lies for either product; nothing is saved for
 * backprop. A 16-bit w (ops/half.ts) is held as HF's [out, in] instead.
 */
export function matmulFrozenFast(x: tf.Tensor2D, w: Matrix, bias?: tf.Tensor1D): tf.Tensor2D {
  const op = tf.customGrad((xIn: tf.Tensor | tf.GradSaveFunc) => ({
    value: linearProduct(xIn as tf.Tensor2D, w, bias),
    gradFunc: (dy: tf.Tensor) => linearProductT(dy as tf.Tensor2D, w),
  }));
  return op(x) as tf.Tensor2D;
}

/** x · w on the fast path: frozen w → matmulFrozenFast, trainable w → matmulBoth. */
export function matmulFast(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  return isTrainable(w) ? matmulBoth(x, w) : matmulFrozenFast(x, w);
}

/**
 * gelu_new as one op with a hand-written gradient: saves x and tanh(inner) (two tensors, where autograd kept
 * about eight), uses x·x·x instead of pow (pow is ten times slower on wasm).
 */
export function geluTanhFast(x: tf.Tensor): tf.Tensor {
  if (heapKernelsAvailable()) return geluNewFused(x);
  const op = tf.customGrad((xIn: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const v = xIn as tf.Tensor;
    const t = tf.tanh(tf.mul(tf.add(v, tf.mul(tf.mul(tf.mul(v, v), v), 0.044715)), SQRT_2_OVER_PI));
    (save as tf.GradSaveFunc)([v, t]);
    return {
      value: tf.mul(tf.mul(v, 0.5), tf.add(t, 1)),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [sx, st] = saved;
        const dInner = tf.mul(tf.add(tf.mul(tf.mul(sx, sx), 3 * 0.044715), 1), SQRT_2_OVER_PI);
        const d = tf.add(tf.mul(tf.add(st, 1), 0.5), tf.mul(tf.mul(tf.mul(sx, 0.5), tf.sub(1, tf.mul(st, st))), dInner));
        return tf.mul(dy, d);
      }),
    };
  });
  return op(x);
}

/** transformers' ACT2FN, using geluTanhFast for the tanh GELUs. */
export function activationFast(name: string, x: tf.Tensor): tf.Tensor {
  return name === 'gelu_new' || name === 'gelu_pytorch_tanh' ? geluTanhFast(x) : activation(name, x);
}

/** Rows per block of the tied heads, so that a [rows, vocab] logits block stays near 16M floats (64 MB). */
export const headRowsPerBlock = (vocab: number) => Math.max(1, Math.floor(2 ** 24 / vocab));

/**
 * The fast frozen tied LM head: per-row NLL of h [N, C] against wte [V, C] (logits h · wteᵀ), block by block,
 * without a transposed copy of wte (gemm reads wte as it is for both h · wteᵀ and p · wte).
 * With `withGrad`, the forward pass also makes dNLL/dh for each row (softmax·wte − wte[target]) and saves only
 * that [N, C]; the backward pass scales it by the upstream dy. So the head costs two [N, C]×[C, V]-sized
 * products per step instead of three, and never keeps a logits block.
 */
export function tiedHeadNllFast(h: tf.Tensor2D, wte: Matrix, targets: Int32Array, withGrad: boolean, rows = headRowsPerBlock(wte.shape[0])): tf.Tensor1D {
  const N = h.shape[0];
  const C = h.shape[1];
  const V = wte.shape[0];
  const op = tf.customGrad((hIn: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const x = hIn as tf.Tensor2D;
    const nlls: tf.Tensor1D[] = [];
    const grads: tf.Tensor2D[] = [];
    for (let start = 0; start < N; start += rows) {
      const n = Math.min(rows, N - start);
      const tg = targets.subarray(start, start + n);
      const { flat, valid } = targetIndex(tg, V);
      const [nll, g] = tf.tidy((): tf.Tensor[] => {
        const hb = n === N ? x : tf.slice(x, [start, 0], [n, C]);
        const logits = gemm(hb, wte, { transposeB: true });
        const p = tf.softmax(logits);
        const picked = tf.gather(tf.reshape(p, [-1]), tf.tensor1d(flat, 'int32'));
        const tiny = (picked.dataSync() as Float32Array).some((v, i) => valid[i] === 1 && !(v > 1e-30));
        // −log p[target] is exact enough unless p underflows; then take the log-softmax route for this block
        const nllRows = tiny ? blockNll(logits, tg) : tf.mul(tf.neg(tf.log(picked)), tf.tensor1d(valid));
        if (!withGrad) return [nllRows];
        const safe = Int32Array.from(tg, (t) => (t >= 0 && t < V ? t : 0));
        const dh = tf.mul(tf.sub(gemm(p, wte), matrixRows(wte, tf.tensor1d(safe, 'int32'))), tf.tensor2d(valid, [n, 1]));
        return [nllRows, dh];
      });
      nlls.push(nll as tf.Tensor1D);
      if (g) grads.push(g as tf.Tensor2D);
    }
    if (withGrad) (save as tf.GradSaveFunc)([grads.length === 1 ? grads[0] : tf.concat(grads)]);
    return {
      value: nlls.length === 1 ? nlls[0] : tf.concat(nlls),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        if (!withGrad) throw new Error('internal: tiedHeadNllFast was built without gradients');
        return tf.tidy(() => tf.mul(saved[0], tf.reshape(dy, [-1, 1])));
      },
    };
  });
  return op(h) as tf.Tensor1D;
}


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

/**
 * LayerNorm as one op with a hand-written gradient (γ, β frozen): saves only x̂ and 1/σ, where autograd kept
 * about six [N, C] tensors. dx = (1/σ)·(g − mean(g) − x̂·mean(g·x̂)), g = dy·γ.
 * Falls back to the autograd composition when γ or β is trained.
 */
export function layerNormFast(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number): tf.Tensor2D {
  if (isTrainable(gamma) || isTrainable(beta)) return layerNorm(x, gamma, beta, eps);
  if (heapKernelsAvailable()) return layerNormFused(x, gamma, beta, eps);
  const op = tf.customGrad((xIn: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const v = xIn as tf.Tensor2D;
    const centered = tf.sub(v, tf.mean(v, -1, true));
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(centered), -1, true), eps));
    const xhat = tf.mul(centered, rstd);
    (save as tf.GradSaveFunc)([xhat, rstd]);
    return {
      value: tf.add(tf.mul(xhat, gamma), beta),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [sx, sr] = saved;
        const g = tf.mul(dy, gamma);
        const inner = tf.sub(tf.sub(g, tf.mean(g, -1, true)), tf.mul(sx, tf.mean(tf.mul(g, sx), -1, true)));
        return tf.mul(inner, sr);
      }),
    };
  });
  return op(x) as tf.Tensor2D;
}

/**
 * x + dropout(d) as one op: autograd's Add and Mul would save x, d and the mask; this saves only the mask.
 * `mask` is DropoutStream.multiplier's output (null: no dropout).
 */
export function residualFast(x: tf.Tensor2D, d: tf.Tensor2D, mask: tf.Tensor | null): tf.Tensor2D {
  if (!mask) return tf.add(x, d);
  // the mask is a constant of the op, not an input (an input's zero gradient would live until backprop ends)
  const op = tf.customGrad((xIn: tf.Tensor | tf.GradSaveFunc, dIn: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    (save as tf.GradSaveFunc)([mask]);
    return {
      value: tf.add(xIn as tf.Tensor, tf.mul(dIn as tf.Tensor, mask)),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => [tf.clone(dy), tf.mul(dy, saved[0])]),
    };
  });
  return op(x, d) as tf.Tensor2D;
}
