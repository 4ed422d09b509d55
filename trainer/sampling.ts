/**
 * Choosing the next token from one row of logits, as transformers' generate does: greedy (argmax) when
 * temperature is 0; otherwise the logits are divided by the temperature, cut to the top_k largest, then to the
 * top_p nucleus, and one token is drawn from the softmax of what is left (TemperatureLogitsWarper,
 * TopKLogitsWarper, TopPLogitsWarper, then multinomial sampling). Host arithmetic in float64.
 */
import { LoraStudioError } from './errors';
import type { Rng } from './util/rng';

export interface SamplingOptions {
  /** 0: greedy (argmax, lowest id on ties); > 0: sample from softmax(logits / temperature) */
  temperature: number;
  /** keep only the top_k largest logits (ties with the k-th kept, as transformers does); 0: off */
  top_k?: number;
  /** keep the smallest set of most probable tokens whose probability sums to ≥ top_p (at least one); 1: off */
  top_p?: number;
}

/** Throws a LoraStudioError naming the field for a value transformers would refuse too. */
export function checkSamplingOptions(o: SamplingOptions): void {
  if (!(o.temperature >= 0 && Number.isFinite(o.temperature))) throw new LoraStudioError(`must be a number ≥ 0, got ${o.temperature}`, undefined, 'temperature');
  const k = o.top_k ?? 0;
  if (!(Number.isInteger(k) && k >= 0)) throw new LoraStudioError(`must be a whole number ≥ 0 (0: off), got ${k}`, undefined, 'top_k');
  const p = o.top_p ?? 1;
  if (!(p > 0 && p <= 1)) throw new LoraStudioError(`must be in (0, 1] (1: off), got ${p}`, undefined, 'top_p');
}

/** The next token id for `row` (the logits after the last position). */
export function nextToken(row: ArrayLike<number>, o: SamplingOptions, rng: Rng): number {
  if (o.temperature === 0) return argmax(row);
  const scaled = Array.from(row, (v) => v / o.temperature);
  const ids = keptIds(scaled, o.top_k ?? 0, o.top_p ?? 1);
  let max = -Infinity;
  for (const i of ids) max = Math.max(max, scaled[i]);
  const weights = ids.map((i) => Math.exp(scaled[i] - max));
  const total = weights.reduce((a, b) => a + b, 0);
  let u = rng.next() * total;
  for (let j = 0; j < ids.length; j++) {
    u -= weights[j];
    if (u < 0) return ids[j];
  }
  return ids[ids.length - 1]; // u landed on the total through rounding
}

/** argmax, the lowest id on ties */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/**
 * The ids that survive top-k, then top-p, on already temperature-scaled logits: most probable first (ties: lower
 * id first), or every id in order when neither cuts. Never empty.
 */
function keptIds(scaled: number[], topK: number, topP: number): number[] {
  if (topK === 0 && topP >= 1) return Array.from(scaled.keys()); // no sort over the whole vocabulary when nothing is cut
  const order = Array.from(scaled.keys()).sort((a, b) => scaled[b] - scaled[a] || a - b);
  let kept = order;
  if (topK > 0 && topK < order.length) {
    const kth = scaled[order[topK - 1]];
    let n = topK;
    while (n < order.length && scaled[order[n]] === kth) n++; // transformers removes only scores < the k-th
    kept = order.slice(0, n);
  }
  if (topP < 1) {
    // the softmax over what top-k left; keep a token while the tokens before it sum to < top_p
    const max = scaled[kept[0]];
    const w = kept.map((i) => Math.exp(scaled[i] - max));
    const total = w.reduce((a, b) => a + b, 0);
    let before = 0;
    let n = 0;
    while (n < kept.length && (n === 0 || before < topP)) before += w[n++] / total;
    kept = kept.slice(0, n);
  }
  return kept;
}
