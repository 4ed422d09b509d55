/**
 * The Llama family as a ModelFamily (models/family.ts): transformers' LlamaForCausalLM /
 * LlamaForSequenceClassification and their Qwen2 and Mistral twins — all nn.Linear, RMSNorm, RoPE, grouped-query
 * attention. config.json, the module table, the weight shapes, PEFT's defaults, and the folders both ways
 * (folder.ts) live here; the trainable model is createModel's.
 */
import { LoraStudioError } from '../../errors';
import type { ModelConfig, ModelFamily } from '../family';
import { llamaCanonicalKey, llamaConfigForTask, loadLlamaFolder, taskFromConfig, writeLlamaFolder } from './folder';
import { CLASS_PREFIX, configNumLabels, firstEos, headDim, kvHeads, LLAMA_MODEL_TYPES, type LlamaConfig, parseConfig } from './config';
import { namedModules } from './modules';
import { LlamaLoraModel } from './model';
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

export const LLAMA_FAMILY: ModelFamily = {
  model_types: LLAMA_MODEL_TYPES,
  parseConfig,
  taskFromConfig: (c): Task => taskFromConfig(llama(c)),
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
  // every config parseConfig accepts can be loaded and run (RoPE types and sizes are checked there)
  assertRunnable: () => undefined,
  load: (dir, opts) => loadLlamaFolder(dir, opts),
  canonicalKey: (key, c) => llamaCanonicalKey(key, llama(c)),
  write: (outDir, src, weights) => writeLlamaFolder(outDir, src, weights),
  configForTask: (c, task, numLabels, warnings) => llamaConfigForTask(llama(c), task, numLabels, warnings),
  createModel: (spec) => LlamaLoraModel.create(spec),
};
