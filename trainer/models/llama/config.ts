/**
 * config.json of the Llama family — model_type "llama", "qwen2", "mistral" — keys verbatim from transformers'
 * LlamaConfig / Qwen2Config / MistralConfig (read in transformers 4.5x and v5's rope_parameters form), defaults
 * theirs. As for GPT-2 (gpt2/config.ts), nothing is trusted: every field we use is type-checked (zod, messages
 * naming the JSON path), every dimension bounded, and the parameter count bounded, before any table is built.
 * Unknown keys are kept as they are.
 */
import { z } from 'zod';
import { LoraStudioError, preview } from '../../errors';
import { isPlainObject } from '../../io/json';
import { MAX_LABELS } from '../../task';
import { checkConfigFields, checkConfigLabels, checkParameterCount, configBoolean, configNumLabels, intIn } from '../hf_config';

export const LLAMA_MODEL_TYPES = ['llama', 'qwen2', 'mistral'] as const;
export type LlamaModelType = (typeof LLAMA_MODEL_TYPES)[number];

/** The class-name prefix transformers uses for each model_type (LlamaForCausalLM, Qwen2Model, MistralMLP, …). */
export const CLASS_PREFIX: Record<LlamaModelType, 'Llama' | 'Qwen2' | 'Mistral'> = { llama: 'Llama', qwen2: 'Qwen2', mistral: 'Mistral' };

export type RopeType = 'default' | 'linear' | 'llama3';
export const SUPPORTED_ROPE_TYPES: readonly RopeType[] = ['default', 'linear', 'llama3'];

export interface RopeScaling {
  rope_type?: string;
  /** the legacy spelling of rope_type */
  type?: string;
  rope_theta?: number;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
  [key: string]: unknown;
}

export interface LlamaConfig {
  model_type: LlamaModelType;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  /** null/absent means num_attention_heads (plain multi-head attention) */
  num_key_value_heads?: number | null;
  /** null/absent means hidden_size / num_attention_heads */
  head_dim?: number | null;
  hidden_act: string;
  max_position_embeddings: number;
  rms_norm_eps: number;
  /** transformers 4.x; v5 keeps it inside rope_parameters */
  rope_theta?: number;
  rope_scaling?: RopeScaling | null;
  /** transformers v5: rope_theta and the scaling fields in one object */
  rope_parameters?: RopeScaling | null;
  /** llama: bias on q/k/v/o_proj (qwen2 always has q/k/v biases and no o_proj bias; mistral none) */
  attention_bias?: boolean;
  /** llama: bias on gate/up/down_proj */
  mlp_bias?: boolean;
  tie_word_embeddings?: boolean;
  sliding_window?: number | null;
  use_sliding_window?: boolean;
  bos_token_id?: number | number[] | null;
  eos_token_id?: number | number[] | null;
  pad_token_id?: number | null;
  num_labels?: number;
  id2label?: Record<string, string>;
  label2id?: Record<string, number>;
  architectures?: string[] | null;
  torch_dtype?: string | null;
  dtype?: string | null;
  [key: string]: unknown;
}

type Defaults = Omit<LlamaConfig, 'model_type'>;

/** Each config class's own defaults (transformers' __init__ signatures). */
export const DEFAULTS: Record<LlamaModelType, Defaults> = {
  llama: {
    vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32,
    hidden_act: 'silu', max_position_embeddings: 2048, rms_norm_eps: 1e-6, tie_word_embeddings: false,
    attention_bias: false, mlp_bias: false, bos_token_id: 1, eos_token_id: 2,
  },
  qwen2: {
    vocab_size: 151936, hidden_size: 4096, intermediate_size: 22016, num_hidden_layers: 32, num_attention_heads: 32,
    num_key_value_heads: 32, hidden_act: 'silu', max_position_embeddings: 32768, rms_norm_eps: 1e-6,
    tie_word_embeddings: false, use_sliding_window: false, sliding_window: 4096,
  },
  mistral: {
    vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32,
    num_key_value_heads: 8, hidden_act: 'silu', max_position_embeddings: 4096 * 32, rms_norm_eps: 1e-6,
    tie_word_embeddings: false, sliding_window: 4096, bos_token_id: 1, eos_token_id: 2,
  },
};

