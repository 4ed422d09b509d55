/**
 * Turns `data.train` / `data.eval` into the files to read: a local path (relative to the run config's
 * folder, else the working directory) or, when no such file exists and the value looks like
 * `owner/name[:config][:split]`, a Hugging Face Hub dataset's Parquet files.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoraStudioError } from '../errors';
import { checkDataFile } from './data_file';
import { hasDataExtension } from './format';
import { parseHubId, resolveHubDataset, type HubOptions } from './hub';

export interface DataSource {
  files: string[];
  /** set for Hub datasets (always Parquet) */
  hub?: { repo: string; config: string; split: string };
  warnings: string[];
}

export function resolveDataPath(value: string, configFile?: string): string {
  const base = configFile ? path.dirname(path.resolve(configFile)) : process.cwd();
  return path.resolve(base, value);
}

export async function resolveSource(value: string, field: 'data.train' | 'data.eval', opts: HubOptions = {}): Promise<DataSource> {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new LoraStudioError('needs a data file path or a Hugging Face dataset id', opts.configFile, field);
  }
  const file = resolveDataPath(value, opts.configFile);
  if (fs.existsSync(file)) {
    checkDataFile(file, field);
    return { files: [file], warnings: [] };
  }
  const ref = path.isAbsolute(value) || value.startsWith('.') || hasDataExtension(value) ? null : parseHubId(value);
  if (!ref) throw new LoraStudioError(`file not found (${field} is "${value}")`, file, field);
  const hub = await resolveHubDataset(value, ref, field, opts);
  return { files: hub.files, hub: { repo: ref.repo, config: hub.config, split: hub.split }, warnings: hub.warnings };
}
