/**
 * Tiny random Hugging Face folders of the Llama family (model_type llama, qwen2, mistral) for tests: config.json,
 * weights (F32/F16/BF16, one model.safetensors or 2+ shards with model.safetensors.index.json), and a tokenizer
 * that @huggingface/tokenizers loads — a byte-level BPE whose vocabulary is exactly config.vocab_size, with the
 * family's special tokens, a TemplateProcessing post-processor that adds BOS (as Llama 3's does), and a
 * tokenizer_config.json with bos/eos/pad tokens and a small chat_template.
 *
 *   const f = writeLlamaFolder(dir, { model_type: 'qwen2', dtype: 'BF16', sharded: true, task: 'seq-cls' });
 *   f.weights   // canonical keys (llamaWeightShapes), values exactly representable in the stored dtype
 *   f.tokens    // { bos_token_id, eos_token_id, pad_token_id, … } as written
 *
 * Nothing here is trainer code: it only writes files, so loaders can be tested against them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLASS_PREFIX, DEFAULTS, type LlamaConfig, type LlamaModelType } from '../../trainer/models/llama/config';
import { llamaWeightShapes } from '../../trainer/models/llama/weights';
import { f16ToF32, f32ToBf16, f32ToF16, type FloatDType, type HostTensor, writeSafetensors } from '../../trainer/io/safetensors';
import { byteLevelBpe } from '../../trainer/tokenizer/byte_level';
import { Rng } from '../../trainer/util/rng';
import type { Task } from '../../trainer/task';

export interface LlamaFolderOptions {
  /** default 'llama' */
  model_type?: LlamaModelType;
  /** config.json fields over the tiny defaults (vocab_size defaults to the tokenizer's size) */
  config?: Partial<Omit<LlamaConfig, 'model_type'>>;
  /** stored dtype of every tensor (default F32) */
  dtype?: FloatDType;
  /** false (default): model.safetensors; true: 2 shards; a number ≥ 2: that many shards, with the index */
  sharded?: boolean | number;
  /** tie_word_embeddings (default: true for qwen2, false for llama and mistral); tied causal-lm has no lm_head.weight */
  tied?: boolean;
  /** default 'causal-lm'; 'seq-cls' writes score.weight and …ForSequenceClassification, num_labels, id2label, label2id */
  task?: Task;
  /** seq-cls head size (default 3) */
  num_labels?: number;
  /** seeds the weights (default 1) */
  seed?: number;
  /** std of the normal weights (default 0.2; RMSNorm weights are 1 + std·N(0,1)) */
  std?: number;
  /** a pad token in tokenizer_config.json and pad_token_id in config.json (default true) */
  pad?: boolean;
  /** whether the post-processor adds BOS (default: true for llama and mistral; false for qwen2, as Qwen2.5 does) */
  addBos?: boolean;
  /** ASCII words that get one token each (with and without the leading-space marker), as byte_level.ts does */
  words?: string[];
  /** weight keys to leave out of the checkpoint (to test a loader's errors) */
  omit?: string[];
  /** tensors written besides the canonical ones (any key, any shape; dtype as given) */
  extra?: Map<string, HostTensor>;
  /** write the tokenizer files (default true) */
  tokenizer?: boolean;
}

/** The special tokens of the tiny tokenizer, by id, as written. */
export interface LlamaTokens {
  bos_token: string;
  eos_token: string;
  pad_token: string | null;
  bos_token_id: number;
  eos_token_id: number;
  pad_token_id: number | null;
  /** every special token's id by its text */
  special: Record<string, number>;
}

export interface LlamaFolder {
  dir: string;
  config: LlamaConfig;
  /** canonical keys → values as stored (exactly representable in `dtype`), without `omit` and `extra` */
  weights: Map<string, HostTensor>;
  tokens: LlamaTokens;
  /** the files written, by name */
  files: string[];
}

/** Each family's special tokens: the first is BOS, the second EOS, the third pad (when `pad`), then the chat markers. */
const SPECIALS: Record<LlamaModelType, { bos: string; eos: string; pad: string; more: string[] }> = {
  llama: { bos: '<|begin_of_text|>', eos: '<|eot_id|>', pad: '<|finetune_right_pad_id|>', more: ['<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>'] },
  qwen2: { bos: '<|endoftext|>', eos: '<|im_end|>', pad: '<|fim_pad|>', more: ['<|im_start|>'] },
  mistral: { bos: '<s>', eos: '</s>', pad: '<pad>', more: ['<unk>', '[INST]', '[/INST]'] },
};

