/**
 * GPT-2's config.json, keys verbatim from transformers' GPT2Config. Defaults are GPT2Config's own.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoraStudioError } from '../../errors';

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
  architectures?: string[];
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

/** Feed-forward width: n_inner, or 4 * n_embd when unset. */
export const innerDim = (c: GPT2Config) => c.n_inner ?? 4 * c.n_embd;

/** Reads and validates `<dir>/config.json`. Errors name the file and the field. */
export function readConfig(dir: string): GPT2Config {
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(file)) throw new LoraStudioError('missing: a Hugging Face model folder needs config.json', file);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new LoraStudioError(`not valid JSON (${(e as Error).message})`, file);
  }
  return parseConfig(raw, file);
}

export function parseConfig(raw: Record<string, unknown>, file: string): GPT2Config {
  if (!raw || typeof raw !== 'object') throw new LoraStudioError('must be a JSON object', file);
  if (raw.model_type !== 'gpt2') {
    throw new LoraStudioError(`unknown model_type ${JSON.stringify(raw.model_type)}; supported: "gpt2"`, file, 'model_type');
  }
  const c = { ...GPT2_DEFAULTS, ...raw } as GPT2Config;
  for (const k of ['vocab_size', 'n_positions', 'n_embd', 'n_layer', 'n_head'] as const) {
    if (!Number.isInteger(c[k]) || (c[k] as number) <= 0) throw new LoraStudioError(`must be a positive integer, got ${JSON.stringify(c[k])}`, file, k);
  }
  if (c.n_inner !== null && (!Number.isInteger(c.n_inner) || c.n_inner <= 0)) throw new LoraStudioError('must be null or a positive integer', file, 'n_inner');
  if (c.n_embd % c.n_head !== 0) throw new LoraStudioError(`n_embd (${c.n_embd}) must be divisible by n_head (${c.n_head})`, file, 'n_head');
  if (!SUPPORTED_ACTIVATIONS.includes(c.activation_function)) {
    throw new LoraStudioError(`unsupported ${JSON.stringify(c.activation_function)}; supported: ${SUPPORTED_ACTIVATIONS.join(', ')}`, file, 'activation_function');
  }
  for (const k of ['resid_pdrop', 'embd_pdrop', 'attn_pdrop'] as const) {
    if (typeof c[k] !== 'number' || c[k] < 0 || c[k] >= 1) throw new LoraStudioError('must be a number in [0, 1)', file, k);
  }
  return c;
}

/** The seq-cls head size: num_labels, else the size of id2label, else 2 (transformers' default). */
export function configNumLabels(c: GPT2Config): number {
  if (typeof c.num_labels === 'number') return c.num_labels;
  if (c.id2label) return Object.keys(c.id2label).length;
  return 2;
}
