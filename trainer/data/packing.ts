/**
 * Packing for causal-lm: documents' token ids are joined with eos between them (none after a document whose
 * tokenizer post-processor already ended it with eos: never two in a row) and cut into blocks of
 * exactly block_size, like transformers' run_clm group_texts. The leftover tail shorter than a block is
 * dropped (and counted), except when there is no full block at all: then the tail is the one block.
 * Chat documents bring their assistant masks, which are cut along with the ids (the joining eos is no assistant
 * token: 0).
 */
export interface Packed {
  blocks: number[][];
  /** with masks given: each block's assistant mask, aligned with its ids */
  masks?: number[][];
  /** tokens in the dropped tail */
  dropped_tokens: number;
  total_tokens: number;
}

export function packBlocks(docs: number[][], blockSize: number, eosTokenId: number, masks?: number[][]): Packed {
  const all: number[] = [];
  const allMasks: number[] = [];
  docs.forEach((doc, i) => {
    if (i > 0 && docs[i - 1].at(-1) !== eosTokenId) {
      all.push(eosTokenId);
      allMasks.push(0);
    }
    for (const id of doc) all.push(id);
    if (masks) for (const m of masks[i]) allMasks.push(m);
  });
  if (masks && allMasks.length !== all.length) throw new Error('packBlocks: masks do not match the documents');
  const full = Math.floor(all.length / blockSize);
  if (full === 0) {
    const one = all.length ? [all] : [];
    return { blocks: one, ...(masks ? { masks: all.length ? [allMasks] : [] } : {}), dropped_tokens: 0, total_tokens: all.length };
  }
  const cut = (xs: number[]) => Array.from({ length: full }, (_, b) => xs.slice(b * blockSize, (b + 1) * blockSize));
  return { blocks: cut(all), ...(masks ? { masks: cut(allMasks) } : {}), dropped_tokens: all.length - full * blockSize, total_tokens: all.length };
}
