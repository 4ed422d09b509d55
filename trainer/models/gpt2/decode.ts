/**
 * GPT-2's KV cache for generation (batch 1, eval mode, no padding): each block keeps the keys and values of every
 * token fed so far, split into heads as its attention uses them ([H, T, D]), so a new token costs one row through
 * each block instead of the whole sequence. Token rows come from wte, positions from wpe at their absolute
 * position; the linear layers are the model's own (LoRA unmerged, the model's kernels), so the logits are those of
 * lastLogits on the whole sequence up to float rounding.
 */
import * as tf from '@tensorflow/tfjs-core';
import { LoraStudioError } from '../../errors';
import type { Decoder, Kernels } from '../family';
import type { GPT2Config } from './config';
import { MASKED_SCORE } from '../../ops/attention_mask';
import { activation, activationFast, layerNorm, layerNormFast } from '../../ops/layers';

type Norm = [tf.Tensor1D, tf.Tensor1D];

/** A block's parameters; `L` is the model's own linear layer (applied through `DecodeParts.linear`). */
export interface DecodeBlock<L> {
  ln1: Norm;
  attn: L;
  attnProj: L;
  ln2: Norm;
  fc: L;
  mlpProj: L;
}

/** What the decoder takes from the model. */
export interface DecodeParts<L> {
  config: GPT2Config;
  kernels: Kernels;
  wte: tf.Tensor2D;
  wpe: tf.Tensor2D;
  blocks: ReadonlyArray<DecodeBlock<L>>;
  lnF: Norm;
  /** x [n, in] → [n, out] through the layer and its LoRA, in eval mode, as the model's forward pass does */
  linear(layer: L, x: tf.Tensor2D): tf.Tensor2D;
  /** final hidden states [n, C] → logits [n, vocab_size] */
  head(h: tf.Tensor2D): tf.Tensor2D;
}

export class GPT2Decoder<L> implements Decoder {
  /** per block: keys and values [H, length, D] of the tokens fed so far (null before the first feed) */
  private keys: Array<tf.Tensor3D | null>;
  private values: Array<tf.Tensor3D | null>;
  private length = 0;
  private disposed = false;

  constructor(private readonly m: DecodeParts<L>) {
    this.keys = m.blocks.map(() => null);
    this.values = m.blocks.map(() => null);
  }

  async feed(ids: number[]): Promise<Float32Array> {
    if (this.disposed) throw new Error('internal: feed() on a disposed decoder');
    if (ids.length === 0) throw new Error('internal: feed() needs at least one token');
    const c = this.m.config;
    const end = this.length + ids.length;
    if (end > c.n_positions) {
      throw new LoraStudioError(`the sequence would reach ${end} tokens, more than n_positions (${c.n_positions})`, undefined, 'n_positions');
    }
    for (const id of ids) {
      if (!(Number.isInteger(id) && id >= 0 && id < c.vocab_size)) throw new LoraStudioError(`token id ${id} is outside the vocabulary (vocab_size ${c.vocab_size})`, undefined, 'input_ids');
    }
    const keys: tf.Tensor3D[] = [];
    const values: tf.Tensor3D[] = [];
    let logits: tf.Tensor;
    try {
      logits = tf.tidy(() => this.step(ids, keys, values));
    } catch (e) {
      for (const t of [...keys, ...values]) t.dispose();
      throw e;
    }
    // the new cache replaces the old one
    for (const t of [...this.keys, ...this.values]) t?.dispose();
    this.keys = keys;
    this.values = values;
    this.length = end;
    const row = (await logits.data()) as Float32Array;
    logits.dispose();
    return row;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of [...this.keys, ...this.values]) t?.dispose();
    this.keys = [];
    this.values = [];
  }

  /** Runs `ids` at positions length… through every block; pushes each block's new (kept) keys and values. */
  private step(ids: number[], keys: tf.Tensor3D[], values: tf.Tensor3D[]): tf.Tensor1D {
    const { config: c, blocks } = this.m;
    const n = ids.length;
    const past = this.length;
    const T = past + n;
    const C = c.n_embd;
    const H = c.n_head;
    const D = C / H;
    const fast = this.m.kernels === 'fast';
    const norm = fast ? layerNormFast : layerNorm;
    const act = fast ? activationFast : activation;
    const eps = c.layer_norm_epsilon;
    const scale = c.scale_attn_weights ? 1 / Math.sqrt(D) : 1;
    const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [n, H, D]), [1, 0, 2]) as tf.Tensor3D; // [H, n, D]
    const bias = n > 1 ? causalBias(past, n) : null;
    const tokens = tf.gather(this.m.wte, tf.tensor1d(ids, 'int32'));
    const positions = tf.gather(this.m.wpe, tf.range(past, T, 1, 'int32'));
    let h = tf.add(tokens, positions) as tf.Tensor2D;
    for (const [i, blk] of blocks.entries()) {
      const qkv = this.m.linear(blk.attn, norm(h, blk.ln1[0], blk.ln1[1], eps));
      const [q, k, v] = tf.split(qkv, 3, 1).map(heads);
      const K = tf.keep(this.keys[i] ? tf.concat([this.keys[i]!, k], 1) : k);
      const V = tf.keep(this.values[i] ? tf.concat([this.values[i]!, v], 1) : v);
      keys.push(K);
      values.push(V);
      let scores = tf.matMul(q, K, false, true); // [H, n, T]
      if (scale !== 1) scores = tf.mul(scores, scale);
      if (bias) scores = tf.add(scores, bias);
      let merged = tf.reshape(tf.transpose(tf.matMul(tf.softmax(scores), V), [1, 0, 2]), [n, C]) as tf.Tensor2D;
      let x = h;
      if (i === blocks.length - 1 && n > 1) {
        // only the last token's logits are wanted: the last block's output rows for the others are never read
        merged = tf.slice(merged, [n - 1, 0], [1, C]);
        x = tf.slice(x, [n - 1, 0], [1, C]);
      }
      const r = tf.add(x, this.m.linear(blk.attnProj, merged)) as tf.Tensor2D;
      const a = act(c.activation_function, this.m.linear(blk.fc, norm(r, blk.ln2[0], blk.ln2[1], eps))) as tf.Tensor2D;
      h = tf.add(r, this.m.linear(blk.mlpProj, a)) as tf.Tensor2D;
    }
    const last = h.shape[0] > 1 ? tf.slice(h, [h.shape[0] - 1, 0], [1, C]) : h;
    return tf.reshape(this.m.head(norm(last, this.m.lnF[0], this.m.lnF[1], eps)), [-1]) as tf.Tensor1D;
  }
}

/** [1, n, past + n]: query i (at position past + i) sees keys 0…past + i. */
function causalBias(past: number, n: number): tf.Tensor3D {
  const T = past + n;
  const data = new Float32Array(n * T);
  for (let i = 0; i < n; i++) for (let j = past + i + 1; j < T; j++) data[i * T + j] = MASKED_SCORE;
  return tf.tensor3d(data, [1, n, T]);
}
