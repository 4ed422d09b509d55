/**
 * Packing for causal-lm: documents' token ids are joined with eos between them and cut into blocks of
 * exactly block_size, like transformers' run_clm group_texts. The leftover tail shorter than a block is
 * dropped (and counted), except when there is no full block at all: then the tail is the one block.
 */
export interface Packed {
  blocks: number[][];
  /** tokens in the dropped tail */
  dropped_tokens: number;
  total_tokens: number;
}

export function packBlocks(docs: number[][], blockSize: number, eosTokenId: number): Packed {
  const all: number[] = [];
  docs.forEach((doc, i) => {
    if (i > 0) all.push(eosTokenId);
    for (const id of doc) all.push(id);
  });
  const full = Math.floor(all.length / blockSize);
  if (full === 0) return { blocks: all.length ? [all] : [], dropped_tokens: 0, total_tokens: all.length };
  const blocks: number[][] = [];
  for (let b = 0; b < full; b++) blocks.push(all.slice(b * blockSize, (b + 1) * blockSize));
  return { blocks, dropped_tokens: all.length - full * blockSize, total_tokens: all.length };
}
