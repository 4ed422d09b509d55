/**
 * GPT-2's config.json, keys verbatim from transformers' GPT2Config. Defaults are GPT2Config's own.
 * The reader trusts nothing: every field we use is type-checked (zod, messages naming the JSON path), every
 * dimension is bounded, and so is the parameter count the config implies, before any table or tensor is made.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { LoraStudioError, preview } from '../../errors';
import { isPlainObject, readJsonFile } from '../../io/json';
import { MAX_LABELS } from '../../task';
import { checkConfigFields, checkConfigLabels, checkParameterCount, configBoolean, configNumLabels, intIn } from '../hf_config';

export interface GPT2Config {
  model_type: 'gpt2';
  vocab_size: number; // 50257
  n_positions: number; // 1024: longest sequence
  n_embd: number; // 768: hidden size
  n_layer: number; // 12 blocks
  n_head: number; // 12 attention heads
  n_inner: number | null; // null means 4 * n_embd
  activation_function: string; // "gelu_new" (tanh approximation)
  resid_pdrop: number; // 0.1
  embd_pdrop: number; // 0.1
  attn_pdrop: number; // 0.1
  layer_norm_epsilon: number; // 1e-5
  scale_attn_weights: boolean; // true: divide scores by sqrt(head_dim)
  bos_token_id: number; // 50256
  eos_token_id: number; // 50256
  pad_token_id?: number | null;
  num_labels?: number; // seq-cls head size, also derivable from id2label
  id2label?: Record<string, string>;
  label2id?: Record<string, number>;
  architectures?: string[] | null;
  [key: string]: unknown;
}

export const GPT2_DEFAULTS: Omit<GPT2Config, 'model_type'> = {
  vocab_size: 50257,
  n_positions: 1024,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  n_inner: null,
  activation_function: 'gelu_new',
  resid_pdrop: 0.1,
  embd_pdrop: 0.1,
  attn_pdrop: 0.1,
  layer_norm_epsilon: 1e-5,
  scale_attn_weights: true,
  bos_token_id: 50256,
  eos_token_id: 50256,
};

export const SUPPORTED_ACTIVATIONS = ['gelu_new', 'gelu_pytorch_tanh', 'gelu', 'relu'];

/**
 * Bounds far above any GPT-2-class model (GPT-2 XL: vocab 50257, n_positions 1024, n_embd 1600, n_layer 48),
 * so that a hostile config cannot make us build a huge module table or weight map.
 */
export const CONFIG_LIMITS = {
  vocab_size: 1_000_000,
  n_positions: 1_048_576,
  n_embd: 65_536,
  n_layer: 1_024,
  n_inner: 262_144,
  /** every weight the config implies, head included (GPT-2 XL has 1.6e9) */
  parameters: 20e9,
  /** token ids are int32 in the model's tensors */
  token_id: 2_147_483_647,
} as const;

const tokenId = intIn(0, CONFIG_LIMITS.token_id);
const dropout = z.number({ error: 'must be a number in [0, 1)' }).min(0, { error: 'must be a number in [0, 1)' }).lt(1, { error: 'must be a number in [0, 1)' });
const boolean = configBoolean;

/** The fields we read; other keys are kept as they are (newer transformers versions add many). */
const FIELDS = z.object({
  vocab_size: intIn(1, CONFIG_LIMITS.vocab_size),
  n_positions: intIn(1, CONFIG_LIMITS.n_positions),
  n_embd: intIn(1, CONFIG_LIMITS.n_embd),
  n_layer: intIn(1, CONFIG_LIMITS.n_layer),
  n_head: intIn(1, CONFIG_LIMITS.n_embd),
  n_inner: intIn(1, CONFIG_LIMITS.n_inner, true).nullable(),
  activation_function: z.enum(SUPPORTED_ACTIVATIONS as [string, ...string[]], { error: `unsupported; supported: ${SUPPORTED_ACTIVATIONS.join(', ')}` }),
  resid_pdrop: dropout,
  embd_pdrop: dropout,
  attn_pdrop: dropout,
  summary_first_dropout: dropout.optional(),
  layer_norm_epsilon: z.number({ error: 'must be a number > 0 and < 1' }).gt(0, { error: 'must be a number > 0 and < 1' }).lt(1, { error: 'must be a number > 0 and < 1' }),
  initializer_range: z.number({ error: 'must be a number from 0 to 1' }).min(0, { error: 'must be a number from 0 to 1' }).max(1, { error: 'must be a number from 0 to 1' }).optional(),
  scale_attn_weights: boolean,
  scale_attn_by_inverse_layer_idx: boolean.optional(),
  reorder_and_upcast_attn: boolean.optional(),
  use_cache: boolean.optional(),
  tie_word_embeddings: boolean.optional(),
  bos_token_id: tokenId,
  eos_token_id: tokenId,
  pad_token_id: intIn(0, CONFIG_LIMITS.token_id, true).nullable().optional(),
  num_labels: intIn(1, MAX_LABELS).optional(),
  architectures: z.array(z.string({ error: 'must be a list of class names' }), { error: 'must be a list of class names, or null' }).nullable().optional(),
});

/** Feed-forward width: n_inner, or 4 * n_embd when unset. */
export const innerDim = (c: GPT2Config) => c.n_inner ?? 4 * c.n_embd;

/** Reads and validates `<dir>/config.json`. Errors name the file and the field. */
export function readConfig(dir: string): GPT2Config {
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(file)) throw new LoraStudioError('missing: a Hugging Face model folder needs config.json', file);
  return parseConfig(readJsonFile(file), file);
}

export function parseConfig(raw: unknown, file: string): GPT2Config {
  if (!isPlainObject(raw)) throw new LoraStudioError(`must be a JSON object, got ${preview(raw)}`, file);
  if (raw.model_type !== 'gpt2') {
    throw new LoraStudioError(`unknown model_type ${preview(raw.model_type)}; supported: "gpt2"`, file, 'model_type');
  }
  // Validate the merged view, but build the result from the user's own object: zod's output drops keys such
  // as "__proto__" that are ordinary keys in a JSON file.
  const c = { ...GPT2_DEFAULTS, ...raw } as GPT2Config;
  checkConfigFields(FIELDS, c, file);
  if (c.n_head > c.n_embd || c.n_embd % c.n_head !== 0) throw new LoraStudioError(`n_embd (${c.n_embd}) must be divisible by n_head (${c.n_head})`, file, 'n_head');
  checkConfigLabels(c, file);
  checkModelSize(c, configNumLabels(c), file);
  return c;
}

/** How many weights a GPT-2 with this config (and head) holds; refuses a config beyond CONFIG_LIMITS.parameters. */
export function checkModelSize(c: GPT2Config, numLabels: number, file: string): number {
  const C = c.n_embd;
  const I = innerDim(c);
  const parts: Array<[string, number]> = [
    ['vocab_size', c.vocab_size * C],
    ['n_positions', c.n_positions * C],
    ['n_layer', c.n_layer * (4 * C + 4 * C * C + 4 * C + 2 * C * I + I + C)],
    ['num_labels', numLabels * C],
  ];
  return checkParameterCount(parts, 2 * C, CONFIG_LIMITS.parameters, file,
    `n_embd ${C}, n_layer ${c.n_layer}, vocab_size ${c.vocab_size}, n_positions ${c.n_positions}, num_labels ${numLabels}`);
}

export { configNumLabels };
