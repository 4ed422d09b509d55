/**
 * The zod schema of a run config file (lora-run.json): field names, types, allowed values, defaults and
 * the one-line descriptions that the JSON Schema shows as hover docs. Names are PEFT's LoraConfig and
 * transformers' TrainingArguments; defaults are theirs (LORA_DEFAULTS for LoRA). Every leaf carries an
 * error text that says what is allowed; run_config.ts turns zod issues into our error lines.
 */
import { z } from 'zod';
import { LORA_DEFAULTS, type LoraConfig } from '../lora/config';
import { MAX_LABELS } from '../task';

/** transformers' lr_scheduler_type values the trainer implements (train/schedule.ts). */
export const LR_SCHEDULER_TYPES = ['linear', 'cosine', 'constant', 'constant_with_warmup'] as const;
export type LrSchedulerType = (typeof LR_SCHEDULER_TYPES)[number];

export const TASKS = ['causal-lm', 'seq-cls'] as const;
export const DATA_FORMATS = ['jsonl', 'json', 'csv', 'tsv', 'text', 'parquet'] as const;
export const INTERVAL_STRATEGIES = ['no', 'steps', 'epoch'] as const;
export const BACKENDS = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export const LORA_BIAS = ['none', 'all', 'lora_only'] as const;

// ---- bounds: counts and sizes a real run stays far below; anything larger would only allocate or loop for nothing ----

/** Optimizer steps, and any step interval (logging/eval/save/warmup): a billion steps is years of training. */
export const MAX_STEPS = 1_000_000_000;
/** Tokens per example: far above any GPT-2-class context (n_positions is 1024 for GPT-2). */
export const MAX_LENGTH = 1_048_576;
/** Examples per batch, and batches per optimizer step. */
export const MAX_BATCH = 65_536;
/** Passes over the data. */
export const MAX_EPOCHS = 1_000_000;
/** LoRA rank (PEFT's r, and rank_pattern values). */
export const MAX_RANK = 65_536;

// ---- leaf builders: each sets one error text, naming what is allowed, on every check ----

interface Range {
  gt?: number;
  ge?: number;
  lt?: number;
  le?: number;
}

function rangeText(r: Range): string {
  const lo = r.gt !== undefined ? `> ${r.gt}` : r.ge !== undefined ? `>= ${r.ge}` : '';
  const hi = r.lt !== undefined ? `< ${r.lt}` : r.le !== undefined ? `<= ${r.le}` : '';
  return [lo, hi].filter(Boolean).join(' and ');
}

function numberLeaf(kind: 'a number' | 'an integer', r: Range, orNull: boolean) {
  const msg = `must be ${kind}${rangeText(r) ? ' ' + rangeText(r) : ''}${orNull ? ', or null' : ''}`;
  let s = z.number({ error: msg });
  if (kind === 'an integer') s = s.int({ error: msg });
  if (r.gt !== undefined) s = s.gt(r.gt, { error: msg });
  if (r.ge !== undefined) s = s.gte(r.ge, { error: msg });
  if (r.lt !== undefined) s = s.lt(r.lt, { error: msg });
  if (r.le !== undefined) s = s.lte(r.le, { error: msg });
  return s;
}
const num = (r: Range, orNull = false) => numberLeaf('a number', r, orNull);
const int = (r: Range, orNull = false) => numberLeaf('an integer', r, orNull);
const bool = () => z.boolean({ error: 'must be true or false' });
const str = (what = 'a non-empty string', orNull = false) => {
  const msg = `must be ${what}${orNull ? ', or null' : ''}`;
  return z.string({ error: msg }).min(1, { error: msg });
};
const oneOf = <const T extends readonly [string, ...string[]]>(values: T, orNull = false) =>
  z.enum(values, { error: `must be one of ${values.map((v) => JSON.stringify(v)).join(', ')}${orNull ? ', or null' : ''}` });
const stringOrList = (what: string) =>
  z.union([z.string(), z.array(z.string())], { error: `must be ${what}, a list of module names, or null` });

// ---- sections ----

export const DataSchema = z
  .strictObject(
    {
      train: str('a file path (relative to this config file)').describe(
        'Training data: a file relative to this config file (.jsonl, .json, .csv, .tsv, .txt or .parquet), or a Hugging Face Hub dataset id such as "stanfordnlp/imdb" or "owner/name:split" (its Parquet files are downloaded into the Hugging Face cache).',
      ),
      eval: str('a file path', true)
        .nullable()
        .default(null)
        .describe('Evaluation data file. When null, a fraction `eval_split` of the training data is held out.'),
      format: oneOf(DATA_FORMATS, true)
        .nullable()
        .default(null)
        .describe('File format; when null it is inferred from the file extension.'),
      text_column: str().default('text').describe('Column (or JSON key) holding the text.'),
      label_column: str().default('label').describe('seq-cls: column (or JSON key) holding the class label.'),
      max_length: int({ ge: 1, le: MAX_LENGTH })
        .default(256)
        .describe('Maximum tokens per example; longer examples are truncated (with packing: the block length).'),
      eval_split: num({ ge: 0, lt: 1 })
        .default(0.1)
        .describe('Fraction of the training data held out for evaluation when `eval` is null; 0 holds nothing out (then set eval_strategy "no").'),
      packing: bool().default(false).describe('causal-lm: concatenate examples and cut them into blocks of max_length tokens.'),
      max_bad_rows_ratio: num({ ge: 0, le: 1 })
        .default(0.1)
        .describe('Fraction of malformed rows that may be skipped before the run fails (each skipped row is reported with its line number); 0 makes any bad row an error.'),
    },
    { error: 'must be an object with at least "train"' },
  )
  .describe('Where the examples come from and how they are cut.');

