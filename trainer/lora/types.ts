/**
 * Shared shapes of the LoRA side: the module table (what `named_modules()` prints), the resolved targets,
 * and an adapter held in host memory in PEFT's layout (A is [r, in], B is [out, r]).
 */
import type { HostTensor } from '../io/safetensors';

/** The PyTorch class names that `named_modules()` reports for GPT-2. */
export type ModuleType =
  | 'GPT2LMHeadModel' | 'GPT2ForSequenceClassification' | 'GPT2Model' | 'ModuleList' | 'GPT2Block'
  | 'GPT2Attention' | 'GPT2MLP' | 'Conv1D' | 'Linear' | 'Embedding' | 'LayerNorm' | 'Dropout' | 'NewGELUActivation'
  | 'GELUActivation' | 'GELUTanh' | 'ReLU';

export interface ModuleInfo {
  /** exactly as PyTorch's model.named_modules() prints it; the root is '' */
  name: string;
  type: ModuleType;
  /** Linear/Conv1D: in/out features; Embedding: num_embeddings/embedding_dim; LayerNorm: normalized dim */
  in_features?: number;
  out_features?: number;
  /** parameters owned directly by this module (not its children); tied weights counted once, at their owner */
  params: number;
  /** the HF weight keys this module owns, e.g. ['transformer.h.0.attn.c_attn.weight', '…bias'] */
  weight_keys: string[];
  /** true for the output head (lm_head / score) */
  is_head?: boolean;
  /** lm_head shares wte's weight */
  tied_to?: string;
}

/** One module that receives LoRA, with its own rank and scaling after rank_pattern/alpha_pattern/use_rslora. */
export interface LoraTarget {
  name: string;
  type: 'Conv1D' | 'Linear';
  in_features: number;
  out_features: number;
  r: number;
  lora_alpha: number;
  /** lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora */
  scaling: number;
}

/** adapter_config.json as PEFT writes it; unknown keys from newer PEFT versions are kept in `extra`. */
export interface AdapterConfigJson {
  peft_type: 'LORA';
  task_type: 'CAUSAL_LM' | 'SEQ_CLS' | null;
  base_model_name_or_path: string | null;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  target_modules: string | string[] | null;
  exclude_modules?: string | string[] | null;
  modules_to_save: string[] | null;
  bias: 'none' | 'all' | 'lora_only';
  use_rslora: boolean;
  fan_in_fan_out: boolean;
  init_lora_weights: boolean | 'gaussian';
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  inference_mode: boolean;
  [key: string]: unknown;
}

export interface AdapterWeights {
  config: AdapterConfigJson;
  /** module name → PEFT-layout factors: A [r, in], B [out, r] */
  lora: Map<string, { A: HostTensor; B: HostTensor }>;
  /**
   * Other tensors by module-relative HF key (without `base_model.model.`): modules_to_save weights such as
   * `score.weight`, and biases trained with bias='all' / 'lora_only', e.g. `transformer.h.0.attn.c_attn.bias`.
   */
  extra: Map<string, HostTensor>;
  /**
   * The safetensors `__metadata__` beside `format: "pt"`: the seq-cls head's `id2label` / `label2id` as JSON
   * strings. PEFT and transformers ignore metadata keys they do not know.
   */
  metadata?: Record<string, string>;
}

