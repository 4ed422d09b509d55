/**
 * An independent float64 Llama / Qwen2 / Mistral + LoRA, written from the math of transformers'
 * modeling_llama.py, modeling_qwen2.py, modeling_mistral.py, modeling_rope_utils.py and masking_utils.py with
 * plain loops (no tfjs, nothing from trainer/ but types), for checking the tfjs model:
 *
 * - embedding; RMSNorm x·1/sqrt(mean(x²)+eps)·w; SwiGLU MLP down(silu(gate(x))·up(x)); final norm;
 * - RoPE with rotate_half, inv_freq = 1/θ^(2i/head_dim): default, linear (inv_freq / factor) and llama3
 *   (smooth interpolation), read from rope_scaling (4.x) or rope_parameters (v5);
 * - grouped-query attention (query head h reads kv head ⌊h / (heads / kv_heads)⌋), scale 1/sqrt(head_dim);
 * - causal + right-padding mask, and the sliding window kv > q − sliding_window (Mistral on every layer; Qwen2
 *   with use_sliding_window on layers ≥ max_window_layers, or as config.layer_types says);
 * - q/k/v biases (Qwen2; Llama's attention_bias, which also puts one on o_proj), mlp_bias;
 * - tied or untied lm_head; seq-cls `score` at each row's last real token;
 * - unmerged LoRA on any Linear: y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ, A [r, in], B [out, r], s = lora_alpha / r;
 * - both losses, and the float64 merge W + s·B·A.
 *
 * Slow on purpose; tiny models only.
 */

/** The config.json fields the reference reads, keys verbatim from transformers. */
export interface LlamaRefConfig {
  model_type: 'llama' | 'qwen2' | 'mistral';
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads?: number | null;
  head_dim?: number | null;
  rms_norm_eps: number;
  rope_theta?: number;
  rope_scaling?: RefRope | null;
  rope_parameters?: RefRope | null;
  attention_bias?: boolean;
  mlp_bias?: boolean;
  tie_word_embeddings?: boolean;
  sliding_window?: number | null;
  use_sliding_window?: boolean;
  max_window_layers?: number;
  layer_types?: string[] | null;
  [key: string]: unknown;
}

export interface RefRope {
  rope_type?: string;
  type?: string;
  rope_theta?: number;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
  [key: string]: unknown;
}

export interface LlamaRefLora {
  /** [r, in] */
  A: Float64Array;
  /** [out, r] */
  B: Float64Array;
  r: number;
  scaling: number;
}

export interface LlamaRefModel {
  config: LlamaRefConfig;
  task: 'causal-lm' | 'seq-cls';
  num_labels: number;
  /** HF keys, nn.Linear layout [out, in]; embed_tokens [V, H]; score [num_labels, H] */
  weights: Map<string, Float64Array>;
  /** module name → LoRA factors */
  lora: Map<string, LlamaRefLora>;
}

/** a tensor with its shape (a HostTensor, or safetensors_f64.ts's DiskTensor), or its flat values */
type Values = { shape: number[]; data: ArrayLike<number> } | ArrayLike<number>;
const values = (t: Values): Float64Array => Float64Array.from('shape' in t ? t.data : t);

/**
 * The reference from host values (tensors with their shape, or flat arrays in the layouts above), copied into float64, so a
 * caller may perturb one reference without touching another. A LoRA factor's rank comes from A's shape, or `r`.
 */
export function llamaRefModel(
  config: LlamaRefConfig,
  task: 'causal-lm' | 'seq-cls',
  numLabels: number,
  weights: Map<string, Values>,
  lora: Map<string, { A: Values; B: Values; scaling: number; r?: number }> = new Map(),
): LlamaRefModel {
  const w = new Map<string, Float64Array>();
  for (const [k, t] of weights) w.set(k, values(t));
  const l = new Map<string, LlamaRefLora>();
  for (const [k, f] of lora) {
    const r = f.r ?? ('shape' in f.A ? f.A.shape[0] : undefined);
    if (r === undefined) throw new Error(`reference: the rank of ${k} is unknown (give A's shape or r)`);
    l.set(k, { A: values(f.A), B: values(f.B), r, scaling: f.scaling });
  }
  return { config, task, num_labels: numLabels, weights: w, lora: l };
}