/**
 * Bounds far above any model of the family (Llama 3.1 405B: hidden 16384, intermediate 53248, 126 layers,
 * vocab 128256), so a hostile config cannot make us build a huge module table. Only inspect reads these models
 * today, and it allocates nothing per parameter; the parameter bound still keeps every count an exact integer.
 */
export const CONFIG_LIMITS = {
  vocab_size: 1_000_000,
  max_position_embeddings: 16_777_216,
  hidden_size: 65_536,
  intermediate_size: 262_144,
  num_hidden_layers: 1_024,
  head_dim: 65_536,
  parameters: 2e12,
  token_id: 2_147_483_647,
} as const;

const positive = (what = 'a number > 0') => z.number({ error: `must be ${what}` }).gt(0, { error: `must be ${what}` }).finite({ error: `must be ${what}` });
const boolean = configBoolean;
const tokenIdError = 'must be an integer token id, a list of them, or null';
const tokenId = z.number({ error: tokenIdError }).int({ error: tokenIdError }).min(0, { error: tokenIdError }).max(CONFIG_LIMITS.token_id, { error: tokenIdError });
const tokenIds = z.union([tokenId, z.array(tokenId, { error: tokenIdError })], { error: tokenIdError }).nullable().optional();
const dtype = z.string({ error: 'must be a dtype name such as "bfloat16", or null' }).nullable().optional();

/** rope_scaling (4.x) and rope_parameters (v5): the same fields; v5 adds rope_theta. Other keys are kept. */
const ROPE = z.object({
  rope_type: z.string({ error: 'must be a string' }).optional(),
  type: z.string({ error: 'must be a string' }).optional(),
  rope_theta: positive().optional(),
  factor: positive().optional(),
  low_freq_factor: positive().optional(),
  high_freq_factor: positive().optional(),
  original_max_position_embeddings: intIn(1, CONFIG_LIMITS.max_position_embeddings).optional(),
}, { error: 'must be an object ({"rope_type": …, …}) or null' }).nullable().optional();

const FIELDS = z.object({
  vocab_size: intIn(1, CONFIG_LIMITS.vocab_size),
  hidden_size: intIn(1, CONFIG_LIMITS.hidden_size),
  intermediate_size: intIn(1, CONFIG_LIMITS.intermediate_size),
  num_hidden_layers: intIn(1, CONFIG_LIMITS.num_hidden_layers),
  num_attention_heads: intIn(1, CONFIG_LIMITS.hidden_size),
  num_key_value_heads: intIn(1, CONFIG_LIMITS.hidden_size, true).nullable().optional(),
  head_dim: intIn(1, CONFIG_LIMITS.head_dim, true).nullable().optional(),
  hidden_act: z.literal('silu', { error: 'must be "silu" (the only activation of this family we read)' }),
  max_position_embeddings: intIn(1, CONFIG_LIMITS.max_position_embeddings),
  rms_norm_eps: z.number({ error: 'must be a number > 0 and < 1' }).gt(0, { error: 'must be a number > 0 and < 1' }).lt(1, { error: 'must be a number > 0 and < 1' }),
  rope_theta: positive().optional(),
  rope_scaling: ROPE,
  rope_parameters: ROPE,
  attention_bias: boolean.optional(),
  mlp_bias: boolean.optional(),
  attention_dropout: z.number({ error: 'must be a number in [0, 1)' }).min(0, { error: 'must be a number in [0, 1)' }).lt(1, { error: 'must be a number in [0, 1)' }).optional(),
  tie_word_embeddings: boolean.optional(),
  use_cache: boolean.optional(),
  sliding_window: intIn(1, CONFIG_LIMITS.max_position_embeddings, true).nullable().optional(),
  use_sliding_window: boolean.optional(),
  max_window_layers: intIn(0, CONFIG_LIMITS.num_hidden_layers).optional(),
  bos_token_id: tokenIds,
  eos_token_id: tokenIds,
  pad_token_id: intIn(0, CONFIG_LIMITS.token_id, true).nullable().optional(),
  num_labels: intIn(1, MAX_LABELS).optional(),
  architectures: z.array(z.string({ error: 'must be a list of class names' }), { error: 'must be a list of class names, or null' }).nullable().optional(),
  torch_dtype: dtype,
  dtype,
});