const L = LORA_DEFAULTS;
export const LoraSchema = z
  .strictObject(
    {
      r: int({ ge: 1, le: MAX_RANK }).default(L.r).describe('LoRA rank (PEFT `r`).'),
      lora_alpha: num({ gt: 0 }).default(L.lora_alpha).describe('LoRA scaling numerator: scaling = lora_alpha / r (or / sqrt(r) with use_rslora).'),
      lora_dropout: num({ ge: 0, lt: 1 }).default(L.lora_dropout).describe('Dropout probability on the LoRA input during training.'),
      target_modules: stringOrList('a regular expression matched against whole module names')
        .nullable()
        .default(L.target_modules)
        .describe(
          'Modules to adapt: a regex matched against the whole module name, a list of names (exact or ".suffix" match), or "all-linear". null: the model\'s default (GPT-2: c_attn).',
        ),
      exclude_modules: stringOrList('a regular expression')
        .nullable()
        .default(L.exclude_modules)
        .describe('Modules never to adapt: a regex or a list of names, as target_modules.'),
      modules_to_save: z
        .array(str(), { error: 'must be a list of module names, or null' })
        .nullable()
        .default(L.modules_to_save)
        .describe('Modules trained in full and saved with the adapter (e.g. ["score"] for a classification head).'),
      bias: oneOf(LORA_BIAS).default(L.bias).describe('Which biases to train: "none", "all", or "lora_only" (biases of adapted modules).'),
      use_rslora: bool().default(L.use_rslora).describe('Rank-stabilized LoRA: scaling = lora_alpha / sqrt(r).'),
      fan_in_fan_out: bool()
        .default(L.fan_in_fan_out)
        .describe('Weights stored as [in, out]. Forced true for GPT-2\'s Conv1D layers, as PEFT does.'),
      init_lora_weights: z
        .union([z.boolean(), z.literal('gaussian')], { error: 'must be true, false or "gaussian"' })
        .default(L.init_lora_weights)
        .describe('true: Kaiming-uniform A and zero B (PEFT default); "gaussian": normal A; false: random B too (testing only).'),
      rank_pattern: z
        .record(z.string(), int({ ge: 1, le: MAX_RANK }), { error: 'must be an object mapping module-name patterns to ranks' })
        .default(() => ({ ...L.rank_pattern }))
        .describe('Per-module rank overrides: {pattern: r}; a pattern matches module names ending with it.'),
      alpha_pattern: z
        .record(z.string(), num({ gt: 0 }), { error: 'must be an object mapping module-name patterns to alphas' })
        .default(() => ({ ...L.alpha_pattern }))
        .describe('Per-module lora_alpha overrides: {pattern: alpha}.'),
    },
    { error: 'must be an object' },
  )
  .describe("LoRA settings, with PEFT's LoraConfig names and defaults.");