// ---------------------------------------------------------------------------------------------------------------
// Config facts, as transformers derives them

export const refHeadDim = (c: LlamaRefConfig): number => c.head_dim ?? Math.floor(c.hidden_size / c.num_attention_heads);
export const refKvHeads = (c: LlamaRefConfig): number => c.num_key_value_heads ?? c.num_attention_heads;

/** The RoPE fields: v5's rope_parameters first, else 4.x's rope_scaling with the top-level rope_theta. */
export function refRope(c: LlamaRefConfig): { type: string; theta: number; rope: RefRope } {
  const rope = c.rope_parameters ?? c.rope_scaling ?? {};
  const theta = c.rope_parameters?.rope_theta ?? c.rope_theta ?? 10000;
  return { type: rope.rope_type ?? rope.type ?? 'default', theta, rope };
}

/** inv_freq [head_dim / 2] of modeling_rope_utils.py for rope types default, linear and llama3. */
export function refInvFreq(c: LlamaRefConfig): Float64Array {
  const D = refHeadDim(c);
  const { type, theta, rope } = refRope(c);
  const inv = new Float64Array(D / 2);
  for (let i = 0; i < D / 2; i++) inv[i] = 1 / theta ** ((2 * i) / D);
  if (type === 'default') return inv;
  const factor = rope.factor!;
  if (type === 'linear') return inv.map((f) => f / factor);
  if (type !== 'llama3') throw new Error(`reference: rope type ${type}`);
  const low = rope.low_freq_factor!;
  const high = rope.high_freq_factor!;
  const old = rope.original_max_position_embeddings!;
  const lowWavelen = old / low;
  const highWavelen = old / high;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f; // high frequency: kept
    if (wavelen > lowWavelen) return f / factor; // low frequency: interpolated
    const smooth = (old / wavelen - low) / (high - low);
    return ((1 - smooth) * f) / factor + smooth * f;
  });
}

/** x·cos + rotate_half(x)·sin at position `pos`, rotate_half(x) = [−x₂, x₁]; returns a new [D] vector. */
export function refApplyRope(x: ArrayLike<number>, pos: number, invFreq: Float64Array): Float64Array {
  const half = invFreq.length;
  const y = new Float64Array(2 * half);
  for (let d = 0; d < half; d++) {
    const a = pos * invFreq[d];
    const cos = Math.cos(a);
    const sin = Math.sin(a);
    y[d] = x[d] * cos - x[d + half] * sin;
    y[d + half] = x[d + half] * cos + x[d] * sin;
  }
  return y;
}

/** The sliding window of layer `l`, or null for full causal attention. */
export function refSlidingWindow(c: LlamaRefConfig, l: number): number | null {
  const w = c.sliding_window ?? null;
  if (c.model_type === 'mistral') return w;
  if (c.model_type === 'qwen2') {
    const window = c.use_sliding_window ? w : null;
    if (c.layer_types) return c.layer_types[l] === 'sliding_attention' ? window : null;
    return window !== null && l >= (c.max_window_layers ?? 28) ? window : null;
  }
  return null;
}

/** Which projections carry a bias (Qwen2: q/k/v; Llama: attention_bias on q/k/v/o, mlp_bias; Mistral: none). */
export function refBiases(c: LlamaRefConfig): { qkv: boolean; o: boolean; mlp: boolean } {
  if (c.model_type === 'qwen2') return { qkv: true, o: false, mlp: false };
  if (c.model_type === 'mistral') return { qkv: false, o: false, mlp: false };
  return { qkv: !!c.attention_bias, o: !!c.attention_bias, mlp: !!c.mlp_bias };
}

