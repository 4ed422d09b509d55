/**
 * The Llama family as a ModelFamily (models/family.ts): transformers' LlamaForCausalLM /
 * LlamaForSequenceClassification and their Qwen2 and Mistral twins — all nn.Linear, RMSNorm, RoPE, grouped-query
 * attention. This first slice reads config.json, the module table, the weight shapes and PEFT's defaults: inspect,
 * target selection and the PEFT line work. Loading, training, evaluating, merging and generating are not
 * implemented yet; each of those jobs is refused with one clear error (assertRunnable), never a crash.
 */
import * as path from 'node:path';
import { LoraStudioError } from '../../errors';
import { readJsonFile } from '../../io/json';
import type { ModelConfig, ModelFamily } from '../family';
import { CLASS_PREFIX, configNumLabels, firstEos, headDim, kvHeads, LLAMA_MODEL_TYPES, type LlamaConfig, parseConfig } from './config';
import { namedModules } from './modules';
import { isConv1D, llamaWeightShapes } from './weights';
import type { Task } from '../../task';

/** PEFT's default for model_type llama, mistral and qwen2 (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
export const LLAMA_DEFAULT_TARGET_MODULES = ['q_proj', 'v_proj'];

const llama = (c: ModelConfig) => c as LlamaConfig;

/** The one error every not-yet-implemented job gives for a Llama-family folder. */
export function notImplemented(config: { model_type: unknown }, file: string): LoraStudioError {
  return new LoraStudioError(
    `${String(config.model_type)} models can be inspected and their LoRA targets picked, but training/evaluating/merging them is not implemented yet; GPT-2 (model_type "gpt2") is`,
    file,
    'model_type',
  );
}

const configFile = (dir: string) => path.join(dir, 'config.json');

export const LLAMA_FAMILY: ModelFamily = {
  model_types: LLAMA_MODEL_TYPES,
  parseConfig,
  taskFromConfig: (c): Task => {
    const arch = `${CLASS_PREFIX[llama(c).model_type]}ForSequenceClassification`;
    return Array.isArray(c.architectures) && c.architectures.includes(arch) ? 'seq-cls' : 'causal-lm';
  },
  numLabels: (c) => configNumLabels(llama(c)),
  eosTokenId: (c) => {
    const eos = firstEos(llama(c));
    if (eos === undefined) throw new LoraStudioError('is not set; the end-of-text token id is needed', 'config.json', 'eos_token_id');
    return eos;
  },
  namedModules: (c, task, numLabels) => namedModules(llama(c), task, numLabels),
  weightShapes: (c, task, numLabels) => llamaWeightShapes(llama(c), task, numLabels),
  isConv1D,
  defaultTargetModules: LLAMA_DEFAULT_TARGET_MODULES,
  adapterFacts: (c) => ({
    name: CLASS_PREFIX[llama(c).model_type],
    depth: `num_hidden_layers ${llama(c).num_hidden_layers}`,
    widths: `hidden_size ${llama(c).hidden_size}, heads ${llama(c).num_attention_heads}/${kvHeads(llama(c))} × ${headDim(llama(c))}, intermediate ${llama(c).intermediate_size}`,
    loraKind: (module) => (/^model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)$/.test(module) || module === 'score' ? 'Linear' : undefined),
    whyNotLora: () => 'only the Linear layers (q/k/v/o_proj, gate/up/down_proj, score) can carry LoRA',
  }),
  assertRunnable: (c, file) => {
    throw notImplemented(c, file);
  },
  load: (dir) => {
    const file = configFile(dir);
    throw notImplemented(parseConfig(readJsonFile(file), file), file);
  },
  write: (outDir, src) => {
    throw notImplemented(src.config, configFile(src.dir));
  },
  configForTask: (c) => {
    throw notImplemented(c, 'config.json');
  },
  createModel: (spec) => {
    throw notImplemented(spec.config, 'config.json');
  },
};
