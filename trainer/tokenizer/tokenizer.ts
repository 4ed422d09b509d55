/**
 * Loads `tokenizer.json` with @huggingface/tokenizers (the Hugging Face tokenizers pipeline in pure JS).
 * We never hand-write BPE: this file only finds the file, reads it, checks what the library would trip over,
 * and adapts the API. Whatever the library throws becomes a LoraStudioError naming tokenizer.json.
 * encode() keeps what the file's post-processor adds, as transformers' tokenizer(text) does (Llama 3's
 * TemplateProcessing puts <|begin_of_text|> first; GPT-2's ByteLevel adds nothing). The special token ids come
 * from tokenizer_config.json's bos_token/eos_token/pad_token, as transformers reads them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import { LoraStudioError, preview } from '../errors';
import { isPlainObject, readJsonFile } from '../io/json';

export interface EncodeOptions {
  /**
   * Keep the special tokens the post-processor adds (default true, as transformers' add_special_tokens). False
   * for a text that carries its own, such as a rendered chat template.
   */
  addSpecialTokens?: boolean;
}

export interface TextTokenizer {
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: number[]): string;
  /** tokenizer_config.json's eos_token, else the `<|endoftext|>` token (GPT-2 folders often have no tokenizer_config.json) */
  readonly eos_token_id: number | undefined;
  /** tokenizer_config.json's bos_token */
  readonly bos_token_id: number | undefined;
  /** tokenizer_config.json's pad_token */
  readonly pad_token_id: number | undefined;
}

/** tokenizer_config.json fields the library reads, with the types it needs. */
const TOKEN_FIELDS = ['bos_token', 'eos_token', 'unk_token', 'pad_token'];
const BOOLEAN_FIELDS = ['clean_up_tokenization_spaces', 'remove_space', 'do_lowercase_and_remove_accent'];

export function loadTokenizer(modelDir: string): TextTokenizer {
  const file = path.join(modelDir, 'tokenizer.json');
  if (!fs.existsSync(file)) throw new LoraStudioError('missing: the model folder needs tokenizer.json (the Hugging Face fast-tokenizer file)', file);
  const json = readJsonFile(file);
  if (!isPlainObject(json)) throw new LoraStudioError(`must be a JSON object, got ${preview(json)}`, file);
  const added = json.added_tokens;
  if (!Array.isArray(added)) throw new LoraStudioError(`must be a list of tokens, got ${preview(added)}`, file, 'added_tokens');
  added.forEach((t, i) => {
    if (!isPlainObject(t) || typeof t.content !== 'string' || !Number.isSafeInteger(t.id) || (t.id as number) < 0) {
      throw new LoraStudioError(`must be a token {"id": integer >= 0, "content": string, …}, got ${preview(t)}`, file, `added_tokens[${i}]`);
    }
  });
  const cfgFile = path.join(modelDir, 'tokenizer_config.json');
  const configJson = fs.existsSync(cfgFile) ? tokenizerConfig(readJsonFile(cfgFile), cfgFile) : {};
  let tok: HFTokenizer;
  try {
    tok = new HFTokenizer(json, configJson);
  } catch (e) {
    throw new LoraStudioError(`cannot build a tokenizer from it: ${libraryMessage(e)}`, file);
  }
  const addedTokens = added as Array<{ id: number; content: string }>;
  /** the id of a special-token field of tokenizer_config.json (undefined when unset) */
  const idOf = (field: string): number | undefined => {
    const token = configJson[field];
    if (typeof token !== 'string') return undefined;
    const id = addedTokens.find((t) => t.content === token)?.id ?? tok.token_to_id(token);
    if (id === undefined) throw new LoraStudioError(`${preview(token)} is not a token of tokenizer.json`, cfgFile, field);
    return id;
  };
  const eos = idOf('eos_token') ?? addedTokens.find((t) => t.content === '<|endoftext|>')?.id;
  return {
    encode: (text, opts = {}) => {
      try {
        return tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
      } catch (e) {
        throw new LoraStudioError(`the tokenizer failed on a text: ${libraryMessage(e)}`, file);
      }
    },
    decode: (ids) => {
      if (ids.length === 0) return ''; // the library refuses an empty list
      try {
        return tok.decode(ids, { skip_special_tokens: true });
      } catch (e) {
        throw new LoraStudioError(`the tokenizer failed to decode token ids: ${libraryMessage(e)}`, file);
      }
    },
    eos_token_id: eos,
    bos_token_id: idOf('bos_token'),
    pad_token_id: idOf('pad_token'),
  };
}

/**
 * The library's error text, one line and bounded; never its stack. Exceptions a broken file provokes inside the
 * library (TypeError and the like) are reported the same way: the file is the problem, not our code.
 */
function libraryMessage(e: unknown): string {
  const msg = e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e);
  const line = msg.replace(/\s+/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 199)}…` : line;
}

/**
 * tokenizer_config.json checked for the fields the library uses: special tokens as strings (or transformers'
 * AddedToken objects, passed on as their content), flags as booleans, additional_special_tokens as a list of
 * strings, model_max_length as a number. Wrong types name the file and the field.
 */
function tokenizerConfig(raw: unknown, file: string): Record<string, unknown> {
  if (!isPlainObject(raw)) throw new LoraStudioError(`must be a JSON object, got ${preview(raw)}`, file);
  const out: Record<string, unknown> = { ...raw };
  const tokenText = (v: unknown): string | null | undefined => {
    if (v === undefined || v === null || typeof v === 'string') return v;
    if (isPlainObject(v) && typeof v.content === 'string') return v.content;
    return undefined;
  };
  for (const k of TOKEN_FIELDS) {
    if (!(k in raw)) continue;
    const t = tokenText(raw[k]);
    if (t === undefined) throw new LoraStudioError(`must be a token (a string, or an object with "content"), or null; got ${preview(raw[k])}`, file, k);
    if (t === null) delete out[k];
    else out[k] = t;
  }
  for (const k of BOOLEAN_FIELDS) {
    if (raw[k] !== undefined && raw[k] !== null && typeof raw[k] !== 'boolean') throw new LoraStudioError(`must be true or false, got ${preview(raw[k])}`, file, k);
  }
  const extra = raw.additional_special_tokens;
  if (extra !== undefined && extra !== null) {
    if (!Array.isArray(extra)) throw new LoraStudioError(`must be a list of tokens, got ${preview(extra)}`, file, 'additional_special_tokens');
    out.additional_special_tokens = extra.map((v, i) => {
      const t = tokenText(v);
      if (typeof t !== 'string') throw new LoraStudioError(`must be a token (a string, or an object with "content"), got ${preview(v)}`, file, `additional_special_tokens[${i}]`);
      return t;
    });
  }
  const max = raw.model_max_length;
  if (max !== undefined && max !== null && (typeof max !== 'number' || !(max > 0))) {
    throw new LoraStudioError(`must be a positive number, got ${preview(max)}`, file, 'model_max_length');
  }
  return out;
}