// ---------------------------------------------------------------------------------------------------------------
// Forward

function weight(m: LlamaRefModel, key: string): Float64Array {
  const t = m.weights.get(key);
  if (!t) throw new Error(`reference: no weight ${key}`);
  return t;
}

/** x [n, in] → [n, out] through nn.Linear `name` (weight [out, in], optional bias) plus its LoRA, if any. */
function linear(m: LlamaRefModel, name: string, x: Float64Array, n: number, inF: number, outF: number, w: Float64Array, bias?: Float64Array): Float64Array {
  if (w.length !== outF * inF) throw new Error(`reference: ${name} has ${w.length} weights, expected ${outF}×${inF}`);
  const y = new Float64Array(n * outF);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < outF; o++) {
      let s = bias ? bias[o] : 0;
      for (let k = 0; k < inF; k++) s += x[i * inF + k] * w[o * inF + k];
      y[i * outF + o] = s;
    }
  }
  const f = m.lora.get(name);
  if (f) {
    if (f.A.length !== f.r * inF || f.B.length !== outF * f.r) throw new Error(`reference: LoRA of ${name} does not fit [${outF}, ${inF}]`);
    const xa = new Float64Array(f.r);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < f.r; j++) {
        let s = 0;
        for (let k = 0; k < inF; k++) s += x[i * inF + k] * f.A[j * inF + k];
        xa[j] = s;
      }
      for (let o = 0; o < outF; o++) {
        let s = 0;
        for (let j = 0; j < f.r; j++) s += xa[j] * f.B[o * f.r + j];
        y[i * outF + o] += f.scaling * s;
      }
    }
  }
  return y;
}

/** A projection of layer `p` by its module name, with the bias the config says it has (and the checkpoint must hold). */
function proj(m: LlamaRefModel, module: string, hasBias: boolean, x: Float64Array, n: number, inF: number, outF: number): Float64Array {
  const bias = m.weights.get(`${module}.bias`);
  if (hasBias && !bias) throw new Error(`reference: the config says ${module} has a bias, the weights have none`);
  if (!hasBias && bias) throw new Error(`reference: the config says ${module} has no bias, the weights have one`);
  return linear(m, module, x, n, inF, outF, weight(m, `${module}.weight`), bias);
}

export function refRmsNorm(x: Float64Array, n: number, H: number, w: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(n * H);
  for (let i = 0; i < n; i++) {
    let ms = 0;
    for (let k = 0; k < H; k++) ms += x[i * H + k] ** 2;
    const inv = 1 / Math.sqrt(ms / H + eps);
    for (let k = 0; k < H; k++) y[i * H + k] = x[i * H + k] * inv * w[k];
  }
  return y;
}

const silu = (v: number) => v / (1 + Math.exp(-v));

/**
 * Attention of one row: q [T, heads·D], k and v [T, kv·D] (RoPE already applied to q and k). Query i sees key j
 * iff j ≤ i, j < len (right padding) and, with a window W, j > i − W. A query that sees no key gets zeros.
 */
export function refAttention(q: Float64Array, k: Float64Array, v: Float64Array, T: number, len: number, heads: number, kvHeads: number, D: number, window: number | null): Float64Array {
  const out = new Float64Array(T * heads * D);
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(D);
  for (let h = 0; h < heads; h++) {
    const g = Math.floor(h / group);
    for (let i = 0; i < T; i++) {
      const keys: number[] = [];
      for (let j = 0; j <= i && j < len; j++) if (window === null || j > i - window) keys.push(j);
      if (keys.length === 0) continue;
      const scores = keys.map((j) => {
        let s = 0;
        for (let d = 0; d < D; d++) s += q[i * heads * D + h * D + d] * k[j * kvHeads * D + g * D + d];
        return s * scale;
      });
      const max = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - max));
      const z = e.reduce((a, b) => a + b, 0);
      for (let d = 0; d < D; d++) {
        let s = 0;
        keys.forEach((j, n) => (s += (e[n] / z) * v[j * kvHeads * D + g * D + d]));
        out[i * heads * D + h * D + d] = s;
      }
    }
  }
  return out;
}