export const TrainingSchema = z
  .strictObject(
    {
      output_dir: str('a folder path').default('trainer_output').describe('Where checkpoints, the final adapter and metrics go (relative to this config file).'),
      num_train_epochs: num({ gt: 0, le: MAX_EPOCHS }).default(3).describe('Number of passes over the training data (ignored when max_steps > 0).'),
      max_steps: int({ ge: -1, le: MAX_STEPS })
        .default(-1)
        .describe('Total optimizer steps; overrides num_train_epochs when > 0. -1: derive from num_train_epochs.'),
      per_device_train_batch_size: int({ ge: 1, le: MAX_BATCH }).default(8).describe('Examples per training batch.'),
      per_device_eval_batch_size: int({ ge: 1, le: MAX_BATCH }).default(8).describe('Examples per evaluation batch.'),
      gradient_accumulation_steps: int({ ge: 1, le: MAX_BATCH }).default(1).describe('Batches whose gradients are summed before each optimizer step.'),
      learning_rate: num({ ge: 0 }).default(5e-5).describe('Peak learning rate of AdamW.'),
      weight_decay: num({ ge: 0 }).default(0).describe('AdamW decoupled weight decay (not applied to biases and LayerNorm weights).'),
      adam_beta1: num({ ge: 0, lt: 1 }).default(0.9).describe('AdamW beta1.'),
      adam_beta2: num({ ge: 0, lt: 1 }).default(0.999).describe('AdamW beta2.'),
      adam_epsilon: num({ ge: 0 }).default(1e-8).describe('AdamW epsilon.'),
      max_grad_norm: num({ ge: 0 }, true)
        .nullable()
        .default(1.0)
        .transform((v) => v ?? 0) // null is read as 0: no clipping
        .describe('Clip gradients to this global L2 norm; 0 or null disables clipping.'),
      lr_scheduler_type: oneOf(LR_SCHEDULER_TYPES).default('linear').describe('Learning-rate schedule after warmup.'),
      warmup_ratio: num({ ge: 0, le: 1 }).default(0).describe('Fraction of the total steps used for linear warmup (ignored when warmup_steps > 0).'),
      warmup_steps: int({ ge: 0, le: MAX_STEPS }).default(0).describe('Linear warmup steps; overrides warmup_ratio when > 0.'),
      logging_strategy: oneOf(INTERVAL_STRATEGIES).default('steps').describe('When to log training loss: "no", every logging_steps ("steps"), or each "epoch".'),
      logging_steps: int({ ge: 1, le: MAX_STEPS }).default(500).describe('Log every this many optimizer steps (logging_strategy "steps").'),
      eval_strategy: oneOf(INTERVAL_STRATEGIES).default('no').describe('When to evaluate: "no", every eval_steps ("steps"), or each "epoch".'),
      eval_steps: int({ ge: 1, le: MAX_STEPS }, true)
        .nullable()
        .default(null)
        .describe('Evaluate every this many optimizer steps (eval_strategy "steps"); null: logging_steps.'),
      eval_on_start: bool().default(false).describe('Evaluate once before training starts.'),
      save_strategy: oneOf(INTERVAL_STRATEGIES).default('steps').describe('When to save a checkpoint: "no", every save_steps ("steps"), or each "epoch".'),
      save_steps: int({ ge: 1, le: MAX_STEPS }, true).nullable().default(500).describe('Save every this many optimizer steps (save_strategy "steps").'),
      save_total_limit: int({ ge: 1, le: MAX_STEPS }, true)
        .nullable()
        .default(null)
        .describe('Keep at most this many checkpoints (the best one is always kept); null: keep all.'),
      load_best_model_at_end: bool()
        .default(false)
        .describe('Finish with the best checkpoint by metric_for_best_model. Needs save_strategy equal to eval_strategy.'),
      metric_for_best_model: str('a metric name', true)
        .nullable()
        .default(null)
        .describe('Metric that picks the best checkpoint, e.g. "loss" or "accuracy" ("eval_" prefix optional). Default "loss" with load_best_model_at_end.'),
      greater_is_better: bool()
        .nullable()
        .default(null)
        .describe('Whether a higher metric_for_best_model is better. Default: false for names ending in "loss", else true.'),
      dataloader_drop_last: bool().default(false).describe('Drop the last incomplete training batch of each epoch.'),
      seed: int({ ge: 0, le: 2 ** 32 - 1 }).default(42).describe('Random seed for LoRA init, shuffling, dropout and the eval split.'),
      resume_from_checkpoint: z
        .union([z.boolean(), str()], { error: 'must be null, true (latest checkpoint in output_dir), or a checkpoint folder path' })
        .nullable()
        .default(null)
        .describe('Resume training: true for the latest checkpoint in output_dir, or a checkpoint folder path.'),
      backend: oneOf(BACKENDS, true)
        .nullable()
        .default(null)
        .describe('Preferred TensorFlow.js backend ("tensorflow": tfjs-node, "webgpu": Dawn, "wasm", "cpu"); null: the best available.'),
    },
    { error: 'must be an object' },
  )
  .describe("Training settings, with transformers' TrainingArguments names and defaults.");

export const RunConfigSchema = z
  .strictObject({
    $schema: z.string({ error: 'must be a string' }).optional().describe('JSON Schema of this file, for editors; ignored by the trainer.'),
    model: str('a model folder (relative to this config file) or a Hugging Face hub id').describe(
      'Base model: a Hugging Face model folder (relative to this config file) or a hub id such as "gpt2".',
    ),
    task: oneOf(TASKS).default('causal-lm').describe('"causal-lm": next-token prediction; "seq-cls": sequence classification.'),
    num_labels: int({ ge: 1, le: MAX_LABELS }).optional().describe('seq-cls: number of classes (default 2).'),
    data: DataSchema,
    lora: LoraSchema.prefault({}),
    training: TrainingSchema.prefault({}),
  }, { error: 'must be a JSON object with at least "model" and "data"' })
  .meta({
    title: 'LoRA Studio run config',
    description: "A LoRA fine-tuning run: the base model, the data, PEFT's LoraConfig fields and transformers' TrainingArguments fields.",
  });

export type RunConfigInput = z.input<typeof RunConfigSchema>;
export type RunConfig = z.output<typeof RunConfigSchema>;

// the lora section's output is exactly a LoraConfig
const _loraTypeCheck: (x: z.output<typeof LoraSchema>) => LoraConfig = (x) => x;
void _loraTypeCheck;

/** The fields each object of the file may have, by dotted path ('' is the top level). */
export const KNOWN_FIELDS: Record<string, readonly string[]> = {
  '': Object.keys(RunConfigSchema.shape),
  data: Object.keys(DataSchema.shape),
  lora: Object.keys(LoraSchema.shape),
  training: Object.keys(TrainingSchema.shape),
};
