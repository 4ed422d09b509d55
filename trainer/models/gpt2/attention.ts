/**
 * GPT-2's causal self-attention core (between c_attn and c_proj): split the fused q/k/v into heads (all H heads
 * for each of q, k and v), scaled dot products, the additive mask (ops/attention_mask.ts), softmax, attention
 * dropout, and the heads merged back.
 */
import * as tf from '@tensorflow/tfjs-core';
import { gemmAvailable, gemmBatch, type GemmJob } from '../../ops/gemm';
import type { DropoutStream } from '../../ops/layers';

/**
 * qkv [B·T, 3C] (c_attn's output) → the merged heads [B·T, C], ready for c_proj.
 * `scale` is 1/√head_dim when scale_attn_weights, else 1.
 */
export function selfAttention(
  qkv: tf.Tensor2D,
  bias: tf.Tensor4D,
  dims: { B: number; T: number; C: number; H: number },
  scale: number,
  attnPdrop: number,
  drop: DropoutStream,
): tf.Tensor2D {
  const { B, T, C, H } = dims;
  const D = C / H;
  const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, T, H, D]), [0, 2, 1, 3]); // [B, H, T, D]
  const [q, k, v] = tf.split(qkv, 3, 1).map(heads);
  let scores = tf.matMul(q, k, false, true); // [B, H, T, T]
  if (scale !== 1) scores = tf.mul(scores, scale);
  const probs = drop.apply(tf.softmax(tf.add(scores, bias)), attnPdrop);
  const out = tf.matMul(probs, v); // [B, H, T, D]
  return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [B * T, C]);
}

type Dims = { B: number; T: number; C: number; H: number };

/**
 * The four families of products of attention, given qkv x [B·T, 3C] (q, k, v side by side, heads of D = C/H
 * columns), the dropped-out probabilities pd [B, H, T, T] and the upstream gradient dy [B·T, C].
 */
interface AttentionProducts {
  /** q·kᵀ per (example, head): [B, H, T, T] */
  scores(x: tf.Tensor2D): tf.Tensor;
  /** pd·v per (example, head), heads merged: [B·T, C] */
  merged(pd: tf.Tensor, x: tf.Tensor2D): tf.Tensor2D;
  /** dO·vᵀ per (example, head), dO the head's block of dy: [B, H, T, T] */
  dProbs(dy: tf.Tensor2D, x: tf.Tensor2D): tf.Tensor;
  /** [dS·k | dSᵀ·q | pdᵀ·dO] per (example, head), heads merged: [B·T, 3C] */
  dQkv(dS: tf.Tensor, pd: tf.Tensor, x: tf.Tensor2D, dy: tf.Tensor2D): tf.Tensor2D;
}

/** The products as tfjs batched matmuls over [B, H, T, D] views (native backends do these well). */
function tfProducts({ B, T, C, H }: Dims): AttentionProducts {
  const D = C / H;
  const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, T, H, D]), [0, 2, 1, 3]); // [B, H, T, D]
  const merge = (t: tf.Tensor) => tf.reshape(tf.transpose(t, [0, 2, 1, 3]), [B * T, C]) as tf.Tensor2D;
  const qkv = (x: tf.Tensor2D) => tf.split(x, 3, 1).map(heads) as tf.Tensor4D[];
  return {
    scores: (x) => {
      const [q, k] = qkv(x);
      return tf.matMul(q, k, false, true);
    },
    merged: (pd, x) => merge(tf.matMul(pd as tf.Tensor4D, qkv(x)[2])),
    dProbs: (dy, x) => tf.matMul(heads(dy) as tf.Tensor4D, qkv(x)[2], false, true),
    dQkv: (dS, pd, x, dy) => {
      const [q, k] = qkv(x);
      const dO = heads(dy) as tf.Tensor4D;
      const dS4 = dS as tf.Tensor4D;
      return tf.concat([merge(tf.matMul(dS4, k)), merge(tf.matMul(dS4, q, true, false)), merge(tf.matMul(pd as tf.Tensor4D, dO, true, false))], 1) as tf.Tensor2D;
    },
  };
}

/**
 * The products on wasm through gemmBatch: each (example, head) product reads its blocks of qkv, pd or dy in
 * place (row strides, no slices) and writes its block of one output (no concats). dSᵀ·q and pdᵀ·dO transpose
 * dS and pd per [T, T] block first (our GEMM reads its left operand row by row).
 */
