/**
 * The token id batches are padded with. Padded positions are masked out (attention_mask, loss, the seq-cls
 * last-token pick), so the id never changes a result; it is still the one a saved config.json names.
 */
import type { TextTokenizer } from './tokenizer';

/** The pad-related fields of config.json (eos_token_id may list several ids, as Llama 3's does). */
export interface PadConfig {
  pad_token_id?: number | null;
  eos_token_id?: number | number[] | null;
}

/**
 * config.json's pad_token_id, else tokenizer_config.json's pad_token, else eos_token_id (config.json's first id,
 * else the tokenizer's eos) with a warning pushed to `warnings`. Undefined when there is neither pad nor eos.
 */
export function choosePadTokenId(config: PadConfig, tokenizer: Pick<TextTokenizer, 'pad_token_id' | 'eos_token_id'> | undefined, warnings: string[]): number | undefined {
  if (typeof config.pad_token_id === 'number') return config.pad_token_id;
  if (tokenizer?.pad_token_id !== undefined) return tokenizer.pad_token_id;
  const eos = Array.isArray(config.eos_token_id) ? config.eos_token_id[0] : config.eos_token_id ?? tokenizer?.eos_token_id;
  if (eos === undefined || eos === null) return undefined;
  warnings.push(`no pad token (config.json has no pad_token_id, tokenizer_config.json no pad_token): padding with eos_token_id ${eos}; padded positions are masked, so results do not depend on it`);
  return eos;
}
