/**
 * An independent float64 GPT-2 + LoRA, written from the math with plain loops (no tfjs), for checking the
 * tfjs model: unmerged LoRA (x·W + b + x·Aᵀ·Bᵀ·s, PEFT layout A [r, in], B [out, r]), both heads,
 * the padding mask, last-real-token pooling, and both losses. Slow on purpose; tiny models only.
 */
import type { HostTensor } from '../../trainer/io/safetensors';

export interface RefConfig {
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  n_inner: number | null;
  activation_function: string;
  layer_norm_epsilon: number;
  scale_attn_weights: boolean;
}

export interface RefLora {
  /** [r, in] */
  A: Float64Array;
  /** [out, r] */
  B: Float64Array;
  r: number;
  scaling: number;
}

export interface RefModel {
  config: RefConfig;
  task: 'causal-lm' | 'seq-cls';
  num_labels: number;
  /** HF keys and layouts: Conv1D [in, out], score [num_labels, C], wte [V, C] */
  weights: Map<string, Float64Array>;
  /** module name → LoRA factors */
  lora: Map<string, RefLora>;
}

export function refModel(
  config: RefConfig,
  task: 'causal-lm' | 'seq-cls',
  numLabels: number,
  weights: Map<string, HostTensor>,
  lora: Map<string, { A: HostTensor; B: HostTensor; scaling: number }>,
): RefModel {
  const w = new Map<string, Float64Array>();
  for (const [k, t] of weights) w.set(k, Float64Array.from(t.data));
  const l = new Map<string, RefLora>();
  for (const [k, f] of lora) l.set(k, { A: Float64Array.from(f.A.data), B: Float64Array.from(f.B.data), r: f.A.shape[0], scaling: f.scaling });
  return { config, task, num_labels: numLabels, weights: w, lora: l };
}

/** x [n, in] → [n, out] for a Conv1D (w [in, out]) or Linear (w [out, in]) module, plus bias and LoRA. */
function linear(m: RefModel, name: string, x: Float64Array, n: number, inF: number, outF: number, layout: 'conv1d' | 'linear', w: Float64Array, bias?: Float64Array): Float64Array {
  const y = new Float64Array(n * outF);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < outF; o++) {
      let s = bias ? bias[o] : 0;
      for (let k = 0; k < inF; k++) s += x[i * inF + k] * (layout === 'conv1d' ? w[k * outF + o] : w[o * inF + k]);
      y[i * outF + o] = s;
    }
  }
  const f = m.lora.get(name);
  if (f) {
    for (let i = 0; i < n; i++) {
      const xa = new Float64Array(f.r);
      for (let j = 0; j < f.r; j++) {
        let s = 0;
        for (let k = 0; k < inF; k++) s += x[i * inF + k] * f.A[j * inF + k];
        xa[j] = s;
      }
      for (let o = 0; o < outF; o++) {
        let s = 0;
        for (let j = 0; j < f.r; j++) s += xa[j] * f.B[o * f.r + j];
        y[i * outF + o] += s * f.scaling;
      }
    }
  }
  return y;
}

function layerNorm(x: Float64Array, n: number, C: number, g: Float64Array, b: Float64Array, eps: number): Float64Array {
  const y = new Float64Array(n * C);
  for (let i = 0; i < n; i++) {
    let mean = 0;
    for (let k = 0; k < C; k++) mean += x[i * C + k];
    mean /= C;
    let v = 0;
    for (let k = 0; k < C; k++) v += (x[i * C + k] - mean) ** 2;
    v /= C;
    const inv = 1 / Math.sqrt(v + eps);
    for (let k = 0; k < C; k++) y[i * C + k] = (x[i * C + k] - mean) * inv * g[k] + b[k];
  }
  return y;
}

