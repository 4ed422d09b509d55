/**
 * generation_config.json, the file transformers' `generate` reads its defaults from. We take only what decides
 * where a text ends: `eos_token_id`, one id or a list (Llama 3.x Instruct lists <|end_of_text|>, <|eom_id|> and
 * <|eot_id|> there, while config.json names one). The sampling defaults it may hold (do_sample, temperature,
 * top_p) are not applied: `generate` is greedy unless its flags say otherwise. A missing file is no error.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoraStudioError, preview } from '../errors';
import { isPlainObject, readJsonFile } from './json';

export const GENERATION_CONFIG_FILE = 'generation_config.json';

const isTokenId = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** The end-of-sequence ids generation_config.json in `dir` names (none when the file or the field is absent). */
export function generationEosIds(dir: string): number[] {
  const file = path.join(dir, GENERATION_CONFIG_FILE);
  if (!fs.existsSync(file)) return [];
  const json = readJsonFile(file);
  if (!isPlainObject(json)) throw new LoraStudioError(`must be a JSON object, got ${preview(json)}`, file);
  const eos = json.eos_token_id;
  if (eos === undefined || eos === null) return [];
  const ids = Array.isArray(eos) ? eos : [eos];
  if (!ids.every(isTokenId)) throw new LoraStudioError(`must be a token id or a list of token ids, got ${preview(eos)}`, file, 'eos_token_id');
  return ids;
}
