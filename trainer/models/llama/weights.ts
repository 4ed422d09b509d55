/**
 * Every weight a Llama-family checkpoint holds, by its Hugging Face key (as LlamaForCausalLM /
 * LlamaForSequenceClassification and their Qwen2/Mistral twins write it), with its shape. Every projection is
 * nn.Linear, weight [out, in]. lm_head.weight is absent when tie_word_embeddings (it is model.embed_tokens.weight).
 */
import { biases, headDim, kvHeads, type LlamaConfig, tiedEmbeddings } from './config';
import type { Task } from '../../task';
import { halfShapeOk } from '../../ops/half_shape';

export function llamaWeightShapes(c: LlamaConfig, task: Task, numLabels = 2): Map<string, number[]> {
  const H = c.hidden_size;
  const I = c.intermediate_size;
  const q = c.num_attention_heads * headDim(c);
  const kv = kvHeads(c) * headDim(c);
  const b = biases(c);
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [c.vocab_size, H]);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const l = `model.layers.${i}.`;
    const linear = (name: string, inF: number, outF: number, bias: boolean) => {
      m.set(`${l}${name}.weight`, [outF, inF]);
      if (bias) m.set(`${l}${name}.bias`, [outF]);
    };
    linear('self_attn.q_proj', H, q, b.qkv);
    linear('self_attn.k_proj', H, kv, b.qkv);
    linear('self_attn.v_proj', H, kv, b.qkv);
    linear('self_attn.o_proj', q, H, b.o);
    linear('mlp.gate_proj', H, I, b.mlp);
    linear('mlp.up_proj', H, I, b.mlp);
    linear('mlp.down_proj', I, H, b.mlp);
    m.set(`${l}input_layernorm.weight`, [H]);
    m.set(`${l}post_attention_layernorm.weight`, [H]);
  }
  m.set('model.norm.weight', [H]);
  if (task === 'seq-cls') m.set('score.weight', [numLabels, H]);
  else if (!tiedEmbeddings(c)) m.set('lm_head.weight', [c.vocab_size, H]);
  return m;
}

/** No Conv1D in this family: every LoRA module is nn.Linear (PEFT's fan_in_fan_out false). */
export function isConv1D(_module: string): boolean {
  return false;
}

/**
 * Whether the model may hold this base weight in 16 bits when the file stores it so (models/plan.ts halfOk; the
 * heap check counts it at 2 bytes): every Linear weight, embed_tokens and lm_head, with an even row width.
 */
export function llamaHalfOk(key: string, shape: readonly number[] | undefined): boolean {
  return (/_proj\.weight$/.test(key) || key === 'model.embed_tokens.weight' || key === 'lm_head.weight') && shape !== undefined && halfShapeOk(shape);
}