function gemmProducts({ B, T, C, H }: Dims): AttentionProducts {
  const D = C / H;
  const C3 = 3 * C;
  /** one job per (example, head): `f(b, h)` gives the blocks */
  const perHead = (f: (b: number, h: number) => GemmJob): GemmJob[] => Array.from({ length: B * H }, (_, i) => f(Math.floor(i / H), i % H));
  /** where the [T, T] block of (b, h) starts in a [B, H, T, T] tensor */
  const square = (b: number, h: number) => (b * H + h) * T * T;
  /** where (b, h)'s rows of q (part 0), k (1) or v (2) start in x [B·T, 3C] */
  const part = (b: number, h: number, which: number) => b * T * C3 + which * C + h * D;
  /** where (b, h)'s rows start in a [B·T, C] tensor */
  const rowsOf = (b: number, h: number) => b * T * C + h * D;
  const transposeBlocks = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B * H, T, T]), [0, 2, 1]);
  /** (b, h)'s [T, T] block as a left operand */
  const squareA = (b: number, h: number) => ({ aOffset: square(b, h), lda: T });
  return {
    scores: (x) => gemmBatch([x], [B, H, T, T], perHead((b, h) => ({
      a: 0, aOffset: part(b, h, 0), lda: C3, b: 0, bOffset: part(b, h, 1), ldb: C3, transposeB: true, cOffset: square(b, h), ldc: T, n: T, k: D, m: T,
    }))),
    merged: (pd, x) => gemmBatch([pd, x], [B * T, C], perHead((b, h) => ({
      a: 0, ...squareA(b, h), b: 1, bOffset: part(b, h, 2), ldb: C3, transposeB: false, cOffset: rowsOf(b, h), ldc: C, n: T, k: T, m: D,
    }))) as tf.Tensor2D,
    dProbs: (dy, x) => gemmBatch([dy, x], [B, H, T, T], perHead((b, h) => ({
      a: 0, aOffset: rowsOf(b, h), lda: C, b: 1, bOffset: part(b, h, 2), ldb: C3, transposeB: true, cOffset: square(b, h), ldc: T, n: T, k: D, m: T,
    }))),
    dQkv: (dS, pd, x, dy) => {
      // inputs: 0 dS, 1 dSᵀ (per block), 2 pdᵀ (per block), 3 x, 4 dy; each job writes (b, h)'s part of dqkv
      const into = (b: number, h: number, which: number) => ({ cOffset: part(b, h, which), ldc: C3, n: T, k: T, m: D, transposeB: false });
      return gemmBatch([dS, transposeBlocks(dS), transposeBlocks(pd), x, dy], [B * T, C3], [
        ...perHead((b, h) => ({ a: 0, ...squareA(b, h), b: 3, bOffset: part(b, h, 1), ldb: C3, ...into(b, h, 0) })), // dq = dS·k
        ...perHead((b, h) => ({ a: 1, ...squareA(b, h), b: 3, bOffset: part(b, h, 0), ldb: C3, ...into(b, h, 1) })), // dk = dSᵀ·q
        ...perHead((b, h) => ({ a: 2, ...squareA(b, h), b: 4, bOffset: rowsOf(b, h), ldb: C, ...into(b, h, 2) })), // dv = pdᵀ·dO
      ]) as tf.Tensor2D;
    },
  };
}

/**
 * selfAttention as one op with a hand-written gradient, for the fast path: saves only qkv, the softmax
 * probabilities and the dropout mask (autograd kept every intermediate), and remakes the dropped-out
 * probabilities in the backward pass. The products run through gemmBatch on wasm (gemmProducts), as batched
 * tfjs matmuls elsewhere (tfProducts). Same values as selfAttention up to float rounding, same dropout draw.
 */
export function selfAttentionFast(
  qkv: tf.Tensor2D,
  bias: tf.Tensor4D,
  dims: Dims,
  scale: number,
  attnPdrop: number,
  drop: DropoutStream,
): tf.Tensor2D {
  const { B, T, H } = dims;
  const products = gemmAvailable() ? gemmProducts(dims) : tfProducts(dims);
  // the dropout mask is a constant of the op, not an input: an input would get a (zero) gradient that lives until
  // the backward pass ends
  const m = drop.multiplier([B, H, T, T], attnPdrop);
  const op = tf.customGrad((xIn: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const x = xIn as tf.Tensor2D;
    const scores = products.scores(x);
    const probs = tf.softmax(tf.add(scale !== 1 ? tf.mul(scores, scale) : scores, bias));
    (save as tf.GradSaveFunc)(m ? [x, probs, m] : [x, probs]);
    return {
      value: products.merged(m ? tf.mul(probs, m) : probs, x),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [sx, sp, sm] = saved as [tf.Tensor2D, tf.Tensor, tf.Tensor | undefined];
        const g = dy as tf.Tensor2D;
        const dPd = products.dProbs(g, sx);
        const dP = sm ? tf.mul(dPd, sm) : dPd;
        let dS = tf.mul(sp, tf.sub(dP, tf.sum(tf.mul(dP, sp), -1, true)));
        if (scale !== 1) dS = tf.mul(dS, scale);
        return products.dQkv(dS, sm ? tf.mul(sp, sm) : sp, sx, g);
      }),
    };
  });
  return op(qkv) as tf.Tensor2D;
}
