/**
 * The Llama family with LoRA on TensorFlow.js: transformers' LlamaForCausalLM / LlamaForSequenceClassification and
 * their Qwen2 and Mistral twins (modeling_llama.py, modeling_qwen2.py, modeling_mistral.py). Per block:
 * input_layernorm (RMSNorm) → q/k/v_proj (biases where the config says) → RoPE → grouped-query attention (causal,
 * right padding, sliding window where the config says) → o_proj → residual → post_attention_layernorm →
 * down_proj(silu(gate_proj(x))·up_proj(x)) → residual; then model.norm and lm_head (tied to embed_tokens or not)
 * or `score` on each row's last real token. Everything in float32.
 *
 * Layout: every nn.Linear weight is held as [in, out] (transposed at load), LoRA A as [in, r], B as [r, out], so
 * each product is a plain 2-D one (through ops/gemm on wasm). The exception is a frozen head without LoRA
 * (embed_tokens when tied, or an untied lm_head): kept [vocab, hidden], and the loss is made block by block from it
 * (ops/layers tiedHeadNllFast / tiedHeadNll), never as whole [B·T, vocab] logits. embed_tokens is a frozen lookup
 * off the tape. The parameters, the adapter and replicas are LoraModelBase's (models/lora_model.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { LoraStudioError } from '../../errors';
import { type Batch, causalTargets, lastRealPositions } from '../../data/collate';
import type { Decoder, ForwardOptions, LoraModel, ModelSpec } from '../family';
import { adaptedLinear, adaptedLinearFast, type LoraFactors } from '../../lora/layer';
import { crossEntropyRows, type DropoutStream, frozenRows, pickRows, tiedHeadNll, tiedHeadNllFast } from '../../ops/layers';
import { gemm } from '../../ops/gemm';
import { halfRows, isHalf, type Matrix } from '../../ops/half';
import { LoraModelBase } from '../lora_model';
import { type PlanHooks, planParameters } from '../plan';
import { headDim, kvHeads, type LlamaConfig, resolveRope, slidingWindow, tiedEmbeddings } from './config';
import { llamaHalfOk, llamaWeightShapes } from './weights';
import { applyRope, invFreq, ropeTables, rotateHalfMatrix } from './rope';
import { groupedAttention, groupedAttentionFast, llamaAttentionBias } from './attention';
import { rmsNorm, rmsNormFast, swiglu, swigluFast } from './layers';
import { checkSpecFitsHeap } from './memory';

const EMBED = 'model.embed_tokens.weight';
const LINEAR = /^model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)$/;

interface Dense {
  name: string;
  /** [in, out]; [out, in] with rowsAreOut, or when held in 16 bits (ops/half.ts: frozen, on wasm's fast path) */
  w: Matrix;
  b?: tf.Tensor1D;
  lora?: LoraFactors;
  /** a frozen head without LoRA held as [vocab, hidden] (embed_tokens itself when tied) */
  rowsAreOut?: boolean;
  /** wᵀ for the reference kernels' blockwise head */
  wT?: tf.Tensor2D;
}

interface Block {
  ln1: tf.Tensor1D;
  q: Dense;
  k: Dense;
  v: Dense;
  o: Dense;
  ln2: tf.Tensor1D;
  gate: Dense;
  up: Dense;
  down: Dense;
  window: number | null;
}

/** One forward pass over Tq new positions per row, at absolute positions offset … offset+Tq−1. */
interface Pass {
  B: number;
  Tq: number;
  offset: number;
  cos: tf.Tensor2D;
  sin: tf.Tensor2D;
  /** rotate_half as a [head_dim, head_dim] matrix */
  rot: tf.Tensor2D;
  /** the additive mask per window (null: full causal) */
  bias: Map<number | null, tf.Tensor4D>;
  drop: DropoutStream;
  /** decoding: each block's keys and values so far [1, KV, P, D], replaced by the extended ones */
  cache?: { k: tf.Tensor4D[]; v: tf.Tensor4D[] };
}

