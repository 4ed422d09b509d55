/**
 * GPT-2 with LoRA on TensorFlow.js: transformers' GPT2LMHeadModel (causal-lm, lm_head tied to wte) and
 * GPT2ForSequenceClassification (seq-cls, `score` on the last real token), with PEFT's LoRA branches,
 * modules_to_save and bias modes. Only the PEFT parameters are tf.Variables; the base model is frozen tensors.
 *
 * Layout (for wasm's fast 2-D matmul): every weight is held as [in, out]. Conv1D weights already are;
 * Linear weights (score, lm_head) are transposed at load, LoRA A is held as [in, r] and B as [r, out].
 * `trainable` therefore holds these internal layouts; exportAdapter/loadAdapter speak PEFT's layout.
 * No gather sits on the gradient path: rows are picked with masks, cross entropy uses a one-hot mask.
 * This file is GPT-2's forward pass; the parameters, adapter and replicas are models/lora_model.ts's, the planning
 * of which tensors exist and train is models/plan.ts's (given GPT-2's facts, gpt2PlanHooks).
 */
import * as tf from '@tensorflow/tfjs-core';
import { LoraStudioError } from '../../errors';
import { type Batch, causalTargets, lastRealPositions } from '../../data/collate';
import type { Decoder, ForwardOptions, LoraModel, ModelSpec } from '../family';
import { GPT2Decoder } from './decode';
import { adaptedLinear, adaptedLinearFast, type LoraFactors } from '../../lora/layer';
import { type GPT2Config, SUPPORTED_ACTIVATIONS } from './config';
import { gpt2WeightShapes, isConv1D, PREFIX } from './weights';
import { selfAttention, selfAttentionFast } from './attention';
import { attentionBias } from '../../ops/attention_mask';
import { activation, activationFast, crossEntropyRows, type DropoutStream, frozenRows, isTrainable, layerNorm, layerNormFast, pickRows, residualFast, tiedHeadNll, tiedHeadNllFast } from '../../ops/layers';
import { gemm } from '../../ops/gemm';
import { LoraModelBase } from '../lora_model';
import { type PlanHooks, planParameters } from '../plan';

/** Keys whose tensors are held transposed relative to their HF / PEFT layout. */
const TRANSPOSED = /(^|\.)(lora_A|lora_B)\.weight$|^(score|lm_head)\.weight$/;

interface Dense {
  name: string;
  w: tf.Tensor2D;
  b?: tf.Tensor1D;
  lora?: LoraFactors;
  /** wᵀ when already held (the tied head: wte itself) */
  wT?: tf.Tensor2D;
  /** the fast tied head: `w` is wte itself, [out, in] */
  rowsAreOut?: boolean;
}

interface Block {
  ln1: [tf.Tensor1D, tf.Tensor1D];
  attn: Dense;
  attnProj: Dense;
  ln2: [tf.Tensor1D, tf.Tensor1D];
  fc: Dense;
  mlpProj: Dense;
}

export class GPT2LoraModel extends LoraModelBase implements LoraModel {
  readonly config: GPT2Config;
  private readonly blocks: Block[] = [];
  private readonly head: Dense;

