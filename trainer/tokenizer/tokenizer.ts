/**
 * Loads `tokenizer.json` with @huggingface/tokenizers (the Hugging Face tokenizers pipeline in pure JS).
 * We never hand-write BPE: this file only finds the file, reads it, and adapts the API.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import { LoraStudioError } from '../errors';

export interface TextTokenizer {
  encode(text: string): number[];
  decode(ids: number[]): string;
  readonly eos_token_id: number | undefined;
}

export function loadTokenizer(modelDir: string): TextTokenizer {
  const file = path.join(modelDir, 'tokenizer.json');
  if (!fs.existsSync(file)) throw new LoraStudioError('missing: the model folder needs tokenizer.json (the Hugging Face fast-tokenizer file)', file);
  let json: { added_tokens?: Array<{ id: number; content: string }> };
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new LoraStudioError(`not valid JSON (${(e as Error).message})`, file);
  }
  let configJson: object = {};
  const cfgFile = path.join(modelDir, 'tokenizer_config.json');
  if (fs.existsSync(cfgFile)) {
    try {
      configJson = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
    } catch (e) {
      throw new LoraStudioError(`not valid JSON (${(e as Error).message})`, cfgFile);
    }
  }
  let tok: HFTokenizer;
  try {
    tok = new HFTokenizer(json, configJson);
  } catch (e) {
    throw new LoraStudioError(`cannot build a tokenizer from it: ${(e as Error).message}`, file, 'model');
  }
  const eos = json.added_tokens?.find((t) => t.content === '<|endoftext|>')?.id;
  return {
    encode: (text) => tok.encode(text, { add_special_tokens: false }).ids,
    decode: (ids) => tok.decode(ids, { skip_special_tokens: true }),
    eos_token_id: eos,
  };
}