export class LlamaLoraModel extends LoraModelBase implements LoraModel {
  readonly config: LlamaConfig;
  private readonly blocks: Block[] = [];
  private readonly head: Dense;
  private readonly invFreq: Float64Array;

  private constructor(spec: ModelSpec) {
    const c = spec.config as LlamaConfig;
    super(spec, planParameters(spec, llamaPlanHooks(c, spec)));
    this.config = c;
    this.invFreq = invFreq(resolveRope(c), headDim(c));
    const dense = (name: string, bias: boolean): Dense => {
      const d: Dense = { name, w: this.m(`${name}.weight`), b: bias && this.has(`${name}.bias`) ? (this.p(`${name}.bias`) as tf.Tensor1D) : undefined };
      if (this.has(`${name}.lora_A.weight`)) {
        d.lora = { A: this.p(`${name}.lora_A.weight`) as tf.Tensor2D, B: this.p(`${name}.lora_B.weight`) as tf.Tensor2D, scaling: this.scaling.get(name)!, dropout: spec.lora_dropout };
      }
      return d;
    };
    for (let i = 0; i < c.num_hidden_layers; i++) {
      const l = `model.layers.${i}.`;
      this.blocks.push({
        ln1: this.p(`${l}input_layernorm.weight`) as tf.Tensor1D,
        q: dense(`${l}self_attn.q_proj`, true), k: dense(`${l}self_attn.k_proj`, true), v: dense(`${l}self_attn.v_proj`, true),
        o: dense(`${l}self_attn.o_proj`, true),
        ln2: this.p(`${l}post_attention_layernorm.weight`) as tf.Tensor1D,
        gate: dense(`${l}mlp.gate_proj`, true), up: dense(`${l}mlp.up_proj`, true), down: dense(`${l}mlp.down_proj`, true),
        window: slidingWindow(c, i),
      });
    }
    if (spec.task === 'seq-cls') {
      this.head = dense('score', false);
    } else if (headIsLinear(spec)) {
      this.head = dense('lm_head', false);
    } else {
      const w = this.m(this.has('lm_head.weight') ? 'lm_head.weight' : EMBED);
      this.head = { name: 'lm_head', w, rowsAreOut: true };
      if (this.kernels === 'reference' && !isHalf(w)) {
        try {
          this.params.set('lm_head.weight.T', tf.tidy(() => tf.transpose(w)));
        } catch (e) {
          this.dispose();
          throw e;
        }
        this.head.wT = this.p('lm_head.weight.T') as tf.Tensor2D;
      }
    }
  }

  /** Refuses (LoraStudioError) a model whose float32 weights do not fit the wasm heap, before any allocation. */
  static create(spec: ModelSpec): LlamaLoraModel {
    checkSpecFitsHeap(spec.config as LlamaConfig, spec.weights, tf.getBackend());
    return new LlamaLoraModel(spec);
  }

  get maxPositions(): number {
    return this.config.max_position_embeddings;
  }

  get bodySize(): number {
    return this.config.hidden_size * this.config.num_hidden_layers;
  }

  /** Causal: [B, T, vocab_size] for every position. Seq-cls: [B, num_labels] from each row's last real token. */
  logits(batch: Batch, opts: ForwardOptions = { training: false }): tf.Tensor {
    return tf.tidy(() => {
      const drop = this.dropout(opts, batch);
      const h = this.hidden(batch, drop);
      if (this.task === 'seq-cls') return this.applyHead(pickRows(h, this.lastRows(batch)), drop);
      return tf.reshape(this.applyHead(h, drop), [batch.batch_size, batch.seq_len, -1]);
    });
  }

  /** Causal: [B, vocab_size] at each row's last real token (what generation needs); seq-cls: same as logits. */
  lastLogits(batch: Batch): tf.Tensor2D {
    return tf.tidy(() => {
      const drop = this.dropout({ training: false }, batch);
      return this.applyHead(pickRows(this.hidden(batch, drop), this.lastRows(batch)), drop);
    });
  }

