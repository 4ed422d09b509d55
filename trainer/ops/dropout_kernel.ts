/**
 * The dropout multipliers as a tfjs kernel, so that a backend can make them where its tensors live. The host path
 * (ops/layers.ts dropoutMask) is right for wasm, whose tensors are in host memory; on a GPU it makes and uploads
 * every mask (at 16 × 512 the attention masks alone are ~600 M floats per step), which cost 8.7× on an H200
 * (bench/NOTES.md). A backend that registers DROPOUT_MASK (backend_webgpu.ts: a WGSL shader) computes the same
 * mulberry32 streams in parallel, bit for bit: element i of row b is draw skip[b] + i of the stream seeded seed[b].
 */
import * as tf from '@tensorflow/tfjs-core';

export const DROPOUT_MASK = 'LoraStudioDropoutMask';

/** DROPOUT_MASK's attributes: `perRow` multipliers per row; keep where the draw u (a u32) is ≥ threshold. */
export interface DropoutMaskAttrs {
  perRow: number;
  /** ceil(rate · 2³²): the host's `u / 2³² >= rate` as an integer comparison */
  threshold: number;
  /** 1 / (1 − rate), rounded to float32 as the host's Float32Array stores it */
  scale: number;
}

/** The integer form of `u / 2³² >= rate` for a u32 draw u (the host's test, made exact). */
export function keepThreshold(rate: number): number {
  return Math.min(Math.ceil(rate * 2 ** 32), 2 ** 32 - 1);
}

/** Whether the current backend makes dropout masks itself. */
export function deviceMasks(): boolean {
  return tf.getKernel(DROPOUT_MASK, tf.getBackend()) !== undefined;
}

/** [rows · perRow] multipliers, made by the backend's DROPOUT_MASK kernel. */
export function deviceDropoutMask(seeds: Int32Array, skips: Int32Array, perRow: number, rate: number): tf.Tensor1D {
  return tf.tidy(() => {
    const inputs = { seeds: tf.tensor1d(seeds, 'int32'), skips: tf.tensor1d(skips, 'int32') };
    const attrs: DropoutMaskAttrs = { perRow, threshold: keepThreshold(rate), scale: Math.fround(1 / (1 - rate)) };
    return tf.engine().runKernel(DROPOUT_MASK, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor1D;
  });
}

/**
 * The WGSL body of DROPOUT_MASK for tfjs-backend-webgpu's program template (inputs `seeds`, `skips`: array<i32>;
 * uniforms perRow, threshold, scale): dropoutMask's loop, one element per invocation. u32 arithmetic wraps as
 * Math.imul does, and i32 → u32 keeps the bits.
 */
export const DROPOUT_MASK_WGSL = `
  fn main(index : i32) {
    if (index < uniforms.size) {
      let row = index / uniforms.perRow;
      let i = index - row * uniforms.perRow;
      let state = u32(seeds[row]) + (u32(skips[row]) + u32(i) + 1u) * 0x6d2b79f5u;
      var t = (state ^ (state >> 15u)) * (state | 1u);
      t = t ^ (t + (t ^ (t >> 7u)) * (t | 61u));
      let u = t ^ (t >> 14u);
      setOutputAtIndex(index, select(0.0, uniforms.scale, u >= uniforms.threshold));
    }
  }
`;