/** Query/key width per head: head_dim, or hidden_size / num_attention_heads when unset (transformers' getattr). */
export const headDim = (c: LlamaConfig) => c.head_dim ?? Math.floor(c.hidden_size / c.num_attention_heads);
export const kvHeads = (c: LlamaConfig) => c.num_key_value_heads ?? c.num_attention_heads;
export const tiedEmbeddings = (c: LlamaConfig) => c.tie_word_embeddings ?? false;

/** Which projections carry a bias: per modeling_llama.py (attention_bias, mlp_bias), modeling_qwen2.py, modeling_mistral.py. */
export function biases(c: LlamaConfig): { qkv: boolean; o: boolean; mlp: boolean } {
  if (c.model_type === 'qwen2') return { qkv: true, o: false, mlp: false };
  if (c.model_type === 'mistral') return { qkv: false, o: false, mlp: false };
  const attn = c.attention_bias ?? false;
  return { qkv: attn, o: attn, mlp: c.mlp_bias ?? false };
}

export function parseConfig(raw: unknown, file: string): LlamaConfig {
  if (!isPlainObject(raw)) throw new LoraStudioError(`must be a JSON object, got ${preview(raw)}`, file);
  const type = raw.model_type;
  if (typeof type !== 'string' || !(LLAMA_MODEL_TYPES as readonly string[]).includes(type)) {
    throw new LoraStudioError(`unknown model_type ${preview(type)}; supported here: ${LLAMA_MODEL_TYPES.map((t) => JSON.stringify(t)).join(', ')}`, file, 'model_type');
  }
  // Validate the merged view, but build the result from the user's own object (zod's output drops keys such as
  // "__proto__" that are ordinary keys in a JSON file).
  const c = { ...DEFAULTS[type as LlamaModelType], ...raw } as LlamaConfig;
  checkConfigFields(FIELDS, c, file);
  if (c.num_attention_heads > c.hidden_size) {
    throw new LoraStudioError(`(${c.num_attention_heads}) must not exceed hidden_size (${c.hidden_size})`, file, 'num_attention_heads');
  }
  if ((c.head_dim === undefined || c.head_dim === null) && c.hidden_size % c.num_attention_heads !== 0) {
    throw new LoraStudioError(`hidden_size (${c.hidden_size}) must be divisible by num_attention_heads (${c.num_attention_heads}) when head_dim is not set`, file, 'num_attention_heads');
  }
  const kv = kvHeads(c);
  if (kv > c.num_attention_heads || c.num_attention_heads % kv !== 0) {
    throw new LoraStudioError(`(${kv}) must divide num_attention_heads (${c.num_attention_heads})`, file, 'num_key_value_heads');
  }
  if (c.rope_scaling) checkRope(c.rope_scaling, file, 'rope_scaling');
  if (c.rope_parameters) checkRope(c.rope_parameters, file, 'rope_parameters');
  checkConfigLabels(c, file);
  checkModelSize(c, configNumLabels(c), file);
  return c;
}