  private constructor(spec: ModelSpec) {
    const c = spec.config as GPT2Config;
    checkConfig(c);
    super(spec, planParameters(spec, gpt2PlanHooks(c, spec)));
    this.config = c;
    try {
      // The tied LM head: wteᵀ, computed once on the device (unless lm_head is trained as a copy).
      if (spec.task === 'causal-lm' && !this.has('lm_head.weight') && !(this.kernels === 'fast' && !this.has('lm_head.lora_A.weight'))) {
        this.params.set('lm_head.weight', tf.tidy(() => tf.transpose(this.p('transformer.wte.weight'))));
      }
    } catch (e) {
      this.dispose();
      throw e;
    }
    const dense = (name: string, hasBias: boolean): Dense => {
      const d: Dense = { name, w: this.p(`${name}.weight`) as tf.Tensor2D, b: hasBias ? (this.p(`${name}.bias`) as tf.Tensor1D) : undefined };
      if (this.has(`${name}.lora_A.weight`)) {
        d.lora = { A: this.p(`${name}.lora_A.weight`) as tf.Tensor2D, B: this.p(`${name}.lora_B.weight`) as tf.Tensor2D, scaling: this.scaling.get(name)!, dropout: spec.lora_dropout };
      }
      return d;
    };
    const ln = (name: string): [tf.Tensor1D, tf.Tensor1D] => [this.p(`${name}.weight`) as tf.Tensor1D, this.p(`${name}.bias`) as tf.Tensor1D];
    for (let i = 0; i < this.config.n_layer; i++) {
      const h = `${PREFIX}h.${i}.`;
      this.blocks.push({
        ln1: ln(`${h}ln_1`), attn: dense(`${h}attn.c_attn`, true), attnProj: dense(`${h}attn.c_proj`, true),
        ln2: ln(`${h}ln_2`), fc: dense(`${h}mlp.c_fc`, true), mlpProj: dense(`${h}mlp.c_proj`, true),
      });
    }
    if (spec.task === 'causal-lm' && !this.has('lm_head.weight')) {
      // fast tied head: wte [V, C] is the weight, used as-is
      const wte = this.p(`${PREFIX}wte.weight`) as tf.Tensor2D;
      this.head = { name: 'lm_head', w: wte, rowsAreOut: true };
    } else if (spec.task === 'causal-lm') {
      this.head = dense('lm_head', false);
      if (!this.trainable.has('lm_head.weight')) this.head.wT = this.p('transformer.wte.weight') as tf.Tensor2D;
    } else {
      this.head = dense('score', false);
    }
  }

  static create(spec: ModelSpec): GPT2LoraModel {
    return new GPT2LoraModel(spec);
  }

  get maxPositions(): number {
    return this.config.n_positions;
  }

  get bodySize(): number {
    return this.config.n_embd * this.config.n_layer;
  }

  /** Causal: [B, T, vocab_size] for every position. Seq-cls: [B, num_labels] from each row's last real token. */
  logits(batch: Batch, opts: ForwardOptions = { training: false }): tf.Tensor {
    return tf.tidy(() => {
      const drop = this.dropout(opts, batch);
      if (this.task === 'seq-cls') return this.applyHead(this.hidden(batch, drop, lastRealPositions(batch)), drop);
      return tf.reshape(this.applyHead(this.hidden(batch, drop), drop), [batch.batch_size, batch.seq_len, -1]);
    });
  }

  /** Causal: [B, vocab_size] at each row's last real token (what generation needs); seq-cls: same as logits. */
  lastLogits(batch: Batch): tf.Tensor2D {
    return tf.tidy(() => {
      const drop = this.dropout({ training: false }, batch);
      return this.applyHead(this.hidden(batch, drop, lastRealPositions(batch)), drop);
    });
  }

  /** A KV-cache session for generation (decode.ts): this model's own layers and head, in eval mode. */
  decoder(): Decoder {
    const [drop, p] = [this.dropout({ training: false }, { batch_size: 1 }), (key: string) => this.p(`${PREFIX}${key}`)];
    return new GPT2Decoder({ config: this.config, kernels: this.kernels, blocks: this.blocks, wte: p('wte.weight') as tf.Tensor2D, wpe: p('wpe.weight') as tf.Tensor2D,
      lnF: [p('ln_f.weight') as tf.Tensor1D, p('ln_f.bias') as tf.Tensor1D], linear: (d: Dense, x) => this.linear(d, x, drop), head: (h) => this.applyHead(h, drop) });
  }

  // ---- internals ----