/** Simple chat templates in each family's style (Llama 3 puts {{ bos_token }} first; Qwen2 is ChatML). */
export const CHAT_TEMPLATES: Record<LlamaModelType, string> = {
  llama:
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n{{ message['content'] | trim }}<|eot_id|>{% endfor %}" +
    '{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}',
  qwen2:
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}" +
    '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}',
  mistral:
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}[INST] {{ message['content'] }} [/INST]" +
    "{% else %} {{ message['content'] }}{{ eos_token }}{% endif %}{% endfor %}",
};

/** The tiny dimensions (vocab_size comes from the tokenizer). */
export const TINY_LLAMA_DIMS = {
  hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
  max_position_embeddings: 64, rms_norm_eps: 1e-6, rope_theta: 10000, initializer_range: 0.02,
} as const;

/**
 * A byte-level BPE tokenizer.json for `model_type`: the 256 byte tokens (GPT-2's order), merges for `words`, then
 * the family's special tokens as added tokens. With `addBos`, the post-processor is Llama 3's: a Sequence of
 * ByteLevel and a TemplateProcessing that puts BOS before every text (never EOS).
 */
export function llamaTokenizer(model_type: LlamaModelType, opts: { pad?: boolean; addBos?: boolean; words?: string[] } = {}): {
  tokenizerJson: Record<string, unknown>; tokenizerConfig: Record<string, unknown>; vocabSize: number; tokens: LlamaTokens;
} {
  const { vocab, merges } = byteLevelBpe(opts.words ?? []);
  const s = SPECIALS[model_type];
  const pad = opts.pad ?? true;
  const specials = [s.bos, s.eos, ...(pad ? [s.pad] : []), ...s.more];
  const special: Record<string, number> = {};
  let next = Object.keys(vocab).length;
  for (const t of specials) special[t] = next++;
  const addBos = opts.addBos ?? model_type !== 'qwen2';
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const template = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: s.bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: s.bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: s.bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { [s.bos]: { id: s.bos, ids: [special[s.bos]], tokens: [s.bos] } },
  };
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content) => ({ id: special[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { ...byteLevel },
    post_processor: addBos ? { type: 'Sequence', processors: [{ ...byteLevel, trim_offsets: false }, template] } : { ...byteLevel, trim_offsets: false },
    decoder: { ...byteLevel },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
  const tokenizerConfig = {
    add_bos_token: addBos,
    add_eos_token: false,
    bos_token: model_type === 'qwen2' && !addBos ? null : s.bos,
    eos_token: s.eos,
    pad_token: pad ? s.pad : null,
    clean_up_tokenization_spaces: false,
    model_max_length: TINY_LLAMA_DIMS.max_position_embeddings,
    tokenizer_class: model_type === 'qwen2' ? 'Qwen2TokenizerFast' : 'PreTrainedTokenizerFast',
    chat_template: CHAT_TEMPLATES[model_type],
  };
  const tokens: LlamaTokens = {
    bos_token: s.bos, eos_token: s.eos, pad_token: pad ? s.pad : null,
    bos_token_id: special[s.bos], eos_token_id: special[s.eos], pad_token_id: pad ? special[s.pad] : null, special,
  };
  return { tokenizerJson, tokenizerConfig, vocabSize: next, tokens };
}

/** Values rounded to what `dtype` stores, so a write → read round trip is exact. */
function asStored(data: Float32Array, dtype: FloatDType): Float32Array {
  if (dtype === 'F16') for (let i = 0; i < data.length; i++) data[i] = f16ToF32(f32ToF16(data[i]));
  if (dtype === 'BF16') {
    const u = new Uint32Array(data.buffer, data.byteOffset, data.length);
    for (let i = 0; i < data.length; i++) u[i] = f32ToBf16(data[i]) << 16;
  }
  return data;
}

/** The config.json the builder writes (tiny dimensions, the family's defaults, the task's architectures). */
export function tinyLlamaConfig(opts: LlamaFolderOptions = {}, vocabSize?: number, tokens?: LlamaTokens): LlamaConfig {
  const model_type = opts.model_type ?? 'llama';
  const task = opts.task ?? 'causal-lm';
  const numLabels = opts.num_labels ?? 3;
  const tok = tokens ?? llamaTokenizer(model_type, opts).tokens;
  const config: LlamaConfig = {
    model_type,
    ...DEFAULTS[model_type],
    ...TINY_LLAMA_DIMS,
    hidden_act: 'silu',
    architectures: [`${CLASS_PREFIX[model_type]}${task === 'seq-cls' ? 'ForSequenceClassification' : 'ForCausalLM'}`],
    vocab_size: vocabSize ?? llamaTokenizer(model_type, opts).vocabSize,
    tie_word_embeddings: opts.tied ?? model_type === 'qwen2',
    bos_token_id: tok.bos_token_id,
    eos_token_id: tok.eos_token_id,
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[opts.dtype ?? 'F32'],
  };
  if (tok.pad_token_id !== null) config.pad_token_id = tok.pad_token_id;
  if (task === 'seq-cls') {
    config.num_labels = numLabels;
    config.id2label = Object.fromEntries(Array.from({ length: numLabels }, (_, i) => [String(i), `LABEL_${i}`]));
    config.label2id = Object.fromEntries(Array.from({ length: numLabels }, (_, i) => [`LABEL_${i}`, i]));
  }
  return { ...config, ...opts.config } as LlamaConfig;
}

/**
 * Writes a tiny random Llama-family folder into `dir` (created if needed) and returns what it wrote. Every
 * RMSNorm weight is 1 + std·N(0,1); every other tensor std·N(0,1); values are rounded to `dtype` first.
 */
export function writeLlamaFolder(dir: string, opts: LlamaFolderOptions = {}): LlamaFolder {
  const model_type = opts.model_type ?? 'llama';
  const task = opts.task ?? 'causal-lm';
  const numLabels = opts.num_labels ?? 3;
  const dtype = opts.dtype ?? 'F32';
  const tok = llamaTokenizer(model_type, opts);
  const config = tinyLlamaConfig(opts, tok.vocabSize, tok.tokens);
  if (config.vocab_size < tok.vocabSize) throw new Error(`vocab_size ${config.vocab_size} is below the tokenizer's ${tok.vocabSize} tokens`);
  const rng = new Rng(opts.seed ?? 1);
  const std = opts.std ?? 0.2;
  const weights = new Map<string, HostTensor>();
  for (const [key, shape] of llamaWeightShapes(config, task, numLabels)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const norm = key.endsWith('norm.weight');
    for (let i = 0; i < data.length; i++) data[i] = (norm ? 1 : 0) + std * rng.normal();
    weights.set(key, { shape, data: asStored(data, dtype), dtype });
  }
  const stored = new Map([...weights].filter(([k]) => !(opts.omit ?? []).includes(k)));
  for (const [k, t] of opts.extra ?? []) stored.set(k, t);

  fs.mkdirSync(dir, { recursive: true });
  const files = ['config.json'];
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const shards = opts.sharded === true ? 2 : typeof opts.sharded === 'number' ? opts.sharded : 1;
  if (shards < 2) {
    writeSafetensors(path.join(dir, 'model.safetensors'), stored, { format: 'pt' });
    files.push('model.safetensors');
  } else {
    const keys = [...stored.keys()];
    const per = Math.ceil(keys.length / shards);
    const weight_map: Record<string, string> = {};
    let total = 0;
    for (let s = 0; s < shards; s++) {
      const name = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = new Map(keys.slice(s * per, (s + 1) * per).map((k) => [k, stored.get(k)!]));
      for (const [k, t] of part) {
        weight_map[k] = name;
        total += t.data.length * (t.dtype === 'F32' ? 4 : 2);
      }
      writeSafetensors(path.join(dir, name), part, { format: 'pt' });
      files.push(name);
    }
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map }, null, 2));
    files.push('model.safetensors.index.json');
  }
  if (opts.tokenizer ?? true) {
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tok.tokenizerJson));
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tok.tokenizerConfig, null, 2));
    files.push('tokenizer.json', 'tokenizer_config.json');
  }
  return { dir, config, weights, tokens: tok.tokens, files };
}