/** RoPE types default/linear/llama3 and the fields each needs (transformers' rope_config_validation). */
function checkRope(rope: RopeScaling, file: string, key: string): void {
  const type = rope.rope_type ?? rope.type ?? 'default';
  const at = rope.rope_type !== undefined ? `${key}.rope_type` : rope.type !== undefined ? `${key}.type` : key;
  if (!(SUPPORTED_ROPE_TYPES as readonly string[]).includes(type)) {
    throw new LoraStudioError(`RoPE type ${preview(type)} is not supported; supported: ${SUPPORTED_ROPE_TYPES.map((t) => JSON.stringify(t)).join(', ')}`, file, at);
  }
  const need = (field: keyof RopeScaling) => {
    if (rope[field] === undefined) throw new LoraStudioError(`is required for rope_type ${JSON.stringify(type)}`, file, `${key}.${String(field)}`);
  };
  if (type === 'linear' || type === 'llama3') need('factor');
  if (type === 'llama3') {
    need('low_freq_factor');
    need('high_freq_factor');
    need('original_max_position_embeddings');
    if (rope.high_freq_factor! <= rope.low_freq_factor!) {
      throw new LoraStudioError(`(${rope.high_freq_factor}) must be greater than low_freq_factor (${rope.low_freq_factor})`, file, `${key}.high_freq_factor`);
    }
  }
}

/** How many weights a model with this config (and head) holds; refuses one beyond CONFIG_LIMITS.parameters. */
export function checkModelSize(c: LlamaConfig, numLabels: number, file: string): number {
  const H = c.hidden_size;
  const I = c.intermediate_size;
  const q = c.num_attention_heads * headDim(c);
  const kv = kvHeads(c) * headDim(c);
  const parts: Array<[string, number]> = [
    ['vocab_size', c.vocab_size * H * (tiedEmbeddings(c) ? 1 : 2)],
    ['num_hidden_layers', c.num_hidden_layers * (2 * H * q + 2 * H * kv + q + 2 * kv + H + 3 * H * I + 2 * I + H + 2 * H)],
    ['num_labels', numLabels * H],
  ];
  return checkParameterCount(parts, H, CONFIG_LIMITS.parameters, file, `hidden_size ${H}, num_hidden_layers ${c.num_hidden_layers}, vocab_size ${c.vocab_size}`);
}

export { configNumLabels };

/** The first eos token id (Llama 3 lists several), or undefined. */
export function firstEos(c: LlamaConfig): number | undefined {
  const e = c.eos_token_id;
  return Array.isArray(e) ? e[0] : e ?? undefined;
}

/** The RoPE fields the model uses, resolved from v5's rope_parameters or 4.x's rope_scaling + rope_theta. */
export interface ResolvedRope {
  type: RopeType;
  theta: number;
  /** linear and llama3 */
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

/** rope_parameters (v5) first, else rope_scaling (4.x); rope_theta from rope_parameters, else the top level, else 10000. */
export function resolveRope(c: LlamaConfig): ResolvedRope {
  const rope = c.rope_parameters ?? c.rope_scaling ?? {};
  const type = (rope.rope_type ?? rope.type ?? 'default') as RopeType;
  const theta = c.rope_parameters?.rope_theta ?? c.rope_theta ?? 10000;
  return {
    type, theta, factor: rope.factor, low_freq_factor: rope.low_freq_factor, high_freq_factor: rope.high_freq_factor,
    original_max_position_embeddings: rope.original_max_position_embeddings,
  };
}

/**
 * The sliding window of layer `layer`, or null for full causal attention (key j is seen by query i iff
 * j > i − window, masking_utils' sliding_window_overlay). Mistral: every layer when sliding_window is set. Qwen2:
 * only with use_sliding_window (Qwen2Config drops the window otherwise), on the layers layer_types marks
 * "sliding_attention", else on layers ≥ max_window_layers (default 28). Llama: none.
 */
export function slidingWindow(c: LlamaConfig, layer: number): number | null {
  const w = c.sliding_window ?? null;
  if (w === null || c.model_type === 'llama') return null;
  if (c.model_type === 'mistral') return w;
  if (!c.use_sliding_window) return null;
  if (Array.isArray(c.layer_types)) return c.layer_types[layer] === 'sliding_attention' ? w : null;
  const maxWindowLayers = typeof c.max_window_layers === 'number' ? c.max_window_layers : 28;
  return layer >= maxWindowLayers ? w : null;
}
