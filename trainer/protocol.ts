/**
 * The trainer's side of its protocol with the extension (counterpart: extension/trainerClient.ts).
 * One event schema serves three listeners: `lora-studio train --json` (JSON Lines on stdout),
 * `output_dir/metrics.jsonl`, and the IPC channel of the child process (`trainer/main.ts`).
 * Field names follow transformers' log_history (`loss`, `learning_rate`, `grad_norm`, `eval_*`).
 */

export interface StartEvent {
  event: 'start';
  backend: string;
  gpu: boolean;
  /** webgpu only: the adapter Dawn gave (software: llvmpipe or the like, taken only when webgpu was forced) */
  adapter?: { vendor: string; architecture: string; device: string; description: string; software: boolean };
  task: 'causal-lm' | 'seq-cls';
  model: string;
  output_dir: string;
  trainable_params: number;
  all_params: number;
  total_steps: number;
  num_train_epochs: number;
  /** the step the run starts from (non-zero when resuming) */
  global_step: number;
}

export interface StepEvent {
  event: 'step';
  step: number;
  epoch: number;
  loss: number;
  learning_rate: number;
  grad_norm: number;
  tokens_per_second: number;
  samples_per_second: number;
  rss_mb: number;
  eta_s: number;
}

export interface EvalEvent {
  event: 'eval';
  step: number;
  epoch: number;
  /** eval_loss always; eval_accuracy and eval_f1 for seq-cls; eval_perplexity for causal-lm */
  metrics: Record<string, number>;
}

export interface CheckpointEvent {
  event: 'checkpoint';
  step: number;
  path: string;
}

export interface LogEvent {
  event: 'log';
  level: 'info' | 'warning';
  message: string;
}

export interface DoneEvent {
  event: 'done';
  /** the best checkpoint (by metric_for_best_model), or null when there was no evaluation */
  best: string | null;
  best_metric: number | null;
  output_dir: string;
  global_step: number;
  /** true when the run was stopped (signal or stop request) before its last step */
  stopped: boolean;
}

export interface ErrorEvent {
  event: 'error';
  message: string;
  file?: string;
  field?: string;
}

export type TrainEvent = StartEvent | StepEvent | EvalEvent | CheckpointEvent | LogEvent | DoneEvent | ErrorEvent;
export type TrainEventName = TrainEvent['event'];

// ---- results of the one-shot commands (`lora-studio <command> --json` prints one of these) ----

/** What every one-shot result starts with: the backend that ran (null for host-side arithmetic) and its GPU. */
export interface ResultBackend {
  /** tf.getBackend() after initialization, or null when no backend ran (merge, inspect, analyze) */
  backend: string | null;
  gpu: boolean;
  /** webgpu only: the adapter Dawn gave */
  adapter?: StartEvent['adapter'];
}

/**
 * `eval MODEL --data FILE [--adapter DIR] --json`: the metrics, flat. causal-lm gives loss, perplexity and
 * num_tokens; seq-cls gives loss, accuracy, f1 (sklearn's weighted F1) and num_examples, and id2label.
 */
export interface EvalResult extends ResultBackend {
  backend: string;
  task: 'causal-lm' | 'seq-cls';
  /** mean NLL per predicted token (causal-lm) or per example (seq-cls); a metric that is not finite is null (JSON has no NaN) */
  loss: number | null;
  perplexity?: number | null;
  num_tokens?: number;
  accuracy?: number | null;
  f1?: number | null;
  num_examples?: number;
  /** seq-cls: the label names by id */
  id2label?: Record<string, string>;
}

/** `merge MODEL --adapter DIR --out NEW_DIR --json` */
export interface MergeResult extends ResultBackend {
  backend: null;
  /** absolute */
  out_dir: string;
  merged_modules: number;
  warnings: string[];
}

