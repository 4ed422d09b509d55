/**
 * The model families by config.json's model_type. Every caller above models/ (inspect, select, merge, analyze,
 * the training session, the data-parallel workers) finds its family here, never in a family's folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoraStudioError, preview } from '../errors';
import { isPlainObject, readJsonFile } from '../io/json';
import type { ModelConfig, ModelFamily } from './family';
import { GPT2_FAMILY } from './gpt2/family';
import { LLAMA_FAMILY } from './llama/family';

const FAMILIES: readonly ModelFamily[] = [GPT2_FAMILY, LLAMA_FAMILY];

const supported = () => FAMILIES.flatMap((f) => f.model_types).map((t) => JSON.stringify(t)).join(', ');

/** The family of a checked config (one that a family's parseConfig returned). */
export function familyFor(config: { model_type: unknown }): ModelFamily {
  const family = FAMILIES.find((f) => f.model_types.includes(config.model_type as string));
  if (!family) throw new LoraStudioError(`unknown model_type ${preview(config.model_type)}; supported: ${supported()}`, undefined, 'model_type');
  return family;
}

/** Checks config.json's object and its model_type, then hands it to that family's parseConfig. */
export function parseModelConfig(raw: unknown, file: string): { family: ModelFamily; config: ModelConfig } {
  if (!isPlainObject(raw)) throw new LoraStudioError(`must be a JSON object, got ${preview(raw)}`, file);
  const family = FAMILIES.find((f) => typeof raw.model_type === 'string' && f.model_types.includes(raw.model_type));
  if (!family) throw new LoraStudioError(`unknown model_type ${preview(raw.model_type)}; supported: ${supported()}`, file, 'model_type');
  return { family, config: family.parseConfig(raw, file) };
}

/** Reads and validates `<dir>/config.json`, and finds its family. Errors name the file and the field. */
export function readModelConfig(dir: string): { family: ModelFamily; config: ModelConfig } {
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(file)) throw new LoraStudioError('missing: a Hugging Face model folder needs config.json', file);
  return parseModelConfig(readJsonFile(file), file);
}

/**
 * readModelConfig for a job that loads the model (train, eval, generate, classify, merge, analyze): a family whose
 * models can only be inspected so far refuses here, with one error naming config.json and model_type.
 */
export function readRunnableModelConfig(dir: string): { family: ModelFamily; config: ModelConfig } {
  const read = readModelConfig(dir);
  read.family.assertRunnable(read.config, path.join(dir, 'config.json'));
  return read;
}

/** The family of a model folder whose jobs it implements, from its config.json (which the loader reads again). */
export function familyForDir(dir: string): ModelFamily {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new LoraStudioError('not a folder: a Hugging Face model folder was expected', dir);
  return readRunnableModelConfig(dir).family;
}
