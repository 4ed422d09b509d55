/**
 * GPT-2's causal self-attention core (between c_attn and c_proj): split q/k/v into heads, scaled dot products,
 * an additive mask for the future and for padding keys, softmax, attention dropout, and the heads merged back.
 */
import * as tf from '@tensorflow/tfjs-core';
import { gemmAvailable, gemmBatch, type GemmJob } from './gemm';
import type { DropoutStream } from './layers';

/** Added to masked scores; finite, so a fully masked row stays a uniform softmax instead of NaN. */
export const MASKED_SCORE = -1e9;

/**
 * The additive mask [B, 1, T, T]: 0 where query i may attend key j (j ≤ i and key j is a real token),
 * MASKED_SCORE elsewhere. `attentionMask` is [B·T] with 1 for real tokens.
 */
export function attentionBias(attentionMask: Int32Array, B: number, T: number): tf.Tensor4D {
  const data = new Float32Array(B * T * T);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < T; i++) {
      const row = (b * T + i) * T;
      for (let j = 0; j < T; j++) {
        if (j > i || attentionMask[b * T + j] === 0) data[row + j] = MASKED_SCORE;
      }
    }
  }
  return tf.tensor4d(data, [B, 1, T, T]);
}

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

/**
 * selfAttention on wasm's fast path, as one op with a hand-written gradient. Every product is a plain 2-D
 * matmul per (example, head) — [T, D]·[D, T] and [T, T]·[T, D] — where tfjs's batched matmul takes a naive
 * loop about ten times slower. Heads are cut straight out of qkv [B·T, 3C] and its transpose (no 5-D
 * transposes). Saves qkv, the softmax probabilities and the dropout mask; qkvᵀ is remade in the backward pass.
 * Same values as selfAttention up to float rounding, with the same dropout draw.
 */
