/**
 * The llama bench's workload: SmolLM2-135M's shapes (test/util/llama_configs.ts) with random weights (seeded),
 * LoRA r=8 on every layer's q_proj and v_proj (PEFT's default for llama), causal-lm; and the random weights of any
 * Llama-family config, for the memory run's Qwen2.5-0.5B-shaped folder. The batches are setup.ts's benchExamples.
 */
import { familyFor, parseModelConfig } from '../trainer/models/registry';
import type { ModelConfig, ModelSpec } from '../trainer/models/family';
import type { LoraTarget } from '../trainer/protocol';
import type { HostTensor, FloatDType } from '../trainer/io/safetensors';
import { Rng } from '../trainer/util/rng';
import { SMOLLM2_135M } from '../test/util/llama_configs';
import { ALPHA, R } from './setup';

/** config.json through the family's own reader (defaults filled in, as a loaded folder has them). */
export function llamaConfig(raw: object = SMOLLM2_135M): ModelConfig {
  return parseModelConfig(raw, 'config.json').config;
}

interface LlamaShape {
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads?: number | null;
  head_dim?: number | null;
}

/** LoRA r=8 on every layer's self_attn.q_proj and self_attn.v_proj (nn.Linear). */
export function llamaTargets(c: ModelConfig): LoraTarget[] {
  const s = c as unknown as LlamaShape;
  const D = s.head_dim ?? s.hidden_size / s.num_attention_heads;
  const kv = (s.num_key_value_heads ?? s.num_attention_heads) * D;
  const out: LoraTarget[] = [];
  for (let i = 0; i < s.num_hidden_layers; i++) {
    const t = (name: string, outF: number): LoraTarget => ({ name: `model.layers.${i}.self_attn.${name}`, type: 'Linear', in_features: s.hidden_size, out_features: outF, r: R, lora_alpha: ALPHA, scaling: ALPHA / R });
    out.push(t('q_proj', s.num_attention_heads * D), t('v_proj', kv));
  }
  return out;
}

/**
 * Every weight of `c` (the family's weightShapes) with normal(0, std) values, norms 1 ± std, in one buffer with a
 * view per tensor, as a safetensors file is read. `dtype` is what the tensors say they were stored as.
 */
export function randomLlamaWeights(c: ModelConfig, seed = 1, std = 0.02, dtype: FloatDType = 'F32'): Map<string, HostTensor> {
  const shapes = familyFor(c).weightShapes(c, 'causal-lm', 2);
  const rng = new Rng(seed);
  const buffer = new Float32Array([...shapes.values()].reduce((n, shape) => n + shape.reduce((a, b) => a * b, 1), 0));
  const out = new Map<string, HostTensor>();
  let offset = 0;
  for (const [key, shape] of shapes) {
    const data = buffer.subarray(offset, offset + shape.reduce((a, b) => a * b, 1));
    offset += data.length;
    const base = /norm\.weight$/.test(key) ? 1 : 0;
    for (let i = 0; i < data.length; i++) data[i] = base + std * rng.normal();
    out.set(key, { shape, data, dtype });
  }
  return out;
}

export function llamaBenchSpec(c: ModelConfig = llamaConfig(), seed = 1): ModelSpec {
  return {
    config: c, task: 'causal-lm', num_labels: 2, weights: randomLlamaWeights(c, seed), targets: llamaTargets(c),
    modules_to_save: [], bias: 'none', lora_dropout: 0.05, init_lora_weights: true, seed,
    pad_token_id: (c.pad_token_id ?? (Array.isArray(c.eos_token_id) ? c.eos_token_id[0] : c.eos_token_id)) ?? 0,
  };
}
