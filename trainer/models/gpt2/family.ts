/**
 * GPT-2 as a ModelFamily (models/family.ts): transformers' GPT2LMHeadModel / GPT2ForSequenceClassification,
 * Conv1D in the blocks, nn.Linear heads (lm_head tied to wte, score).
 */
import type { LoadedModel, ModelConfig, ModelFamily, ModelSpec } from '../family';
import { configNumLabels, type GPT2Config, innerDim, parseConfig } from './config';
import { configForTask, loadModelFolder, taskFromConfig, type LoadedModel as GPT2Loaded, writeModelFolder } from './folder';
import { namedModules } from './modules';
import { gpt2WeightShapes, IGNORED_BUFFER, isConv1D, PREFIX } from './weights';

/** PEFT's default for model_type gpt2 (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
export const GPT2_DEFAULT_TARGET_MODULES = ['c_attn'];

const gpt2 = (c: ModelConfig) => c as GPT2Config;

export const GPT2_FAMILY: ModelFamily = {
  model_types: ['gpt2'],
  parseConfig,
  positionsField: 'n_positions',
  taskFromConfig: (c) => taskFromConfig(gpt2(c)),
  numLabels: (c) => configNumLabels(gpt2(c)),
  eosTokenId: (c) => gpt2(c).eos_token_id,
  namedModules: (c, task, numLabels) => namedModules(gpt2(c), task, numLabels),
  weightShapes: (c, task, numLabels) => gpt2WeightShapes(gpt2(c), task, numLabels),
  isConv1D,
  defaultTargetModules: GPT2_DEFAULT_TARGET_MODULES,
  adapterFacts: (c) => ({
    name: 'GPT-2',
    depth: `n_layer ${gpt2(c).n_layer}`,
    widths: `n_embd ${gpt2(c).n_embd}, inner ${innerDim(gpt2(c))}`,
    // lm_head is tied to wte: an adapter never carries LoRA for it
    loraKind: (module) => (isConv1D(module) ? 'Conv1D' : module === 'score' ? 'Linear' : undefined),
    whyNotLora: (module) => (module === 'lm_head' ? 'lm_head is tied to wte in GPT-2; LoRA on it is not supported' : 'only Conv1D/Linear layers (c_attn, c_proj, c_fc, score) can carry LoRA'),
  }),
  assertRunnable: () => undefined,
  load: (dir, opts) => loadModelFolder(dir, opts),
  // the loader's key rules: buffers and the tied lm_head are skipped, blocks may lack `transformer.`, score never has it
  canonicalKey: (key) => (IGNORED_BUFFER.test(key) || key === 'lm_head.weight' ? null : key === 'score.weight' || key.startsWith(PREFIX) ? key : PREFIX + key),
  write: (outDir, src: LoadedModel, weights) => writeModelFolder(outDir, src as GPT2Loaded, weights),
  configForTask: (c, task, numLabels, warnings) => configForTask(gpt2(c), task, numLabels, warnings),
  // required here, not imported: the model code and TensorFlow.js load when a model is made, not for jobs that only
  // read and write files (merge, inspect)
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a deferred load, typed by the import type
  createModel: (spec: ModelSpec) => (require('./model') as typeof import('./model')).GPT2LoraModel.create(spec),
};