  /**
   * The final hidden states [B·T, C] (after ln_f). With `at` (a position of T per batch row), only those rows,
   * [B, C]: on the fast path the last block then runs its attention output, MLP and ln_f on those rows alone
   * (keys and values still come from every position), with the dropout masks those rows get in the full pass.
   */
  private hidden(batch: Batch, drop: DropoutStream, at?: Int32Array): tf.Tensor2D {
    const c = this.config;
    const { batch_size: B, seq_len: T } = batch;
    const C = c.n_embd;
    if (T > c.n_positions) throw new LoraStudioError(`sequence of ${T} tokens is longer than n_positions (${c.n_positions})`, undefined, 'n_positions');
    for (const id of batch.input_ids) {
      if (!(id >= 0 && id < c.vocab_size)) throw new LoraStudioError(`token id ${id} is outside the vocabulary (vocab_size ${c.vocab_size})`, undefined, 'input_ids');
    }
    // wte is always frozen: its rows are looked up off the tape. wpe too, unless it is trained in full.
    const tokens = frozenRows(this.p(`${PREFIX}wte.weight`) as tf.Tensor2D, tf.tensor1d(batch.input_ids, 'int32'));
    const wpe = this.p(`${PREFIX}wpe.weight`) as tf.Tensor2D;
    const positions = isTrainable(wpe) ? tf.slice(wpe, [0, 0], [T, C]) : frozenRows(wpe, tf.range(0, T, 1, 'int32') as tf.Tensor1D);
    let h = tf.reshape(tf.add(tf.reshape(tokens, [B, T, C]), positions), [B * T, C]) as tf.Tensor2D;
    h = drop.apply(h, c.embd_pdrop);
    const bias = attentionBias(batch.attention_mask, B, T);
    const scale = c.scale_attn_weights ? 1 / Math.sqrt(C / c.n_head) : 1;
    const eps = c.layer_norm_epsilon;
    const fast = this.kernels === 'fast';
    // flat row indices [B] of the picked positions; the fast path prunes the last block, the reference picks at the end
    const atRows = at ? Int32Array.from(at, (t, b) => b * T + t) : null;
    const picked = fast ? atRows : null;
    for (const [i, blk] of this.blocks.entries()) {
      // one scope per block: the block's intermediates are freed as soon as it is done (what backprop needs
      // was saved by its ops), so the forward pass never holds more than one block's temporaries
      const x = h;
      h = tf.tidy(() => {
        if (fast) {
          const a = layerNormFast(x, blk.ln1[0], blk.ln1[1], eps);
          const qkv = this.linear(blk.attn, a, drop);
          let heads = selfAttentionFast(qkv, bias, { B, T, C, H: c.n_head }, scale, c.attn_pdrop, drop);
          // the last block of a pooled pass: from here on, only the picked rows
          const last = picked !== null && i === this.blocks.length - 1;
          const d = last ? drop.atPositions(at!, T) : drop;
          if (last) heads = pickRows(heads, picked);
          const proj = this.linear(blk.attnProj, heads, d);
          const r = residualFast(last ? pickRows(x, picked) : x, proj, d.multiplier(proj.shape, c.resid_pdrop));
          const m = layerNormFast(r, blk.ln2[0], blk.ln2[1], eps);
          const act = activationFast(c.activation_function, this.linear(blk.fc, m, d)) as tf.Tensor2D;
          const out = this.linear(blk.mlpProj, act, d);
          return residualFast(r, out, d.multiplier(out.shape, c.resid_pdrop));
        }
        const a = layerNorm(x, blk.ln1[0], blk.ln1[1], eps);
        const qkv = this.linear(blk.attn, a, drop);
        const heads = selfAttention(qkv, bias, { B, T, C, H: c.n_head }, scale, c.attn_pdrop, drop);
        const r = tf.add(x, drop.apply(this.linear(blk.attnProj, heads, drop), c.resid_pdrop)) as tf.Tensor2D;
        const m = layerNorm(r, blk.ln2[0], blk.ln2[1], eps);
        const act = activation(c.activation_function, this.linear(blk.fc, m, drop)) as tf.Tensor2D;
        return tf.add(r, drop.apply(this.linear(blk.mlpProj, act, drop), c.resid_pdrop));
      });
      if (fast && x !== h) x.dispose();
    }
    const lnF = this.p(`${PREFIX}ln_f.weight`) as tf.Tensor1D;
    const out = (fast ? layerNormFast : layerNorm)(h, lnF, this.p(`${PREFIX}ln_f.bias`) as tf.Tensor1D, eps);
    return atRows && !picked ? pickRows(out, atRows) : out;
  }

