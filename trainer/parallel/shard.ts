/**
 * Splitting one collated batch into row shards for data-parallel workers, and the loss denominator every shard
 * divides by, so that the shards' gradients sum to the whole batch's gradient. Shards keep the whole batch's
 * padded length, so each row sees exactly what it sees in the whole batch (dropout masks included).
 */
import { type Batch, causalTargets } from '../data/collate';
import type { Task } from '../task';

export interface Shard {
  batch: Batch;
  /** index of the shard's first row in the whole batch */
  rowOffset: number;
}

/** Up to `parts` contiguous, nearly equal row ranges (none empty). */
export function shardBatch(batch: Batch, parts: number): Shard[] {
  const B = batch.batch_size;
  const T = batch.seq_len;
  const n = Math.max(1, Math.min(parts, B));
  const out: Shard[] = [];
  let start = 0;
  for (let i = 0; i < n; i++) {
    const rows = Math.floor(B / n) + (i < B % n ? 1 : 0);
    const mask = batch.attention_mask.slice(start * T, (start + rows) * T);
    out.push({
      rowOffset: start,
      batch: {
        batch_size: rows, seq_len: T,
        input_ids: batch.input_ids.slice(start * T, (start + rows) * T), attention_mask: mask,
        labels: batch.labels?.slice(start, start + rows), num_tokens: mask.reduce((a, v) => a + v, 0),
        ...(batch.assistant_masks ? { assistant_masks: batch.assistant_masks.slice(start * T, (start + rows) * T) } : {}),
      },
    });
    start += rows;
  }
  return out;
}

/** What a LoraModel's loss divides the whole batch's summed NLL by. */
export function lossDenominator(batch: Batch, task: Task): number {
  return Math.max(task === 'seq-cls' ? batch.batch_size : causalTargets(batch).count, 1);
}