export function selfAttentionFast(
  qkv: tf.Tensor2D,
  bias: tf.Tensor4D,
  dims: { B: number; T: number; C: number; H: number },
  scale: number,
  attnPdrop: number,
  drop: DropoutStream,
): tf.Tensor2D {
  if (gemmAvailable()) return selfAttentionGemm(qkv, bias, dims, scale, attnPdrop, drop);
  const { B, T, C, H } = dims;
  const D = C / H;
  // the dropout mask is a constant of the op, not an input: an input would get a (zero) gradient that lives until
  // the backward pass ends
  const m = drop.multiplier([B, H, T, T], attnPdrop);
  const head = (x: tf.Tensor2D, b: number, col: number) => tf.slice(x, [b * T, col], [T, D]) as tf.Tensor2D;
  const headT = (xT: tf.Tensor2D, b: number, row: number) => tf.slice(xT, [row, b * T], [D, T]) as tf.Tensor2D;
  const block = (x: tf.Tensor2D, i: number) => tf.slice(x, [i * T, 0], [T, T]) as tf.Tensor2D;
  /** [T, T] blocks, (b, h) order → [B, H, T, T] */
  const stack = (parts: tf.Tensor[]) => tf.reshape(tf.concat(parts), [B, H, T, T]);
  /** per-b rows of column blocks → [B·T, cols] */
  const assemble = (rows: tf.Tensor2D[][]) => tf.concat(rows.map((r) => (r.length === 1 ? r[0] : tf.concat(r, 1))), 0) as tf.Tensor2D;
  const transposeBlocks = (x: tf.Tensor) => tf.reshape(tf.transpose(tf.reshape(x, [B * H, T, T]), [0, 2, 1]), [B * H * T, T]) as tf.Tensor2D;
  const op = tf.customGrad((xIn: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const x = xIn as tf.Tensor2D;
    const xT = tf.transpose(x) as tf.Tensor2D; // [3C, B·T]
    const scores: tf.Tensor[] = [];
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) scores.push(tf.matMul(head(x, b, h * D), headT(xT, b, C + h * D)));
    let s = stack(scores);
    if (scale !== 1) s = tf.mul(s, scale);
    const probs = tf.softmax(tf.add(s, bias));
    const pd = m ? tf.mul(probs, m) : probs;
    const pd2 = tf.reshape(pd, [B * H * T, T]) as tf.Tensor2D;
    const out: tf.Tensor2D[][] = [];
    for (let b = 0; b < B; b++) {
      out.push(Array.from({ length: H }, (_, h) => tf.matMul(block(pd2, b * H + h), head(x, b, 2 * C + h * D))));
    }
    (save as tf.GradSaveFunc)(m ? [x, probs, m] : [x, probs]);
    return {
      value: assemble(out),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [sx, sp, sm] = saved as [tf.Tensor2D, tf.Tensor, tf.Tensor | undefined];
        const g = dy as tf.Tensor2D;
        // qkvᵀ and the dropped-out probabilities are cheap to remake: not saved
        const sxT = tf.transpose(sx) as tf.Tensor2D;
        const spd = sm ? tf.mul(sp, sm) : sp;
        const pdT = transposeBlocks(spd);
        const dPd: tf.Tensor[] = [];
        const dV: tf.Tensor2D[][] = [];
        for (let b = 0; b < B; b++) {
          const row: tf.Tensor2D[] = [];
          for (let h = 0; h < H; h++) {
            const dO = head(g, b, h * D);
            dPd.push(tf.matMul(dO, headT(sxT, b, 2 * C + h * D)));
            row.push(tf.matMul(block(pdT, b * H + h), dO));
          }
          dV.push(row);
        }
        const dP = sm ? tf.mul(stack(dPd), sm) : stack(dPd);
        let dS = tf.mul(sp, tf.sub(dP, tf.sum(tf.mul(dP, sp), -1, true)));
        if (scale !== 1) dS = tf.mul(dS, scale);
        const dS2 = tf.reshape(dS, [B * H * T, T]) as tf.Tensor2D;
        const dST = transposeBlocks(dS);
        const rows: tf.Tensor2D[][] = [];
        for (let b = 0; b < B; b++) {
          const dQ: tf.Tensor2D[] = Array.from({ length: H }, (_, h) => tf.matMul(block(dS2, b * H + h), head(sx, b, C + h * D)));
          const dK: tf.Tensor2D[] = Array.from({ length: H }, (_, h) => tf.matMul(block(dST, b * H + h), head(sx, b, h * D)));
          rows.push([...dQ, ...dK, ...dV[b]]);
        }
        const dx = assemble(rows);
        return dx;
      }),
    };
  });
  return op(qkv) as tf.Tensor2D;
}

/**
 * selfAttentionFast on wasm through gemmBatch: each (example, head) product reads its blocks of qkv, the
 * probabilities or the upstream gradient in place (row strides, no slices) and writes its block of one output
 * (no concats): scores [B·H·T, T] = q·kᵀ, out [B·T, C] = p·v; backward dp = dO·vᵀ, and dqkv [B·T, 3C] from
 * dq = ds·k, dk = dsᵀ·q, dv = pᵀ·dO in one call (the two transposed operands are transposed per block first).
 * Softmax and its gradient stay tf ops. Saves qkv, the probabilities and the dropout mask, as selfAttentionFast.
 */