  /** Incremental decoding with a KV cache (batch 1, eval mode): keys and values per block, RoPE at absolute positions. */
  decoder(): Decoder {
    const cache = { k: [] as tf.Tensor4D[], v: [] as tf.Tensor4D[] };
    let fed = 0;
    let closed = false;
    const free = () => {
      tf.dispose([...cache.k, ...cache.v]);
      cache.k = [];
      cache.v = [];
    };
    return {
      feed: async (ids: number[]) => {
        if (closed) throw new Error('internal: feed after dispose');
        if (ids.length === 0) throw new Error('internal: feed needs at least one token');
        if (fed + ids.length > this.maxPositions) {
          throw new LoraStudioError(`a sequence of ${fed + ids.length} tokens is longer than max_position_embeddings (${this.maxPositions})`, 'config.json', 'max_position_embeddings');
        }
        this.checkIds(ids);
        const old = [...cache.k, ...cache.v];
        const last = tf.tidy(() => {
          const drop = this.dropout({ training: false }, { batch_size: 1 });
          const pass = this.pass(1, ids.length, fed, null, drop, cache);
          let h = this.embed(Int32Array.from(ids));
          for (const [i, blk] of this.blocks.entries()) h = this.block(i, blk, h, pass);
          const hLast = tf.slice(h, [ids.length - 1, 0], [1, this.config.hidden_size]);
          return tf.reshape(this.applyHead(this.norm(hLast, this.p('model.norm.weight') as tf.Tensor1D), drop), [-1]);
        });
        tf.dispose(old);
        fed += ids.length;
        const out = (await last.data()) as Float32Array;
        last.dispose();
        return out;
      },
      dispose: () => {
        if (closed) return;
        closed = true;
        free();
      },
    };
  }

  // ---- internals ----

