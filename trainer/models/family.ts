/**
 * What the trainer needs from a model family (GPT-2; the Llama family — llama, qwen2, mistral — for inspect and
 * target selection so far), in one small interface: its config.json, its module table as `named_modules()` prints
 * it, its weights, which of its modules are Conv1D (the one owner of PEFT's fan_in_fan_out), PEFT's default
 * targets, whether its jobs beyond inspect are implemented, its folder loader, and the trainable model. LoRA (lora/) knows no family: callers hand it what it needs from here.
 * A family lives in models/<name>/ and is found by config.json's model_type (models/registry.ts).
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { Batch } from '../data/collate';
import type { HostTensor } from '../io/safetensors';
import type { LoraInit } from '../lora/layer';
import type { AdapterConfigJson, AdapterWeights } from '../lora/types';
import type { AdapterFacts } from '../lora/adapter_io';
import type { LoraTarget, ModuleInfo } from '../protocol';
import type { Task } from '../task';

/** config.json as a family reads it: keys verbatim from transformers, checked by the family's parseConfig. */
export interface ModelConfig {
  model_type: string;
  pad_token_id?: number | null;
  /** an int for GPT-2; a list of ints in some Llama-family configs (Llama 3) */
  eos_token_id?: number | number[] | null;
  num_labels?: number;
  id2label?: Record<string, string>;
  label2id?: Record<string, number>;
  architectures?: string[] | null;
  [key: string]: unknown;
}

/** A model folder read into host memory: canonical keys (the family's weightShapes), F32 values, dtype as stored. */
export interface LoadedModel {
  dir: string;
  config: ModelConfig;
  task: Task;
  num_labels: number;
  weights: Map<string, HostTensor>;
  /** how the folder's keys were spelled (family-specific, e.g. GPT-2's `transformer.` prefix or not), kept on write */
  layout: string;
  sharded: boolean;
  /** names (not paths) of the tokenizer files present in the folder */
  tokenizerFiles: string[];
  warnings: string[];
}

export interface LoadModelOptions {
  task?: Task;
  num_labels?: number;
  /** seed for a newly initialised classification head (default 42) */
  seed?: number;
}

/**
 * 'fast' (default): the hand-written gradients and fast-path layouts (per-head 2-D attention, (w·dyᵀ)ᵀ
 * backward products, one-op GELU, a head that makes its gradient in the forward pass, no transposed wte).
 * 'reference': the plain, unoptimised composition of tfjs ops, kept to check that the fast path changes no loss.
 */
export type Kernels = 'fast' | 'reference';

/** Everything a family needs to build its trainable model. */
export interface ModelSpec {
  config: ModelConfig;
  task: Task;
  /** seq-cls head size (ignored for causal-lm) */
  num_labels: number;
  /** base weights by canonical HF key (the family's weightShapes, in its stored layout) */
  weights: Map<string, HostTensor>;
  targets: LoraTarget[];
  /** module names (full, or a `.suffix` of them) trained in full and saved with the adapter */
  modules_to_save: string[];
  bias: 'none' | 'all' | 'lora_only';
  lora_dropout: number;
  init_lora_weights: LoraInit;
  /** seeds LoRA init (and a missing head's init) */
  seed: number;
  /** initial values in PEFT's layout: LoRA factors for every target, and `extra` tensors by HF key */
  adapter?: AdapterWeights;
  pad_token_id: number;
  kernels?: Kernels;
}

export interface ForwardOptions {
  training: boolean;
  /** seeds every dropout site of this pass; without it, a stream seeded by spec.seed is used */
  seed?: number;
  /**
   * For a shard of a larger batch (data parallelism): the index of this batch's first row in the whole batch
   * (dropout masks follow the global row), and what loss() divides the summed NLL by (the whole batch's count).
   */
  rowOffset?: number;
  denominator?: number;
}