function selfAttentionGemm(
  qkv: tf.Tensor2D,
  bias: tf.Tensor4D,
  dims: { B: number; T: number; C: number; H: number },
  scale: number,
  attnPdrop: number,
  drop: DropoutStream,
): tf.Tensor2D {
  const { B, T, C, H } = dims;
  const D = C / H;
  const C3 = 3 * C;
  // the dropout mask is a constant of the op (see selfAttentionFast)
  const m = drop.multiplier([B, H, T, T], attnPdrop);
  /** one job per (example, head): `f(b, h)` gives the blocks */
  const perHead = (f: (b: number, h: number) => GemmJob): GemmJob[] => Array.from({ length: B * H }, (_, i) => f(Math.floor(i / H), i % H));
  /** the [T, T] block of (b, h) in a [B·H·T, T] tensor */
  const square = (b: number, h: number) => (b * H + h) * T * T;
  const transposeBlocks = (x: tf.Tensor) => tf.transpose(tf.reshape(x, [B * H, T, T]), [0, 2, 1]);
  const op = tf.customGrad((xIn: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const x = xIn as tf.Tensor2D;
    // q_bh at rows b·T.., columns h·D..; k_bh at columns C + h·D; v_bh at 2C + h·D
    const scores = gemmBatch([x], [B, H, T, T], perHead((b, h) => ({
      a: 0, aOffset: b * T * C3 + h * D, lda: C3, b: 0, bOffset: b * T * C3 + C + h * D, ldb: C3, transposeB: true,
      cOffset: square(b, h), ldc: T, n: T, k: D, m: T,
    })));
    const probs = tf.softmax(tf.add(scale !== 1 ? tf.mul(scores, scale) : scores, bias));
    const pd = m ? tf.mul(probs, m) : probs;
    const out = gemmBatch([pd, x], [B * T, C], perHead((b, h) => ({
      a: 0, aOffset: square(b, h), lda: T, b: 1, bOffset: b * T * C3 + 2 * C + h * D, ldb: C3, transposeB: false,
      cOffset: b * T * C + h * D, ldc: C, n: T, k: T, m: D,
    })));
    (save as tf.GradSaveFunc)(m ? [x, probs, m] : [x, probs]);
    return {
      value: out as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [sx, sp, sm] = saved as [tf.Tensor2D, tf.Tensor, tf.Tensor | undefined];
        // dp_bh = dO_bh · v_bhᵀ, dO_bh the (b, h) block of dy [B·T, C]
        const dPd = gemmBatch([dy, sx], [B, H, T, T], perHead((b, h) => ({
          a: 0, aOffset: b * T * C + h * D, lda: C, b: 1, bOffset: b * T * C3 + 2 * C + h * D, ldb: C3, transposeB: true,
          cOffset: square(b, h), ldc: T, n: T, k: D, m: T,
        })));
        const dP = sm ? tf.mul(dPd, sm) : dPd;
        let dS = tf.mul(sp, tf.sub(dP, tf.sum(tf.mul(dP, sp), -1, true)));
        if (scale !== 1) dS = tf.mul(dS, scale);
        const dST = transposeBlocks(dS);
        const pdT = transposeBlocks(sm ? tf.mul(sp, sm) : sp);
        // inputs: 0 dS, 1 dSᵀ (per block), 2 pᵀ (dropped out, per block), 3 qkv, 4 dy
        const jobs = perHead((b, h) => ({ // dq = ds · k
          a: 0, aOffset: square(b, h), lda: T, b: 3, bOffset: b * T * C3 + C + h * D, ldb: C3, transposeB: false,
          cOffset: b * T * C3 + h * D, ldc: C3, n: T, k: T, m: D,
        }));
        jobs.push(...perHead((b, h) => ({ // dk = dsᵀ · q
          a: 1, aOffset: square(b, h), lda: T, b: 3, bOffset: b * T * C3 + h * D, ldb: C3, transposeB: false,
          cOffset: b * T * C3 + C + h * D, ldc: C3, n: T, k: T, m: D,
        })));
        jobs.push(...perHead((b, h) => ({ // dv = pᵀ · dO
          a: 2, aOffset: square(b, h), lda: T, b: 4, bOffset: b * T * C + h * D, ldb: C, transposeB: false,
          cOffset: b * T * C3 + 2 * C + h * D, ldc: C3, n: T, k: T, m: D,
        })));
        return gemmBatch([dS, dST, pdT, sx, dy], [B * T, C3], jobs);
      }),
    };
  });
  return op(qkv) as tf.Tensor2D;
}
