/**
 * LoRA settings with PEFT's LoraConfig names (the tasks are in ../task.ts).
 * Validation of user input (CLI flags, run.json) lives with the run-config schema; this file is the type and defaults.
 */

export interface LoraConfig {
  r: number; // rank, PEFT default 8
  lora_alpha: number; // PEFT default 8
  lora_dropout: number; // PEFT default 0
  /** a string is a regex matched against the whole module name; a list matches exactly or as ".suffix"; "all-linear" */
  target_modules: string | string[] | null;
  exclude_modules: string | string[] | null;
  modules_to_save: string[] | null;
  bias: 'none' | 'all' | 'lora_only';
  use_rslora: boolean;
  /** forced true for GPT-2's Conv1D, which stores weights as [in, out] */
  fan_in_fan_out: boolean;
  init_lora_weights: boolean | 'gaussian';
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
}

export const LORA_DEFAULTS: LoraConfig = {
  r: 8,
  lora_alpha: 8,
  lora_dropout: 0,
  target_modules: null,
  exclude_modules: null,
  modules_to_save: null,
  bias: 'none',
  use_rslora: false,
  fan_in_fan_out: false,
  init_lora_weights: true,
  rank_pattern: {},
  alpha_pattern: {},
};