/** The trainable model as training, evaluation, generation and the data-parallel workers use it. */
export interface LoraModel {
  /** trainable parameters by PEFT key without `base_model.model.` (the family's internal layout) */
  readonly trainable: Map<string, tf.Variable>;
  readonly task: Task;
  readonly num_labels: number;
  readonly targets: LoraTarget[];
  readonly pad_token_id: number;
  /** the longest sequence the model takes (GPT-2's n_positions) */
  readonly maxPositions: number;
  /** hidden size × number of blocks: what decides whether data parallelism pays off */
  readonly bodySize: number;
  logits(batch: Batch, opts?: ForwardOptions): tf.Tensor;
  lastLogits(batch: Batch): tf.Tensor2D;
  loss(batch: Batch, opts?: ForwardOptions): tf.Scalar;
  nllSum(batch: Batch): Promise<{ nll: number; count: number }>;
  exportAdapter(config: AdapterConfigJson): Promise<AdapterWeights>;
  loadAdapter(adapter: AdapterWeights): void;
  replicaSpec(): { spec: ModelSpec; buffer: ArrayBuffer };
  trainableParamCount(): number;
  /**
   * Incremental decoding for generation with a KV cache (batch 1, no padding, eval mode). Optional while a family
   * lacks one; generate() then recomputes the whole sequence per token.
   */
  decoder?(): Decoder;
  dispose(): void;
}

/** A generation session over one sequence: holds each block's keys and values for the tokens fed so far. */
export interface Decoder {
  /**
   * Feeds `ids` at the next positions (the prompt first, then one sampled token at a time) and returns the
   * logits after the last of them, [vocab_size]. Throws a LoraStudioError past the model's maxPositions.
   */
  feed(ids: number[]): Promise<Float32Array>;
  /** frees the cache; idempotent */
  dispose(): void;
}

export interface ModelFamily {
  /** config.json model_type values this family reads */
  readonly model_types: readonly string[];
  /** checks config.json (already known to be a JSON object with one of model_types); errors name `file` and the field */
  parseConfig(raw: unknown, file: string): ModelConfig;
  /** the task a config was saved for (its architectures) */
  taskFromConfig(config: ModelConfig): Task;
  /** the seq-cls head size config.json implies */
  numLabels(config: ModelConfig): number;
  /** config.json's field for the longest sequence (GPT-2's n_positions, Llama's max_position_embeddings), for messages */
  readonly positionsField: string;
  /** eos, for data preparation before the folder is loaded */
  eosTokenId(config: ModelConfig): number;
  /** every module, root '' first, exactly as `named_modules()` prints it, with shapes and parameter counts */
  namedModules(config: ModelConfig, task: Task, numLabels: number): ModuleInfo[];
  /** every weight the checkpoint holds, by canonical HF key, with its shape */
  weightShapes(config: ModelConfig, task: Task, numLabels: number): Map<string, number[]>;
  /** true for a Conv1D module (weight [in, out]): PEFT's fan_in_fan_out; every other LoRA module is nn.Linear */
  isConv1D(module: string): boolean;
  /** PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING entry for this family */
  readonly defaultTargetModules: readonly string[];
  /** what adapter checks need to know and say about this model (lora/adapter_io.ts checkAdapterFitsModel) */
  adapterFacts(config: ModelConfig): AdapterFacts;
  /**
   * Throws a LoraStudioError (naming `file`, config.json, and model_type) when this family's models can be
   * inspected but not loaded, trained, evaluated, merged or run yet; every such job calls it before any other work.
   */
  assertRunnable(config: ModelConfig, file: string): void;
  /**
   * Throws a LoraStudioError (naming `file`) when the model's weights cannot fit `backend`'s memory (the wasm heap),
   * from config.json and the weight files' headers (`stored`: the dtype of each canonical key, when they could be
   * read): train/eval/generate call it before reading any weight. Absent: every size fits.
   */
  assertFitsBackend?(config: ModelConfig, backend: string, file: string, stored?: (key: string) => string | undefined): void;
  /** reads and checks a model folder */
  load(dir: string, opts?: LoadModelOptions): LoadedModel;
  /**
   * The canonical key (weightShapes') of a tensor as a weight file spells it, or null for one the loader skips
   * unread (buffers, a tied head); merge streams the files with it instead of loading them. Absent: keys are canonical.
   */
  canonicalKey?(stored: string, config: ModelConfig): string | null;
  /** writes `weights` (canonical keys) as a complete NEW folder in `src`'s layout, config from `src.config` */
  write(outDir: string, src: LoadedModel, weights: Map<string, HostTensor>): void;
  /** the config to save with a model for `task` (architectures, labels, pad token); warnings go to `warnings` */
  configForTask(config: ModelConfig, task: Task, numLabels: number, warnings: string[]): ModelConfig;
  /** the trainable model */
  createModel(spec: ModelSpec): LoraModel;
}
