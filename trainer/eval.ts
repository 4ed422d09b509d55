/**
 * Evaluation and generation on a LoraModel: causal-lm loss/perplexity over predicted tokens, seq-cls
 * loss/accuracy/weighted F1 (as sklearn's f1_score(average='weighted')), and generation (greedy or seeded
 * sampling with temperature, top-k and top-p: sampling.ts), through the model's KV-cache decoder when it has one.
 */
import { batches, collate, type Example } from './data/collate';
import { LoraStudioError } from './errors';
import type { LoraModel } from './models/family';
import { Rng } from './util/rng';
import { argmax, checkSamplingOptions, nextToken, type SamplingOptions } from './sampling';

export interface CausalMetrics {
  /** total NLL / number of predicted tokens, over every example */
  loss: number;
  perplexity: number;
  num_tokens: number;
}

export interface SeqClsMetrics {
  /** mean cross entropy over examples */
  loss: number;
  accuracy: number;
  /** sklearn f1_score(average='weighted') */
  f1: number;
  num_examples: number;
}

export interface EvalOptions {
  batch_size: number;
  pad_token_id: number;
}

export async function evaluate(model: LoraModel, examples: Example[], opts: EvalOptions): Promise<CausalMetrics | SeqClsMetrics> {
  if (!(Number.isInteger(opts.batch_size) && opts.batch_size >= 1)) throw new LoraStudioError(`must be a positive integer, got ${opts.batch_size}`, undefined, 'per_device_eval_batch_size');
  if (model.task === 'causal-lm') {
    let nll = 0;
    let count = 0;
    for (const group of batches(examples, opts.batch_size)) {
      const r = await model.nllSum(collate(group, opts.pad_token_id));
      nll += r.nll;
      count += r.count;
    }
    const loss = count > 0 ? nll / count : NaN;
    return { loss, perplexity: Math.exp(loss), num_tokens: count };
  }
  const preds: number[] = [];
  const labels: number[] = [];
  let nll = 0;
  for (const group of batches(examples, opts.batch_size)) {
    const batch = collate(group, opts.pad_token_id);
    if (!batch.labels) throw new LoraStudioError('every seq-cls eval example needs a label', undefined, 'label');
    const logits = model.logits(batch, { training: false });
    const data = (await logits.data()) as Float32Array;
    logits.dispose();
    const L = data.length / group.length;
    for (let b = 0; b < group.length; b++) {
      const row = data.subarray(b * L, (b + 1) * L);
      const label = batch.labels[b];
      if (!(label >= 0 && label < L)) throw new LoraStudioError(`label ${label} is outside [0, ${L})`, undefined, 'label');
      nll += logSumExp(row) - row[label];
      preds.push(argmax(row));
      labels.push(label);
    }
  }
  const n = labels.length;
  const correct = preds.reduce((a, p, i) => a + (p === labels[i] ? 1 : 0), 0);
  return { loss: n ? nll / n : NaN, accuracy: n ? correct / n : NaN, f1: weightedF1(preds, labels), num_examples: n };
}

/**
 * sklearn's f1_score(labels, preds, average='weighted'): per-class F1 over the classes seen in either list,
 * weighted by each class's support in `labels`; a class with no true positives scores 0 (zero_division=0).
 */
export function weightedF1(preds: number[], labels: number[]): number {
  if (preds.length !== labels.length) throw new Error(`weightedF1: ${preds.length} predictions for ${labels.length} labels`);
  if (labels.length === 0) return 0;
  // one pass with per-class counts (not a pass per class: 100k classes × 100k rows would never end)
  const tp = new Map<number, number>();
  const fp = new Map<number, number>();
  const fn = new Map<number, number>();
  const inc = (m: Map<number, number>, k: number) => m.set(k, (m.get(k) ?? 0) + 1);
  for (let i = 0; i < labels.length; i++) {
    if (preds[i] === labels[i]) inc(tp, labels[i]);
    else {
      inc(fp, preds[i]);
      inc(fn, labels[i]);
    }
  }
  let total = 0;
  for (const c of new Set([...tp.keys(), ...fn.keys()])) {
    const t = tp.get(c) ?? 0;
    const support = t + (fn.get(c) ?? 0);
    total += t === 0 ? 0 : ((2 * t) / (2 * t + (fp.get(c) ?? 0) + (fn.get(c) ?? 0))) * support;
  }
  return total / labels.length;
}

export interface GenerateOptions extends SamplingOptions {
  max_new_tokens: number;
  seed: number;
  /** one id, or several (Llama 3's config.json lists several): generation stops after any of them */
  eos_token_id?: number | number[];
}

/**
 * Continues `promptIds` with up to max_new_tokens tokens and returns only the new ones (eos included when hit).
 * Stops early at eos, and when the sequence fills maxPositions. With the model's decoder (a KV cache) the prompt
 * is fed once and then one token per step; without one, every step recomputes the whole sequence.
 */
export async function generate(model: LoraModel, promptIds: number[], opts: GenerateOptions): Promise<number[]> {
  if (model.task !== 'causal-lm') throw new LoraStudioError('generation needs a causal-lm model', undefined, 'task');
  if (promptIds.length === 0) throw new LoraStudioError('the prompt is empty; it needs at least one token', undefined, 'prompt');
  const limit = model.maxPositions;
  if (promptIds.length > limit) throw new LoraStudioError(`the prompt has ${promptIds.length} tokens, more than the model's ${limit} positions`, undefined, 'prompt');
  if (!(Number.isInteger(opts.max_new_tokens) && opts.max_new_tokens >= 0)) throw new LoraStudioError(`must be a whole number ≥ 0, got ${opts.max_new_tokens}`, undefined, 'max_new_tokens');
  checkSamplingOptions(opts);
  const eos = new Set(opts.eos_token_id === undefined ? [] : [opts.eos_token_id].flat());
  const rng = new Rng(opts.seed);
  const ids = [...promptIds];
  const out: number[] = [];
  if (opts.max_new_tokens === 0 || ids.length >= limit) return out;
  const decoder = model.decoder?.();
  try {
    // the logits after the last token so far: the prompt fed once, then only each new token
    const step = async (fresh: number[]): Promise<ArrayLike<number>> => {
      if (decoder) return decoder.feed(fresh);
      const logits = model.lastLogits(collate([{ input_ids: ids }], model.pad_token_id));
      const row = await logits.data();
      logits.dispose();
      return row;
    };
    let row = await step(ids);
    for (;;) {
      const next = nextToken(row, opts, rng);
      out.push(next);
      ids.push(next);
      if (eos.has(next) || out.length >= opts.max_new_tokens || ids.length >= limit) return out;
      row = await step([next]);
    }
  } finally {
    decoder?.dispose();
  }
}

function logSumExp(row: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i] - max);
  return max + Math.log(s);
}
