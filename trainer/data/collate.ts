/**
 * Examples → padded batches: dynamic padding to the longest example in the batch (right padding),
 * with an attention mask. Truncation happens earlier, when examples are tokenized.
 */
export interface Example {
  input_ids: number[];
  /** seq-cls: the class id */
  label?: number;
  /** chat data: 1 for the tokens the causal loss covers (the assistant's, TRL's `assistant_masks`), 0 elsewhere */
  assistant_masks?: number[];
}

export interface Batch {
  batch_size: number;
  seq_len: number;
  /** [batch_size * seq_len], row-major, right-padded with pad_token_id */
  input_ids: Int32Array;
  /** [batch_size * seq_len]: 1 for real tokens, 0 for padding */
  attention_mask: Int32Array;
  /** seq-cls: [batch_size] */
  labels?: Int32Array;
  /**
   * chat data, [batch_size * seq_len]: 1 where the token is one the causal loss predicts (an assistant token), 0
   * elsewhere; absent, every real token is. An example without a mask in a batch that has one gets 1s.
   */
  assistant_masks?: Int32Array;
  /** number of real tokens in the batch */
  num_tokens: number;
}

export function collate(examples: Example[], padTokenId: number): Batch {
  if (examples.length === 0) throw new Error('collate: empty batch');
  const B = examples.length;
  const T = Math.max(1, ...examples.map((e) => e.input_ids.length));
  const input_ids = new Int32Array(B * T).fill(padTokenId);
  const attention_mask = new Int32Array(B * T);
  let num_tokens = 0;
  examples.forEach((e, b) => {
    input_ids.set(e.input_ids, b * T);
    attention_mask.fill(1, b * T, b * T + e.input_ids.length);
    num_tokens += e.input_ids.length;
  });
  const hasLabels = examples.every((e) => e.label !== undefined);
  const batch: Batch = {
    batch_size: B,
    seq_len: T,
    input_ids,
    attention_mask,
    labels: hasLabels ? Int32Array.from(examples.map((e) => e.label!)) : undefined,
    num_tokens,
  };
  if (examples.some((e) => e.assistant_masks !== undefined)) {
    const masks = new Int32Array(B * T);
    examples.forEach((e, b) => {
      if (e.assistant_masks === undefined) masks.fill(1, b * T, b * T + e.input_ids.length);
      else if (e.assistant_masks.length !== e.input_ids.length) throw new Error(`collate: example ${b} has ${e.assistant_masks.length} mask entries for ${e.input_ids.length} tokens`);
      else masks.set(e.assistant_masks, b * T);
    });
    batch.assistant_masks = masks;
  }
  return batch;
}

/** Splits examples into consecutive batches of at most `size`. */
export function batches<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * For each position, the next real token (the target), or -1 where nothing is predicted: as transformers' labels
 * shifted by one, with -100 where the next token is padding or, with `assistant_masks`, not an assistant token.
 */
export function causalTargets(batch: Batch): { targets: Int32Array; count: number } {
  const { batch_size: B, seq_len: T, input_ids, attention_mask, assistant_masks: counted } = batch;
  const targets = new Int32Array(B * T).fill(-1);
  let count = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t + 1 < T; t++) {
      const i = b * T + t;
      if (attention_mask[i + 1] === 1 && attention_mask[i] === 1 && (counted === undefined || counted[i + 1] === 1)) {
        targets[i] = input_ids[i + 1];
        count++;
      }
    }
  }
  return { targets, count };
}

/** Each row's last real token: position sum(mask) − 1 of T (right padding), 0 for an empty row. */
export function lastRealPositions(batch: Batch): Int32Array {
  const { batch_size: B, seq_len: T, attention_mask } = batch;
  const at = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    let n = 0;
    for (let t = 0; t < T; t++) n += attention_mask[b * T + t];
    at[b] = Math.max(n - 1, 0);
  }
  return at;
}