/**
 * Final hidden states (after model.norm) of one right-padded row: `ids` has length T, the first `len` are real.
 * Returns [T, H]. Positions are 0..T−1 (transformers' default position_ids).
 */
export function refLlamaHidden(m: LlamaRefModel, ids: number[], len = ids.length): Float64Array {
  const c = m.config;
  const T = ids.length;
  const H = c.hidden_size;
  const I = c.intermediate_size;
  const heads = c.num_attention_heads;
  const kv = refKvHeads(c);
  const D = refHeadDim(c);
  const b = refBiases(c);
  const inv = refInvFreq(c);
  const embed = weight(m, 'model.embed_tokens.weight');
  let h = new Float64Array(T * H);
  for (let t = 0; t < T; t++) {
    if (!(ids[t] >= 0 && ids[t] < c.vocab_size)) throw new Error(`reference: token id ${ids[t]} outside the vocabulary`);
    for (let k = 0; k < H; k++) h[t * H + k] = embed[ids[t] * H + k];
  }
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const a = refRmsNorm(h, T, H, weight(m, `${p}input_layernorm.weight`), c.rms_norm_eps);
    const q = proj(m, `${p}self_attn.q_proj`, b.qkv, a, T, H, heads * D);
    const k = proj(m, `${p}self_attn.k_proj`, b.qkv, a, T, H, kv * D);
    const v = proj(m, `${p}self_attn.v_proj`, b.qkv, a, T, H, kv * D);
    for (let t = 0; t < T; t++) {
      for (let hd = 0; hd < heads; hd++) q.set(refApplyRope(q.subarray(t * heads * D + hd * D, t * heads * D + (hd + 1) * D), t, inv), t * heads * D + hd * D);
      for (let hd = 0; hd < kv; hd++) k.set(refApplyRope(k.subarray(t * kv * D + hd * D, t * kv * D + (hd + 1) * D), t, inv), t * kv * D + hd * D);
    }
    const att = refAttention(q, k, v, T, len, heads, kv, D, refSlidingWindow(c, l));
    const o = proj(m, `${p}self_attn.o_proj`, b.o, att, T, heads * D, H);
    h = h.map((x, i) => x + o[i]);
    const a2 = refRmsNorm(h, T, H, weight(m, `${p}post_attention_layernorm.weight`), c.rms_norm_eps);
    const gate = proj(m, `${p}mlp.gate_proj`, b.mlp, a2, T, H, I);
    const up = proj(m, `${p}mlp.up_proj`, b.mlp, a2, T, H, I);
    const act = gate.map((g, i) => silu(g) * up[i]);
    const down = proj(m, `${p}mlp.down_proj`, b.mlp, act, T, I, H);
    h = h.map((x, i) => x + down[i]);
  }
  return refRmsNorm(h, T, H, weight(m, 'model.norm.weight'), c.rms_norm_eps);
}

/** lm_head.weight, or the embedding when tie_word_embeddings. */
function lmHeadWeight(m: LlamaRefModel): Float64Array {
  if (m.config.tie_word_embeddings) {
    if (m.weights.has('lm_head.weight')) throw new Error('reference: tied embeddings, yet an lm_head.weight was given');
    return weight(m, 'model.embed_tokens.weight');
  }
  return weight(m, 'lm_head.weight');
}

/** Causal: logits [T, V] of one row (every position). */
export function refLlamaCausalLogits(m: LlamaRefModel, ids: number[], len = ids.length): Float64Array {
  const { hidden_size: H, vocab_size: V } = m.config;
  return linear(m, 'lm_head', refLlamaHidden(m, ids, len), ids.length, H, V, lmHeadWeight(m));
}

