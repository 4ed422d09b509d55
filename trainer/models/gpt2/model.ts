/**
 * GPT-2 with LoRA on TensorFlow.js: transformers' GPT2LMHeadModel (causal-lm, lm_head tied to wte) and
 * GPT2ForSequenceClassification (seq-cls, `score` on the last real token), with PEFT's LoRA branches,
 * modules_to_save and bias modes. Only the PEFT parameters are tf.Variables; the base model is frozen tensors.
 *
 * Layout (for wasm's fast 2-D matmul): every weight is held as [in, out]. Conv1D weights already are;
 * Linear weights (score, lm_head) are transposed at load, LoRA A is held as [in, r] and B as [r, out].
 * `trainable` therefore holds these internal layouts; exportAdapter/loadAdapter speak PEFT's layout.
 * No gather sits on the gradient path: rows are picked with masks, cross entropy uses a one-hot mask.
 */
import * as tf from '@tensorflow/tfjs-core';
import { closestNames, LoraStudioError } from '../../errors';
import type { HostTensor } from '../../io/safetensors';
import { type Batch, causalTargets, lastRealPositions } from '../../data/collate';
import type { Task } from '../../task';
import type { AdapterConfigJson, AdapterWeights } from '../../lora/types';
import type { ForwardOptions, Kernels, LoraModel, ModelSpec } from '../family';
import type { LoraTarget } from '../../protocol';
import { adaptedLinear, adaptedLinearFast, initialLoraFactors, type LoraFactors, transposeHost } from '../../lora/layer';
import { Rng } from '../../util/rng';
import { type GPT2Config, SUPPORTED_ACTIVATIONS } from './config';
import { gpt2WeightShapes, isConv1D, PREFIX } from './weights';
import { selfAttention, selfAttentionFast } from './attention';
import { attentionBias } from '../../ops/attention_mask';
import { activation, activationFast, crossEntropyRows, DropoutStream, frozenRows, isTrainable, layerNorm, layerNormFast, pickRows, residualFast, tiedHeadNll, tiedHeadNllFast } from '../../ops/layers';
import { releaseAsBackpropPasses } from '../../util/tape';
import { gemm } from '../../ops/gemm';
import { installWasmKernels, readInto } from '../../ops/wasm_kernels';
import { installHeapKernels } from '../../ops/heap_kernels';

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

let modelCount = 0;

export class GPT2LoraModel implements LoraModel {
  /** trainable parameters by PEFT key without `base_model.model.` (internal [in, out]-style layout) */
  readonly trainable = new Map<string, tf.Variable>();
  readonly config: GPT2Config;
  readonly task: Task;
  readonly num_labels: number;
  readonly targets: LoraTarget[];
  readonly pad_token_id: number;
  readonly kernels: Kernels;
  /** every parameter tensor (frozen or trainable) by key, internal layout */
  private readonly params = new Map<string, tf.Tensor>();
  private readonly blocks: Block[] = [];
  private readonly head: Dense;
  private readonly dropoutSeeds: Rng;
  private disposed = false;
  /** the spec this model was built from, without its weights and adapter (for replicas) */
  private readonly specShape: Omit<ModelSpec, 'weights' | 'adapter'>;

