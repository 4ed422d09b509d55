/**
 * An adapter held in host memory in PEFT's layout (A is [r, in], B is [out, r]), and its adapter_config.json.
 * The module table and the resolved targets are protocol types (../protocol.ts).
 */
import type { HostTensor } from '../io/safetensors';

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

