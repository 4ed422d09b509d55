/**
 * The module table of the Llama family, exactly as PyTorch's `model.named_modules()` lists it for transformers'
 * LlamaForCausalLM / LlamaForSequenceClassification and their Qwen2* / Mistral* twins: same names, same order
 * (registration order in modeling_llama.py / modeling_qwen2.py / modeling_mistral.py, transformers 4.5x–v5:
 * rotary_emb lives once on the base model, after norm), same class names. Built from config.json alone.
 */
import { biases, CLASS_PREFIX, headDim, kvHeads, type LlamaConfig, tiedEmbeddings } from './config';
import type { Task } from '../../task';
import type { ModuleInfo, ModuleType } from '../../protocol';

/**
 * What ACT2FN["silu"] instantiates in current transformers (SiLUActivation; 4.3x–4.5x printed torch's SiLU).
 * hidden_act is checked to be "silu" by parseConfig.
 */
export const SILU_CLASS: ModuleType = 'SiLUActivation';

/** Every module of the model, root '' first, in `named_modules()` order. */
export function namedModules(config: LlamaConfig, task: Task, num_labels: number): ModuleInfo[] {
  const P = CLASS_PREFIX[config.model_type];
  const H = config.hidden_size;
  const I = config.intermediate_size;
  const q = config.num_attention_heads * headDim(config);
  const kv = kvHeads(config) * headDim(config);
  const b = biases(config);
  const out: ModuleInfo[] = [];
  const bare = (name: string, type: ModuleType) => out.push({ name, type, params: 0, weight_keys: [] });
  const linear = (name: string, inF: number, outF: number, bias: boolean) =>
    out.push({
      name, type: 'Linear', in_features: inF, out_features: outF, params: inF * outF + (bias ? outF : 0),
      weight_keys: bias ? [`${name}.weight`, `${name}.bias`] : [`${name}.weight`],
    });
  const rmsNorm = (name: string) =>
    out.push({ name, type: `${P}RMSNorm`, in_features: H, out_features: H, params: H, weight_keys: [`${name}.weight`] });

  bare('', task === 'seq-cls' ? `${P}ForSequenceClassification` : `${P}ForCausalLM`);
  bare('model', `${P}Model`);
  out.push({ name: 'model.embed_tokens', type: 'Embedding', in_features: config.vocab_size, out_features: H, params: config.vocab_size * H, weight_keys: ['model.embed_tokens.weight'] });
  bare('model.layers', 'ModuleList');
  for (let i = 0; i < config.num_hidden_layers; i++) {
    const l = `model.layers.${i}`;
    bare(l, `${P}DecoderLayer`);
    bare(`${l}.self_attn`, `${P}Attention`);
    linear(`${l}.self_attn.q_proj`, H, q, b.qkv);
    linear(`${l}.self_attn.k_proj`, H, kv, b.qkv);
    linear(`${l}.self_attn.v_proj`, H, kv, b.qkv);
    linear(`${l}.self_attn.o_proj`, q, H, b.o);
    bare(`${l}.mlp`, `${P}MLP`);
    linear(`${l}.mlp.gate_proj`, H, I, b.mlp);
    linear(`${l}.mlp.up_proj`, H, I, b.mlp);
    linear(`${l}.mlp.down_proj`, I, H, b.mlp);
    bare(`${l}.mlp.act_fn`, SILU_CLASS);
    rmsNorm(`${l}.input_layernorm`);
    rmsNorm(`${l}.post_attention_layernorm`);
  }
  rmsNorm('model.norm');
  bare('model.rotary_emb', `${P}RotaryEmbedding`);
  if (task === 'seq-cls') {
    // nn.Linear(hidden_size, num_labels, bias=False)
    out.push({ name: 'score', type: 'Linear', in_features: H, out_features: num_labels, params: H * num_labels, weight_keys: ['score.weight'], is_head: true });
  } else if (tiedEmbeddings(config)) {
    // nn.Linear(hidden_size, vocab_size, bias=False), weight tied to embed_tokens: counted once, there
    out.push({ name: 'lm_head', type: 'Linear', in_features: H, out_features: config.vocab_size, params: 0, weight_keys: [], is_head: true, tied_to: 'model.embed_tokens' });
  } else {
    out.push({ name: 'lm_head', type: 'Linear', in_features: H, out_features: config.vocab_size, params: H * config.vocab_size, weight_keys: ['lm_head.weight'], is_head: true });
  }
  return out;
}