  private linear(d: Dense, x: tf.Tensor2D, drop: DropoutStream): tf.Tensor2D {
    return this.kernels === 'fast' ? adaptedLinearFast(x, d.w, d.b, d.lora, drop) : adaptedLinear(x, d.w, d.b, d.lora, drop, d.wT);
  }

  private applyHead(h: tf.Tensor2D, drop: DropoutStream): tf.Tensor2D {
    // the fast tied head holds wte [V, C]: logits = h · wteᵀ, read from wte as it is
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
      const logits = this.applyHead(this.hidden(batch, drop, lastRealPositions(batch)), drop);
      return { rows: crossEntropyRows(logits, labels), count: batch.batch_size };
    }
    const { targets, count } = causalTargets(batch);
    const h = this.hidden(batch, drop);
    const head = this.head;
    if (head.rowsAreOut) return { rows: tiedHeadNllFast(h, head.w, targets, withGrad), count };
    if (head.wT && !head.lora && !isTrainable(head.w)) {
      // the tied, frozen head: logits are made block by block and never held whole
      return { rows: tiedHeadNll(h, head.w, head.wT, targets), count };
    }
    return { rows: crossEntropyRows(this.applyHead(h, drop), targets), count };
  }
}

// ---- loading: what planParameters (models/plan.ts) needs to know about GPT-2 ----

function gpt2PlanHooks(c: GPT2Config, spec: ModelSpec): PlanHooks {
  return {
    shapes: gpt2WeightShapes(c, spec.task, spec.num_labels),
    moduleDims: (name) => moduleDims(c, name, spec.num_labels),
    canTakeLora: (name) => isConv1D(name) || name === 'score' || name === 'lm_head',
    loraRefusal: 'not a Conv1D or Linear module of this model',
    tiedHead: `${PREFIX}wte.weight`,
    frozenEmbedding: { module: `${PREFIX}wte`, name: 'wte' },
    headInitStd: typeof c.initializer_range === 'number' ? c.initializer_range : 0.02,
    transposed: (key) => TRANSPOSED.test(key),
  };
}

function checkConfig(c: GPT2Config): void {
  if (c.scale_attn_by_inverse_layer_idx === true) throw new LoraStudioError('scale_attn_by_inverse_layer_idx = true is not supported', 'config.json', 'scale_attn_by_inverse_layer_idx');
  if (c.reorder_and_upcast_attn === true) throw new LoraStudioError('reorder_and_upcast_attn = true is not supported', 'config.json', 'reorder_and_upcast_attn');
  if (!SUPPORTED_ACTIVATIONS.includes(c.activation_function)) {
    throw new LoraStudioError(`unsupported ${JSON.stringify(c.activation_function)}; supported: ${SUPPORTED_ACTIVATIONS.join(', ')}`, 'config.json', 'activation_function');
  }
  if (c.n_embd % c.n_head !== 0) throw new LoraStudioError(`n_embd (${c.n_embd}) must be divisible by n_head (${c.n_head})`, 'config.json', 'n_head');
}

/** in/out features of a Conv1D or head module. */
function moduleDims(c: GPT2Config, name: string, numLabels: number): [number, number] {
  const C = c.n_embd;
  const I = c.n_inner ?? 4 * C;
  if (name === 'lm_head') return [C, c.vocab_size];
  if (name === 'score') return [C, numLabels];
  if (name.endsWith('attn.c_attn')) return [C, 3 * C];
  if (name.endsWith('attn.c_proj')) return [C, C];
  if (name.endsWith('mlp.c_fc')) return [C, I];
  return [I, C]; // mlp.c_proj
}