  private checkIds(ids: ArrayLike<number>): void {
    const V = this.config.vocab_size;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!(Number.isInteger(id) && id >= 0 && id < V)) throw new LoraStudioError(`token id ${id} is outside the vocabulary (vocab_size ${V})`, undefined, 'input_ids');
    }
  }

  private lastRows(batch: Batch): Int32Array {
    return Int32Array.from(lastRealPositions(batch), (t, b) => b * batch.seq_len + t);
  }

  /** The per-pass constants: RoPE tables for the new positions and the masks the blocks' windows need. */
  private pass(B: number, Tq: number, offset: number, keyMask: Int32Array | null, drop: DropoutStream, cache?: Pass['cache']): Pass {
    const D = headDim(this.config);
    const { cos, sin } = ropeTables(this.invFreq, offset, Tq);
    const bias = new Map<number | null, tf.Tensor4D>();
    for (const w of new Set(this.blocks.map((b) => b.window))) bias.set(w, llamaAttentionBias(keyMask, B, Tq, offset + Tq, offset, w));
    return { B, Tq, offset, cos: tf.tensor2d(cos, [Tq, D]), sin: tf.tensor2d(sin, [Tq, D]), rot: rotateHalfMatrix(D), bias, drop, cache };
  }

  /** The final hidden states [B·T, hidden_size] (after model.norm). */
  private hidden(batch: Batch, drop: DropoutStream): tf.Tensor2D {
    const { batch_size: B, seq_len: T } = batch;
    if (T > this.maxPositions) throw new LoraStudioError(`sequence of ${T} tokens is longer than max_position_embeddings (${this.maxPositions})`, 'config.json', 'max_position_embeddings');
    this.checkIds(batch.input_ids);
    const pass = this.pass(B, T, 0, batch.attention_mask, drop);
    let h = this.embed(batch.input_ids);
    for (const [i, blk] of this.blocks.entries()) {
      // one scope per block: its temporaries go as soon as it is done (what backprop needs was saved by its ops)
      const x = h;
      h = tf.tidy(() => this.block(i, blk, x, pass));
    }
    return this.norm(h, this.p('model.norm.weight') as tf.Tensor1D);
  }

  /** embed_tokens rows for `ids`, off the tape (a frozen lookup). */
  private embed(ids: Int32Array): tf.Tensor2D {
    const table = this.m(EMBED);
    const t = tf.tensor1d(ids, 'int32');
    return isHalf(table) ? halfRows(table, t) : frozenRows(table, t);
  }

  private block(i: number, blk: Block, x: tf.Tensor2D, pass: Pass): tf.Tensor2D {
    const c = this.config;
    const { B, Tq, drop } = pass;
    const H = c.num_attention_heads;
    const KV = kvHeads(c);
    const D = headDim(c);
    const a = this.norm(x, blk.ln1);
    const q = applyRope(tf.reshape(this.linear(blk.q, a, drop), [B, Tq, H, D]), pass.cos, pass.sin, pass.rot);
    const k = applyRope(tf.reshape(this.linear(blk.k, a, drop), [B, Tq, KV, D]), pass.cos, pass.sin, pass.rot);
    const v = tf.reshape(this.linear(blk.v, a, drop), [B, Tq, KV, D]);
    const dropout = typeof c.attention_dropout === 'number' ? c.attention_dropout : 0;
    const bias = pass.bias.get(blk.window)!;
    let heads: tf.Tensor2D;
    if (!pass.cache && this.kernels === 'fast') {
      // a full pass: per-(example, head) products on the row layouts (GEMM on wasm), no head transposes
      heads = groupedAttentionFast(tf.reshape(q, [B * Tq, H * D]), tf.reshape(k, [B * Tq, KV * D]), tf.reshape(v, [B * Tq, KV * D]), bias, { B, Tq, Tk: Tq, H, KV, D }, dropout, drop);
    } else {
      let kh = tf.transpose(k, [0, 2, 1, 3]) as tf.Tensor4D;
      let vh = tf.transpose(v, [0, 2, 1, 3]) as tf.Tensor4D;
      if (pass.cache) {
        if (pass.cache.k[i]) {
          kh = tf.concat([pass.cache.k[i], kh], 2);
          vh = tf.concat([pass.cache.v[i], vh], 2);
        }
        pass.cache.k[i] = tf.keep(kh);
        pass.cache.v[i] = tf.keep(vh);
      }
      heads = groupedAttention(tf.transpose(q, [0, 2, 1, 3]) as tf.Tensor4D, kh, vh, bias, { B, Tq, Tk: kh.shape[2], H, KV, D }, dropout, drop);
    }
    const r = tf.add(x, this.linear(blk.o, heads, drop)) as tf.Tensor2D;
    const m = this.norm(r, blk.ln2);
    const act = (this.kernels === 'fast' ? swigluFast : swiglu)(this.linear(blk.gate, m, drop), this.linear(blk.up, m, drop));
    return tf.add(r, this.linear(blk.down, act, drop)) as tf.Tensor2D;
  }

  private norm(x: tf.Tensor2D, w: tf.Tensor1D): tf.Tensor2D {
    return (this.kernels === 'fast' ? rmsNormFast : rmsNorm)(x, w, this.config.rms_norm_eps);
  }

  private linear(d: Dense, x: tf.Tensor2D, drop: DropoutStream): tf.Tensor2D {
    if (this.kernels === 'fast') return adaptedLinearFast(x, d.w, d.b, d.lora, drop);
    if (isHalf(d.w)) throw new Error('internal: a 16-bit weight on the reference path');
    return adaptedLinear(x, d.w, d.b, d.lora, drop);
  }

  private applyHead(h: tf.Tensor2D, drop: DropoutStream): tf.Tensor2D {
    if (this.head.rowsAreOut) return gemm(h, this.head.w, { transposeB: true });
    return this.linear(this.head, h, drop);
  }

  /** Per-row NLL (rows that predict nothing are 0) and the number of predictions. */
  protected rowNll(batch: Batch, drop: DropoutStream, withGrad: boolean): { rows: tf.Tensor1D; count: number } {
    if (this.task === 'seq-cls') {
      const labels = batch.labels;
      if (!labels) throw new LoraStudioError('a seq-cls batch needs labels', undefined, 'label');
      for (const l of labels) {
        if (!(Number.isInteger(l) && l >= 0 && l < this.num_labels)) throw new LoraStudioError(`label ${l} is outside [0, ${this.num_labels})`, undefined, 'label');
      }
      const logits = this.applyHead(pickRows(this.hidden(batch, drop), this.lastRows(batch)), drop);
      return { rows: crossEntropyRows(logits, labels), count: batch.batch_size };
    }
    const { targets, count } = causalTargets(batch);
    const h = this.hidden(batch, drop);
    const head = this.head;
    if (head.rowsAreOut) {
      // the frozen head without LoRA: logits made block by block, never held whole
      const rows = head.wT && !isHalf(head.w) ? tiedHeadNll(h, head.wT, head.w, targets) : tiedHeadNllFast(h, head.w, targets, withGrad);
      return { rows, count };
    }
    return { rows: crossEntropyRows(this.applyHead(h, drop), targets), count };
  }
}

