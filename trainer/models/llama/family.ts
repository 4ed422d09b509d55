/**
 * The Llama family as a ModelFamily (models/family.ts): transformers' LlamaForCausalLM /
 * LlamaForSequenceClassification and their Qwen2 and Mistral twins — all nn.Linear, RMSNorm, RoPE, grouped-query
 * attention. config.json, the module table, the weight shapes, PEFT's defaults, and the folders both ways
 * (folder.ts) live here; the trainable model is createModel's.
 */
import { LoraStudioError } from '../../errors';
import type { ModelConfig, ModelFamily } from '../family';
import { llamaCanonicalKey, llamaConfigForTask, loadLlamaFolder, taskFromConfig, writeLlamaFolder } from './folder';
import { CLASS_PREFIX, configNumLabels, firstEos, headDim, kvHeads, LLAMA_MODEL_TYPES, type LlamaConfig, parseConfig, tiedEmbeddings } from './config';
import { namedModules } from './modules';
import { checkFitsHeap, heapWeights } from './memory';
import { isConv1D, llamaWeightShapes } from './weights';
import type { Task } from '../../task';

/** PEFT's default for model_type llama, mistral and qwen2 (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
export const LLAMA_DEFAULT_TARGET_MODULES = ['q_proj', 'v_proj'];

const llama = (c: ModelConfig) => c as LlamaConfig;


export const LLAMA_FAMILY: ModelFamily = {
  model_types: LLAMA_MODEL_TYPES,
  parseConfig,
  positionsField: 'max_position_embeddings',
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
    loraKind: (module) =>
      (/^model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)$/.test(module) || module === 'score' || (module === 'lm_head' && !tiedEmbeddings(llama(c))) ? 'Linear' : undefined),
    whyNotLora: (module) =>
      module === 'lm_head'
        ? 'lm_head is tied to model.embed_tokens in this model (tie_word_embeddings); LoRA on a tied lm_head is not supported'
        : `only the Linear layers (q/k/v/o_proj, gate/up/down_proj${tiedEmbeddings(llama(c)) ? '' : ', lm_head'}, score) can carry LoRA`,
  }),
  // every config parseConfig accepts can be loaded and run (RoPE types and sizes are checked there)
  assertRunnable: () => undefined,
  // every weight of the causal-lm model (a seq-cls head is a few rows more), in 16 bits where stored so
  assertFitsBackend: (c, backend, file, stored) => checkFitsHeap(llama(c), heapWeights(llamaWeightShapes(llama(c), 'causal-lm'), stored), file, backend),
  load: (dir, opts) => loadLlamaFolder(dir, opts),
  canonicalKey: (key, c) => llamaCanonicalKey(key, llama(c)),
  write: (outDir, src, weights) => writeLlamaFolder(outDir, src, weights),
  configForTask: (c, task, numLabels, warnings) => llamaConfigForTask(llama(c), task, numLabels, warnings),
  // required here, not imported: the model code and TensorFlow.js load when a model is made (as GPT-2's)
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a deferred load, typed by the import type
  createModel: (spec) => (require('./model') as typeof import('./model')).LlamaLoraModel.create(spec),
};