/** `generate MODEL --prompt TEXT [--adapter DIR] --json` */
export interface GenerateResult extends ResultBackend {
  backend: string;
  prompt: string;
  /** the generated text only, without the prompt */
  completion: string;
  /** the generated token ids (eos included when generation stopped there) */
  token_ids: number[];
}

/** `classify MODEL --text TEXT [--adapter DIR] --json` */
export interface ClassifyResult extends ResultBackend {
  backend: string;
  text: string;
  label: string;
  label_id: number;
  /** softmax over the labels, by label name */
  probabilities: Record<string, number>;
}

/** One adapted module in `analyze`: the spectrum of ΔW = scaling · B·A ([out, in], PyTorch's orientation). */
export interface AnalyzedModule {
  /** the PEFT module name (the adapter's keys without `base_model.model.`) */
  name: string;
  r: number;
  /** all r singular values of ΔW, descending */
  singular_values: number[];
  /** ‖ΔW‖_F */
  delta_fro: number;
  /** ‖ΔW‖²_F / σ₁² (0 for a zero update) */
  stable_rank: number;
  /** with --base: section 7.3 of the LoRA paper */
  amplification?: { factor: number; projected_fro: number; random_fro: number };
}

/** `analyze ADAPTER [--base MODEL] [--compare ADAPTER2] --json` */
export interface AnalyzeResult {
  adapter: string;
  base?: string;
  compare?: string;
  modules: AnalyzedModule[];
  /** with --compare, over the modules both adapters adapt: phi[i-1][j-1] = φ(A1, A2, i, j) */
  similarity: Array<{ name: string; phi: number[][] }>;
  warnings: string[];
}

// ---- IPC between the extension host (parent) and trainer/main.ts (child) ----

// ---- the module table, LoRA targets and the results of inspect and select (answers to the requests below) ----

/** The PyTorch class names that `named_modules()` reports for GPT-2. */
export type ModuleType =
  | 'GPT2LMHeadModel' | 'GPT2ForSequenceClassification' | 'GPT2Model' | 'ModuleList' | 'GPT2Block'
  | 'GPT2Attention' | 'GPT2MLP' | 'Conv1D' | 'Linear' | 'Embedding' | 'LayerNorm' | 'Dropout' | 'NewGELUActivation'
  | 'GELUActivation' | 'GELUTanh' | 'ReLU'
  // the Llama family (models/llama/): LlamaForCausalLM, Qwen2Model, MistralRMSNorm, …
  | `${LlamaClassPrefix}${'ForCausalLM' | 'ForSequenceClassification' | 'Model' | 'DecoderLayer' | 'Attention' | 'MLP' | 'RMSNorm' | 'RotaryEmbedding'}`
  | 'SiLUActivation';

/** The class-name prefixes of the Llama family's model_types llama, qwen2, mistral. */
export type LlamaClassPrefix = 'Llama' | 'Qwen2' | 'Mistral';

