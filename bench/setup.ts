/**
 * The bench's workload: GPT-2-small shapes with random weights (seeded), LoRA r=8 on c_attn and attn.c_proj,
 * and seeded random token batches of a fixed length, for causal-lm and seq-cls.
 */
import { type GPT2Config, GPT2_DEFAULTS } from '../trainer/models/gpt2/config';
import { randomGPT2Weights } from '../trainer/models/gpt2/random_init';
import type { Task } from '../trainer/task';
import type { LoraTarget } from '../trainer/protocol';
import type { ModelSpec } from '../trainer/models/family';
import type { Example } from '../trainer/data/collate';
import { Rng } from '../trainer/util/rng';

export const R = 8;
export const ALPHA = 16;
export const NUM_LABELS = 2;

export function smallConfig(over: Partial<GPT2Config> = {}): GPT2Config {
  return { model_type: 'gpt2', ...GPT2_DEFAULTS, ...over } as GPT2Config;
}

/** LoRA r=8 on every block's attn.c_attn and attn.c_proj (PEFT's target_modules ["c_attn", "attn.c_proj"]). */
export function benchTargets(c: GPT2Config): LoraTarget[] {
  const out: LoraTarget[] = [];
  const C = c.n_embd;
  for (let i = 0; i < c.n_layer; i++) {
    out.push({ name: `transformer.h.${i}.attn.c_attn`, type: 'Conv1D', in_features: C, out_features: 3 * C, r: R, lora_alpha: ALPHA, scaling: ALPHA / R });
    out.push({ name: `transformer.h.${i}.attn.c_proj`, type: 'Conv1D', in_features: C, out_features: C, r: R, lora_alpha: ALPHA, scaling: ALPHA / R });
  }
  return out;
}

export function benchSpec(task: Task, c: GPT2Config = smallConfig(), seed = 1): ModelSpec {
  return {
    config: c, task, num_labels: NUM_LABELS, weights: randomGPT2Weights(c, task, NUM_LABELS, seed, 0.02, 'F32'), targets: benchTargets(c),
    modules_to_save: task === 'seq-cls' ? ['score'] : [], bias: 'none', lora_dropout: 0.05, init_lora_weights: true, seed, pad_token_id: c.eos_token_id,
  };
}

/** `n` examples of exactly `T` random tokens (never the pad id), labels for seq-cls. */
export function benchExamples(n: number, T: number, vocab: number, seed: number): Example[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => ({ input_ids: Array.from({ length: T }, () => rng.int(vocab - 1)), label: i % NUM_LABELS }));
}
