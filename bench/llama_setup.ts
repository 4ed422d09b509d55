/**
 * The llama bench's workload: SmolLM2-135M's shapes (test/util/llama_configs.ts) with random weights (seeded),
 * LoRA r=8 on every layer's q_proj and v_proj (PEFT's default for llama), causal-lm; and the random weights of any
 * Llama-family config, for the memory run's Qwen2.5-0.5B-shaped folder. The batches are setup.ts's benchExamples.
 */
import { familyFor, parseModelConfig } from '../trainer/models/registry';
import type { ModelConfig, ModelSpec } from '../trainer/models/family';
import type { LoraTarget } from '../trainer/protocol';
import { encodeFloatsInto, type FloatDType, halfHost, type HostTensor } from '../trainer/io/safetensors';
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
 * view per tensor, as a safetensors file is read. `dtype` is how they are stored: F32 values as they are; BF16 or
 * F16 rounded to it and held as the stored bits (the loader's halfHost tensors), as a 16-bit file would give them.
 */
export function randomLlamaWeights(c: ModelConfig, seed = 1, std = 0.02, dtype: FloatDType = 'F32'): Map<string, HostTensor> {
  const shapes = familyFor(c).weightShapes(c, 'causal-lm', 2);
  const rng = new Rng(seed);
  const total = [...shapes.values()].reduce((n, shape) => n + shape.reduce((a, b) => a * b, 1), 0);
  const buffer = dtype === 'F32' ? new Float32Array(total) : null;
  const bits = dtype === 'F32' ? null : new Uint16Array(total);
  const out = new Map<string, HostTensor>();
  let offset = 0;
  for (const [key, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = buffer ? buffer.subarray(offset, offset + n) : new Float32Array(n);
    const base = /norm\.weight$/.test(key) ? 1 : 0;
    for (let i = 0; i < n; i++) data[i] = base + std * rng.normal();
    if (bits) {
      const view = bits.subarray(offset, offset + n);
      encodeFloatsInto(data, dtype, new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
      out.set(key, halfHost(shape, view, dtype as 'BF16' | 'F16'));
    } else {
      out.set(key, { shape, data, dtype });
    }
    offset += n;
  }
  return out;
}

/**
 * How the llama case stores its weights: BF16 by default, as SmolLM2-135M is published (and Llama 3.2, Qwen2.5);
 * BENCH_LLAMA_DTYPE=F32 for float32 weights.
 */
export function benchLlamaDtype(): FloatDType {
  const d = process.env.BENCH_LLAMA_DTYPE ?? 'BF16';
  if (d !== 'F32' && d !== 'BF16' && d !== 'F16') throw new Error(`BENCH_LLAMA_DTYPE must be F32, BF16 or F16, got ${d}`);
  return d;
}

export function llamaBenchSpec(c: ModelConfig = llamaConfig(), seed = 1): ModelSpec {
  return {
    config: c, task: 'causal-lm', num_labels: 2, weights: randomLlamaWeights(c, seed, 0.02, benchLlamaDtype()), targets: llamaTargets(c),
    modules_to_save: [], bias: 'none', lora_dropout: 0.05, init_lora_weights: true, seed,
    pad_token_id: (c.pad_token_id ?? (Array.isArray(c.eos_token_id) ? c.eos_token_id[0] : c.eos_token_id)) ?? 0,
  };
}
