/**
 * GPT-2's byte-to-unicode table, and a minimal byte-level BPE `tokenizer.json` (256 byte tokens plus
 * `<|endoftext|>`) for the tiny models that tests and the demo build. The tokenizing itself is always
 * done by @huggingface/tokenizers reading a tokenizer.json; this file only writes one.
 */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const table: string[] = new Array(256);
  bs.forEach((b, i) => (table[b] = String.fromCodePoint(cs[i])));
  return table;
}

/**
 * Vocabulary order follows GPT-2: the printable bytes first, as in its encoder.json. Id 256 is `<|endoftext|>`.
 * `words` (ASCII) get whole-word tokens, with and without GPT-2's leading-space marker `Ġ`: each word is merged left to right,
 * then joined to `Ġ`, so the demo's sentences tokenize to one token a word.
 */
/**
 * A byte-level BPE vocabulary and merges: the 256 byte tokens in GPT-2's order, then `reserved` tokens (ids 256, …),
 * then each word of `words` merged left to right and joined to `Ġ`.
 */
export function byteLevelBpe(words: readonly string[], reserved: readonly string[] = []): { vocab: Record<string, number>; merges: string[] } {
  const table = bytesToUnicode();
  const order: number[] = [];
  for (let b = 33; b <= 126; b++) order.push(b);
  for (let b = 161; b <= 172; b++) order.push(b);
  for (let b = 174; b <= 255; b++) order.push(b);
  for (let b = 0; b < 256; b++) if (!order.includes(b)) order.push(b);
  const vocab: Record<string, number> = {};
  order.forEach((b, i) => (vocab[table[b]] = i));
  for (const t of reserved) vocab[t] = Object.keys(vocab).length;
  const merges: string[] = [];
  const addMerge = (left: string, right: string) => {
    if (!(left + right in vocab)) {
      vocab[left + right] = Object.keys(vocab).length;
      merges.push(`${left} ${right}`);
    }
  };
  for (const word of words) {
    let left = word[0];
    for (const ch of word.slice(1)) {
      addMerge(left, ch);
      left += ch;
    }
    addMerge(table[32], word);
  }
  return { vocab, merges };
}

export function byteLevelTokenizerJson(words: string[] = []): object {
  const { vocab, merges } = byteLevelBpe(words, ['<|endoftext|>']);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: 256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}