  private constructor(spec: ModelSpec) {
    this.config = spec.config as GPT2Config;
    this.task = spec.task;
    this.num_labels = spec.num_labels;
    this.targets = spec.targets;
    this.pad_token_id = spec.pad_token_id;
    // webgpu: the plain tf-op path (the fast path's head reads values back inside the step, which webgpu can only do async)
    this.kernels = spec.kernels ?? (tf.getBackend() === 'webgpu' ? 'reference' : 'fast');
    if (tf.getBackend() === 'wasm') {
      installWasmKernels();
      installHeapKernels();
    }
    this.dropoutSeeds = new Rng(spec.seed ^ 0x5bd1e995);
    const { weights: _w, adapter: _a, ...shape } = spec;
    this.specShape = shape;
    const plan = planParameters(spec);
    const id = ++modelCount;
    try {
      for (const [key, t] of plan.values) {
        const value = tf.tensor(t.data, t.shape, 'float32');
        if (plan.trainable.has(key)) {
          this.trainable.set(key, tf.variable(value, true, `lora_studio_${id}/${key}`));
          value.dispose();
        }
        this.params.set(key, this.trainable.get(key) ?? value);
      }
      // The tied LM head: wteᵀ, computed once on the device (unless lm_head is trained as a copy).
      if (spec.task === 'causal-lm' && !this.params.has('lm_head.weight') && !(this.kernels === 'fast' && !this.params.has('lm_head.lora_A.weight'))) {
        this.params.set('lm_head.weight', tf.tidy(() => tf.transpose(this.p('transformer.wte.weight'))));
      }
    } catch (e) {
      this.dispose();
      throw e;
    }
    const dense = (name: string, hasBias: boolean): Dense => {
      const d: Dense = { name, w: this.p(`${name}.weight`) as tf.Tensor2D, b: hasBias ? (this.p(`${name}.bias`) as tf.Tensor1D) : undefined };
      if (this.params.has(`${name}.lora_A.weight`)) {
        d.lora = { A: this.p(`${name}.lora_A.weight`) as tf.Tensor2D, B: this.p(`${name}.lora_B.weight`) as tf.Tensor2D, scaling: plan.scaling.get(name)!, dropout: spec.lora_dropout };
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
    if (spec.task === 'causal-lm' && !this.params.has('lm_head.weight')) {
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

  /** Mean cross entropy: over predicted tokens (causal) or over examples (seq-cls). */
  loss(batch: Batch, opts: ForwardOptions = { training: false }): tf.Scalar {
    return tf.tidy(() => {
      const { rows, count } = this.rowNll(batch, this.dropout(opts, batch), true);
      const loss = tf.div(tf.sum(rows), opts.denominator ?? Math.max(count, 1)) as tf.Scalar;
      // under tf.variableGrads: each node's saved tensors and output gradients go as soon as backprop passes it
      releaseAsBackpropPasses();
      return loss;
    });
  }

  /** Eval: total NLL (summed in float64 on the host) and how many tokens (causal) or examples (seq-cls) it covers. */
  async nllSum(batch: Batch): Promise<{ nll: number; count: number }> {
    const rows = tf.tidy(() => this.rowNll(batch, this.dropout({ training: false }, batch), false).rows);
    const data = await rows.data();
    rows.dispose();
    let nll = 0;
    for (const v of data) nll += v;
    return { nll, count: this.task === 'seq-cls' ? batch.batch_size : causalTargets(batch).count };
  }

  /** The trained parameters in PEFT's layout (host F32), ready for adapter_model.safetensors. */
  async exportAdapter(config: AdapterConfigJson): Promise<AdapterWeights> {
    const lora = new Map<string, { A: HostTensor; B: HostTensor }>();
    const extra = new Map<string, HostTensor>();
    for (const t of this.targets) {
      lora.set(t.name, { A: await this.hostValueAsync(`${t.name}.lora_A.weight`), B: await this.hostValueAsync(`${t.name}.lora_B.weight`) });
    }
    for (const key of this.trainable.keys()) {
      if (!/\.lora_[AB]\.weight$/.test(key)) extra.set(key, await this.hostValueAsync(key));
    }
    return { config, lora, extra };
  }

  /** Sets the trainable parameters from an adapter in PEFT's layout (a checkpoint, or the best model at the end). */
  loadAdapter(adapter: AdapterWeights): void {
    const source = 'adapter';
    for (const t of this.targets) {
      const f = adapter.lora.get(t.name);
      if (!f) throw new LoraStudioError(`has no LoRA factors for target module ${t.name}`, source, t.name);
      this.assign(`${t.name}.lora_A.weight`, f.A, source);
      this.assign(`${t.name}.lora_B.weight`, f.B, source);
    }
    for (const name of adapter.lora.keys()) {
      if (!this.targets.some((t) => t.name === name)) throw new LoraStudioError(`holds LoRA factors for ${name}, which is not a target of this run`, source, name);
    }
    for (const [key, t] of adapter.extra) {
      if (!this.trainable.has(key)) {
        throw new LoraStudioError(`holds ${key}, which is not trainable in this run${hint(key, this.trainable.keys())}`, source, key);
      }
      this.assign(key, t, source);
    }
  }

  /**
   * The spec of an identical replica (for a data-parallel worker): the base weights read back from this model
   * (canonical HF keys and layout), and the current trainable values as an adapter, all views into `buffer`.
   */
  replicaSpec(): { spec: ModelSpec; buffer: ArrayBuffer } {
    const frozen = [...this.params.keys()].filter((key) => !(this.trainable.has(key) || key === 'lm_head.weight' || /\.lora_[AB]\.weight$/.test(key)));
    const extraKeys = [...this.trainable.keys()].filter((key) => !/\.lora_[AB]\.weight$/.test(key));
    const loraKeys = this.targets.flatMap((t) => [`${t.name}.lora_A.weight`, `${t.name}.lora_B.weight`]);
    // one buffer for every value: a worker gets it by transfer (no copy), and no per-tensor copies are left over
    const buffer = new ArrayBuffer([...frozen, ...extraKeys, ...loraKeys].reduce((n, key) => n + this.p(key).size * 4, 0));
    let offset = 0;
    const take = (key: string): HostTensor => {
      const data = new Float32Array(buffer, offset, this.p(key).size);
      offset += data.byteLength;
      return this.hostValue(key, data);
    };
    const weights = new Map<string, HostTensor>(frozen.map((key) => [key, take(key)]));
    const lora = new Map<string, { A: HostTensor; B: HostTensor }>(this.targets.map((t) => [t.name, { A: take(`${t.name}.lora_A.weight`), B: take(`${t.name}.lora_B.weight`) }]));
    const extra = new Map<string, HostTensor>(extraKeys.map((key) => [key, take(key)]));
    // a trained base tensor (bias, modules_to_save) still needs a base value to plan from
    for (const key of extra.keys()) if (key !== 'lm_head.weight' && !weights.has(key)) weights.set(key, extra.get(key)!);
    return { spec: { ...this.specShape, weights, adapter: { config: {} as AdapterConfigJson, lora, extra } }, buffer };
  }

  /** Number of scalars in the trainable parameters. */
  trainableParamCount(): number {
    let n = 0;
    for (const v of this.trainable.values()) n += v.size;
    return n;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.params.values()) t.dispose();
    for (const v of this.trainable.values()) if (!v.isDisposed) v.dispose();
    this.params.clear();
    this.trainable.clear();
  }

  // ---- internals ----

  private p(key: string): tf.Tensor {
    const t = this.params.get(key);
    if (!t) throw new Error(`internal: no parameter ${key}`);
    return t;
  }

  private dropout(opts: ForwardOptions, batch: Batch): DropoutStream {
    return new DropoutStream(opts.training, opts.training ? opts.seed ?? this.dropoutSeeds.int(2 ** 31) : 0, batch.batch_size, opts.rowOffset ?? 0);
  }

  /** hostValue, read with the async data() on backends other than wasm (webgpu has no synchronous read). */
  private async hostValueAsync(key: string): Promise<HostTensor> {
    const t = this.p(key);
    if (tf.getBackend() === 'wasm') return this.hostValue(key);
    const host: HostTensor = { shape: [...t.shape], data: Float32Array.from(await t.data()), dtype: 'F32' };
    return TRANSPOSED.test(key) ? transposeHost(host) : host;
  }

  /** A parameter's value on the host, in PEFT's layout; read into `data` when given (a view of a shared buffer). */
  private hostValue(key: string, data = new Float32Array(this.p(key).size)): HostTensor {
    const t = this.p(key);
    readInto(t, data);
    const host: HostTensor = { shape: [...t.shape], data, dtype: 'F32' };
    return TRANSPOSED.test(key) ? transposeHost(host) : host;
  }

  private assign(key: string, value: HostTensor, source: string): void {
    const v = this.trainable.get(key)!;
    const t = TRANSPOSED.test(key) ? transposeHost(value) : value;
    if (!sameShape(t.shape, v.shape)) {
      const expected = TRANSPOSED.test(key) ? [...v.shape].reverse() : v.shape;
      throw new LoraStudioError(`has shape ${fmt(value.shape)}, expected ${fmt(expected)}`, source, key);
    }
    tf.tidy(() => v.assign(tf.tensor(t.data, t.shape, 'float32')));
  }

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
  private rowNll(batch: Batch, drop: DropoutStream, withGrad: boolean): { rows: tf.Tensor1D; count: number } {
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

// ---- loading: which tensors exist, with what values, and which are trainable ----

interface Plan {
  /** every parameter in internal layout (lm_head is added later when tied) */
  values: Map<string, HostTensor>;
  trainable: Set<string>;
  scaling: Map<string, number>;
}

function planParameters(spec: ModelSpec): Plan {
  const { task } = spec;
  const c = spec.config as GPT2Config;
  checkConfig(c);
  if (task === 'seq-cls' && !(Number.isInteger(spec.num_labels) && spec.num_labels >= 2)) {
    throw new LoraStudioError(`seq-cls needs num_labels >= 2, got ${spec.num_labels}`, undefined, 'num_labels');
  }
  const shapes = gpt2WeightShapes(c, task, spec.num_labels);
  const values = new Map<string, HostTensor>();
  for (const [key, shape] of shapes) {
    const t = spec.weights.get(key);
    if (!t) {
      if (key === 'score.weight') continue; // filled below: from the adapter, or a fresh head
      throw new LoraStudioError(`the base weights have no ${key}`, undefined, key);
    }
    if (!sameShape(t.shape, shape)) throw new LoraStudioError(`has shape ${fmt(t.shape)}, but config.json implies ${fmt(shape)}`, undefined, key);
    values.set(key, t);
  }

  // The module table we can train: name → its parameter keys.
  const modules = new Map<string, string[]>();
  for (const key of shapes.keys()) {
    const mod = key.slice(0, key.lastIndexOf('.'));
    modules.set(mod, [...(modules.get(mod) ?? []), key]);
  }
  if (task === 'causal-lm') modules.set('lm_head', ['lm_head.weight']);

  // Adapter extras override base values (HF layout).
  const extras = spec.adapter?.extra ?? new Map<string, HostTensor>();
  for (const [key, t] of extras) {
    const shape = key === 'lm_head.weight' ? [c.vocab_size, c.n_embd] : shapes.get(key);
    if (!shape) throw new LoraStudioError(`the adapter holds ${key}, which this model does not have${hint(key, shapes.keys())}`, 'adapter_model.safetensors', key);
    if (!sameShape(t.shape, shape)) throw new LoraStudioError(`has shape ${fmt(t.shape)}, but the model expects ${fmt(shape)}`, 'adapter_model.safetensors', key);
    values.set(key, t);
  }
  if (task === 'seq-cls' && !values.has('score.weight')) {
    // transformers initializes a missing head as nn.Linear with normal(0, initializer_range)
    const std = typeof c.initializer_range === 'number' ? c.initializer_range : 0.02;
    const rng = new Rng(spec.seed ^ 0x2545f491);
    const data = new Float32Array(spec.num_labels * c.n_embd);
    for (let i = 0; i < data.length; i++) data[i] = std * rng.normal();
    values.set('score.weight', { shape: [spec.num_labels, c.n_embd], data, dtype: 'F32' });
  }

  const trainable = new Set<string>();
  // modules_to_save: PEFT trains a full copy of each matched module.
  for (const entry of spec.modules_to_save) {
    for (const [mod, keys] of modules) {
      if (mod !== entry && !mod.endsWith(`.${entry}`)) continue;
      if (mod === `${PREFIX}wte`) {
        throw new LoraStudioError('training wte in full is not supported (its gradient needs a gather, which the wasm backend lacks)', undefined, 'modules_to_save');
      }
      for (const k of keys) trainable.add(k);
    }
  }
  if (trainable.has('lm_head.weight')) values.set('lm_head.weight', values.get(`${PREFIX}wte.weight`)!);

  // LoRA factors: from the adapter, else PEFT's initialization (seeded, in target order).
  const scaling = new Map<string, number>();
  const rng = new Rng(spec.seed);
  const known = new Set(modules.keys());
  for (const t of spec.targets) {
    if (!known.has(t.name) || !(isConv1D(t.name) || t.name === 'score' || t.name === 'lm_head')) {
      throw new LoraStudioError(`cannot take LoRA: not a Conv1D or Linear module of this model${hint(t.name, known)}`, undefined, t.name);
    }
    const [inF, outF] = moduleDims(c, t.name, spec.num_labels);
    if (t.in_features !== inF || t.out_features !== outF) {
      throw new LoraStudioError(`target says in/out ${t.in_features}/${t.out_features}, the model has ${inF}/${outF}`, undefined, t.name);
    }
    let f = spec.adapter?.lora.get(t.name);
    if (spec.adapter && !f) throw new LoraStudioError(`the adapter has no lora_A/lora_B for target ${t.name}`, 'adapter_model.safetensors', t.name);
    f ??= initialLoraFactors(inF, outF, t.r, spec.init_lora_weights, rng);
    if (!sameShape(f.A.shape, [t.r, inF])) throw new LoraStudioError(`lora_A has shape ${fmt(f.A.shape)}, expected [${t.r}, ${inF}] (r = ${t.r})`, 'adapter_model.safetensors', `${t.name}.lora_A.weight`);
    if (!sameShape(f.B.shape, [outF, t.r])) throw new LoraStudioError(`lora_B has shape ${fmt(f.B.shape)}, expected [${outF}, ${t.r}] (r = ${t.r})`, 'adapter_model.safetensors', `${t.name}.lora_B.weight`);
    values.set(`${t.name}.lora_A.weight`, f.A);
    values.set(`${t.name}.lora_B.weight`, f.B);
    trainable.add(`${t.name}.lora_A.weight`).add(`${t.name}.lora_B.weight`);
    scaling.set(t.name, t.scaling);
  }
  if (spec.adapter) {
    for (const name of spec.adapter.lora.keys()) {
      if (!scaling.has(name)) throw new LoraStudioError(`the adapter has LoRA factors for ${name}, which is not a target module`, 'adapter_model.safetensors', name);
    }
  }

  // PEFT's bias modes.
  if (spec.bias === 'all') {
    for (const key of values.keys()) if (key.endsWith('.bias')) trainable.add(key);
  } else if (spec.bias === 'lora_only') {
    for (const t of spec.targets) if (values.has(`${t.name}.bias`)) trainable.add(`${t.name}.bias`);
  }

  // Internal layout: Linear weights and LoRA factors transposed to [in, out].
  for (const [key, t] of values) if (TRANSPOSED.test(key)) values.set(key, transposeHost(t));
  return { values, trainable, scaling };
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

function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function hint(name: string, candidates: Iterable<string>): string {
  const close = closestNames(name, candidates);
  return close.length ? `; did you mean ${close.join(', ')}?` : '';
}