/** lm_head is a Linear of its own in the model ([in, out]): it carries LoRA or is trained in full (modules_to_save). */
function headIsLinear(spec: ModelSpec): boolean {
  return spec.task === 'causal-lm' && (spec.targets.some((t) => t.name === 'lm_head') || spec.modules_to_save.includes('lm_head'));
}

// ---- loading: what planParameters (models/plan.ts) needs to know about the Llama family ----

function llamaPlanHooks(c: LlamaConfig, spec: ModelSpec): PlanHooks {
  const tied = tiedEmbeddings(c);
  const H = c.hidden_size;
  const q = c.num_attention_heads * headDim(c);
  const kv = kvHeads(c) * headDim(c);
  const I = c.intermediate_size;
  const linearHead = headIsLinear(spec);
  const shapes = llamaWeightShapes(c, spec.task, spec.num_labels);
  return {
    shapes,
    moduleDims: (name) => {
      if (name === 'lm_head') return [H, c.vocab_size];
      if (name === 'score') return [H, spec.num_labels];
      const kind = name.slice(name.lastIndexOf('.') + 1);
      const dims: Record<string, [number, number]> = { q_proj: [H, q], k_proj: [H, kv], v_proj: [H, kv], o_proj: [q, H], gate_proj: [H, I], up_proj: [H, I], down_proj: [I, H] };
      return dims[kind];
    },
    canTakeLora: (name) => LINEAR.test(name) || name === 'score' || (name === 'lm_head' && !tied),
    loraRefusal: tied
      ? 'only the Linear layers (q/k/v/o_proj, gate/up/down_proj, score) can carry LoRA; lm_head is tied to model.embed_tokens in this model (tie_word_embeddings), and LoRA on a tied lm_head is not supported'
      : 'only the Linear layers (q/k/v/o_proj, gate/up/down_proj, lm_head, score) can carry LoRA',
    tiedHead: tied ? EMBED : undefined,
    frozenEmbedding: { module: 'model.embed_tokens', name: 'model.embed_tokens' },
    headInitStd: typeof c.initializer_range === 'number' ? c.initializer_range : 0.02,
    transposed: (key) => /\.lora_[AB]\.weight$/.test(key) || /_proj\.weight$/.test(key) || key === 'score.weight' || (key === 'lm_head.weight' && linearHead),
    // the GEMM reads every Linear weight and the head in 16 bits; embed_tokens by row lookup (and as the tied head)
    halfOk: (key) => llamaHalfOk(key, shapes.get(key)),
  };
}