export interface ModuleInfo {
  /** exactly as PyTorch's model.named_modules() prints it; the root is '' */
  name: string;
  type: ModuleType;
  /** Linear/Conv1D: in/out features; Embedding: num_embeddings/embedding_dim; LayerNorm/RMSNorm: normalized dim */
  in_features?: number;
  out_features?: number;
  /** parameters owned directly by this module (not its children); tied weights counted once, at their owner */
  params: number;
  /** the HF weight keys this module owns, e.g. ['transformer.h.0.attn.c_attn.weight', '…bias'] */
  weight_keys: string[];
  /** true for the output head (lm_head / score) */
  is_head?: boolean;
  /** lm_head shares the input embedding's weight (GPT-2's transformer.wte, Llama's model.embed_tokens) */
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

export type InspectModule = ModuleInfo & {
  lora?: { r: number; lora_alpha: number; scaling: number };
  modules_to_save?: boolean;
};

/** JSON-serialisable. */
export interface InspectResult {
  model_dir: string;
  /** config.json's model_type, e.g. "gpt2" */
  model_type: string;
  task: 'causal-lm' | 'seq-cls';
  num_labels: number;
  modules: InspectModule[];
  targets: LoraTarget[];
  modules_to_save: string[];
  warnings: string[];
  /** the effective fan_in_fan_out (PEFT forces true for Conv1D targets) */
  fan_in_fan_out: boolean;
  trainable_params: number;
  all_params: number;
  line: string;
}

/** What a target_modules value selects in a module table (lora/select.ts). */
export interface SelectResult {
  /** the Linear/Conv1D modules selected, in named_modules() order */
  selected: string[];
  /** the spec was a regex (not "all-linear"): a picker keeps it as its active filter */
  regex?: string;
  /** list entries, or the regex, that matched no Linear/Conv1D module */
  unmatched: string[];
  /** module names the spec matched that cannot take LoRA (resolveTargets refuses them) */
  not_adaptable: string[];
}

/** The LoRA fields that inspect takes (PEFT LoraConfig names); unset ones take PEFT's defaults. */
export interface InspectLora {
  r?: number;
  lora_alpha?: number;
  target_modules?: string | string[] | null;
  exclude_modules?: string | string[] | null;
  modules_to_save?: string[] | null;
  bias?: 'none' | 'all' | 'lora_only';
  use_rslora?: boolean;
  rank_pattern?: Record<string, number>;
  alpha_pattern?: Record<string, number>;
}

export interface TrainParams {
  config_file: string;
  backend?: string;
  /** overrides training.resume_from_checkpoint: true for the latest checkpoint, or a checkpoint folder */
  resume_from_checkpoint?: string | boolean;
}

/** Either a run config (its model, task, num_labels and lora), or a model folder with explicit settings. */
export type InspectParams =
  | { config_file: string }
  | { model_dir: string; task?: 'causal-lm' | 'seq-cls'; num_labels?: number; lora?: InspectLora };

/** What a target_modules value selects in a model's module table (a picker's view of PEFT's matching rules). */
export interface SelectParams {
  model_dir: string;
  task?: 'causal-lm' | 'seq-cls';
  num_labels?: number;
  target_modules: string | string[] | null;
}

/** parent → child; the response to `inspect` is an InspectResult, to `select` a SelectResult, to `train` the DoneEvent */
export type ParentMessage =
  | { kind: 'request'; id: number; method: 'train'; params: TrainParams }
  | { kind: 'request'; id: number; method: 'inspect'; params: InspectParams }
  | { kind: 'request'; id: number; method: 'select'; params: SelectParams }
  /** ask the request `id` to stop: a training run saves a checkpoint first, then answers */
  | { kind: 'cancel'; id: number };

export const ERROR_CODES = { invalid_input: 1, internal: 2, cancelled: 3, unknown_method: 4 } as const;
export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

/** child → parent */
export type ChildMessage =
  | { kind: 'notification'; id: number; event: TrainEvent }
  | { kind: 'response'; id: number; result: unknown }
  | { kind: 'response'; id: number; error: { code: ErrorCode; message: string; file?: string; field?: string } }
  | { kind: 'ready'; pid: number };

export function isParentMessage(m: unknown): m is ParentMessage {
  if (!m || typeof m !== 'object') return false;
  const o = m as Record<string, unknown>;
  if (typeof o.id !== 'number') return false;
  if (o.kind === 'cancel') return true;
  if (o.kind !== 'request' || !o.params || typeof o.params !== 'object') return false;
  const p = o.params as Record<string, unknown>;
  if (o.method === 'train') return typeof p.config_file === 'string';
  if (o.method === 'inspect') return typeof p.config_file === 'string' || typeof p.model_dir === 'string';
  if (o.method === 'select') return typeof p.model_dir === 'string' && (p.target_modules === null || typeof p.target_modules === 'string' || Array.isArray(p.target_modules));
  return false;
}