/** Seq-cls: logits [num_labels] from the last real token (index len − 1). */
export function refLlamaSeqClsLogits(m: LlamaRefModel, ids: number[], len = ids.length): Float64Array {
  const H = m.config.hidden_size;
  const h = refLlamaHidden(m, ids, len).subarray((len - 1) * H, len * H);
  return linear(m, 'score', h, 1, H, m.num_labels, weight(m, 'score.weight'));
}

export function logSoftmaxAt(row: ArrayLike<number>, k: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  let z = 0;
  for (let i = 0; i < row.length; i++) z += Math.exp(row[i] - max);
  return row[k] - max - Math.log(z);
}

/** Causal: total NLL of predicting token t+1 from ≤ t over the (unpadded) rows, and how many were predicted. */
export function refLlamaCausalNll(m: LlamaRefModel, rows: number[][]): { nll: number; count: number } {
  const V = m.config.vocab_size;
  let nll = 0;
  let count = 0;
  for (const ids of rows) {
    const logits = refLlamaCausalLogits(m, ids);
    for (let t = 0; t + 1 < ids.length; t++) {
      nll -= logSoftmaxAt(logits.subarray(t * V, (t + 1) * V), ids[t + 1]);
      count++;
    }
  }
  return { nll, count };
}

/** Causal-LM loss: mean NLL over predicted tokens (padding is never predicted). */
export function refLlamaCausalLoss(m: LlamaRefModel, rows: number[][]): number {
  const { nll, count } = refLlamaCausalNll(m, rows);
  return nll / count;
}

/** Seq-cls loss: mean cross entropy over rows. */
export function refLlamaSeqClsLoss(m: LlamaRefModel, rows: number[][], labels: number[]): number {
  let nll = 0;
  rows.forEach((ids, i) => (nll -= logSoftmaxAt(refLlamaSeqClsLogits(m, ids), labels[i])));
  return nll / rows.length;
}

/** The loss of the model's task over unpadded rows (labels for seq-cls). */
export function refLlamaLoss(m: LlamaRefModel, rows: number[][], labels?: number[]): number {
  return m.task === 'seq-cls' ? refLlamaSeqClsLoss(m, rows, labels!) : refLlamaCausalLoss(m, rows);
}

// ---------------------------------------------------------------------------------------------------------------
// Merge

/** W + s·B·A for nn.Linear W [out, in], A [r, in], B [out, r], in float64. */
export function refMergeLinear(W: ArrayLike<number>, A: ArrayLike<number>, B: ArrayLike<number>, r: number, scaling: number): Float64Array {
  const inF = A.length / r;
  const outF = B.length / r;
  if (W.length !== outF * inF) throw new Error(`reference: merge of [${outF}, ${r}]·[${r}, ${inF}] into ${W.length} weights`);
  const out = Float64Array.from(W);
  for (let o = 0; o < outF; o++) {
    for (let i = 0; i < inF; i++) {
      let s = 0;
      for (let j = 0; j < r; j++) s += B[o * r + j] * A[j * inF + i];
      out[o * inF + i] += scaling * s;
    }
  }
  return out;
}

/** The model with every LoRA folded into its weight (a tied lm_head cannot be merged separately: refused). */
export function refMerged(m: LlamaRefModel): LlamaRefModel {
  const weights = new Map(m.weights);
  for (const [name, f] of m.lora) {
    if (name === 'lm_head' && m.config.tie_word_embeddings) throw new Error('reference: LoRA on a tied lm_head cannot be merged into lm_head.weight');
    weights.set(`${name}.weight`, refMergeLinear(weight(m, `${name}.weight`), f.A, f.B, f.r, f.scaling));
  }
  return { ...m, weights, lora: new Map() };
}