/** erf by its Maclaurin series (accurate to ~1e-9 for |x| < 4); ±1 beyond (|erf − ±1| < 2e-8 there). */
export function erf(x: number): number {
  if (Math.abs(x) >= 4) return Math.sign(x);
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

function act(name: string, v: number): number {
  if (name === 'gelu_new' || name === 'gelu_pytorch_tanh') return 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  if (name === 'gelu') return 0.5 * v * (1 + erf(v / Math.SQRT2));
  if (name === 'relu') return Math.max(0, v);
  throw new Error(`activation ${name}`);
}

/**
 * Final hidden states (after ln_f) of one right-padded row: `ids` has length T, the first `len` are real.
 * Returns [T, C]. Real positions never see padding (causal + right padding); padded queries see real keys only.
 */
export function refHidden(m: RefModel, ids: number[], len: number): Float64Array {
  const c = m.config;
  const T = ids.length;
  const C = c.n_embd;
  const H = c.n_head;
  const D = C / H;
  const I = c.n_inner ?? 4 * C;
  const W = (k: string) => {
    const t = m.weights.get(k);
    if (!t) throw new Error(`reference: no weight ${k}`);
    return t;
  };
  const wte = W('transformer.wte.weight');
  const wpe = W('transformer.wpe.weight');
  let h = new Float64Array(T * C);
  for (let t = 0; t < T; t++) for (let k = 0; k < C; k++) h[t * C + k] = wte[ids[t] * C + k] + wpe[t * C + k];
  const eps = c.layer_norm_epsilon;
  const scale = c.scale_attn_weights ? 1 / Math.sqrt(D) : 1;
  for (let l = 0; l < c.n_layer; l++) {
    const p = `transformer.h.${l}.`;
    const a = layerNorm(h, T, C, W(`${p}ln_1.weight`), W(`${p}ln_1.bias`), eps);
    const qkv = linear(m, `${p}attn.c_attn`, a, T, C, 3 * C, 'conv1d', W(`${p}attn.c_attn.weight`), W(`${p}attn.c_attn.bias`));
    const merged = new Float64Array(T * C);
    for (let hd = 0; hd < H; hd++) {
      for (let i = 0; i < T; i++) {
        const keys: number[] = [];
        for (let j = 0; j <= i; j++) if (j < len) keys.push(j);
        const scores = keys.map((j) => {
          let s = 0;
          for (let d = 0; d < D; d++) s += qkv[i * 3 * C + hd * D + d] * qkv[j * 3 * C + C + hd * D + d];
          return s * scale;
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const z = e.reduce((x, y) => x + y, 0);
        for (let d = 0; d < D; d++) {
          let s = 0;
          keys.forEach((j, n) => (s += (e[n] / z) * qkv[j * 3 * C + 2 * C + hd * D + d]));
          merged[i * C + hd * D + d] = s;
        }
      }
    }
    const o = linear(m, `${p}attn.c_proj`, merged, T, C, C, 'conv1d', W(`${p}attn.c_proj.weight`), W(`${p}attn.c_proj.bias`));
    h = h.map((v, i) => v + o[i]);
    const b = layerNorm(h, T, C, W(`${p}ln_2.weight`), W(`${p}ln_2.bias`), eps);
    const f = linear(m, `${p}mlp.c_fc`, b, T, C, I, 'conv1d', W(`${p}mlp.c_fc.weight`), W(`${p}mlp.c_fc.bias`)).map((v) => act(c.activation_function, v));
    const o2 = linear(m, `${p}mlp.c_proj`, f, T, I, C, 'conv1d', W(`${p}mlp.c_proj.weight`), W(`${p}mlp.c_proj.bias`));
    h = h.map((v, i) => v + o2[i]);
  }
  return layerNorm(h, T, C, W('transformer.ln_f.weight'), W('transformer.ln_f.bias'), eps);
}

/** Causal: logits [T, V] of one row (every position). */
export function refCausalLogits(m: RefModel, ids: number[], len = ids.length): Float64Array {
  const C = m.config.n_embd;
  const V = m.config.vocab_size;
  const h = refHidden(m, ids, len);
  return linear(m, 'lm_head', h, ids.length, C, V, 'linear', m.weights.get('transformer.wte.weight')!);
}

/** Seq-cls: logits [num_labels] from the last real token (index len − 1). */
export function refSeqClsLogits(m: RefModel, ids: number[], len = ids.length): Float64Array {
  const C = m.config.n_embd;
  const h = refHidden(m, ids, len).subarray((len - 1) * C, len * C);
  return linear(m, 'score', h, 1, C, m.num_labels, 'linear', m.weights.get('score.weight')!);
}

function logSoftmaxAt(row: ArrayLike<number>, k: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  let z = 0;
  for (let i = 0; i < row.length; i++) z += Math.exp(row[i] - max);
  return row[k] - max - Math.log(z);
}

/** Causal: total NLL of predicting token t+1 from ≤ t over the rows, and how many tokens were predicted. */
export function refCausalNll(m: RefModel, rows: number[][]): { nll: number; count: number } {
  const V = m.config.vocab_size;
  let nll = 0;
  let count = 0;
  for (const ids of rows) {
    const logits = refCausalLogits(m, ids);
    for (let t = 0; t + 1 < ids.length; t++) {
      nll -= logSoftmaxAt(logits.subarray(t * V, (t + 1) * V), ids[t + 1]);
      count++;
    }
  }
  return { nll, count };
}

/** Causal-LM loss: mean over predicted tokens. */
export function refCausalLoss(m: RefModel, rows: number[][]): number {
  const { nll, count } = refCausalNll(m, rows);
  return nll / count;
}

/** Seq-cls loss: mean cross entropy over rows. */
export function refSeqClsLoss(m: RefModel, rows: number[][], labels: number[]): number {
  let nll = 0;
  rows.forEach((ids, i) => (nll -= logSoftmaxAt(refSeqClsLogits(m, ids), labels[i])));
  return nll / rows.length;
}
