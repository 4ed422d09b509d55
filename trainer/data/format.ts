/**
 * Which reader a data file needs: from `data.format` when set, else from the file extension.
 */
import * as path from 'node:path';
import { LoraStudioError } from '../errors';
import type { DataFormat } from './types';

export const DATA_FORMATS: readonly DataFormat[] = ['jsonl', 'json', 'csv', 'tsv', 'text', 'parquet'];

const BY_EXTENSION: Record<string, DataFormat> = {
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
  '.json': 'json',
  '.csv': 'csv',
  '.tsv': 'tsv',
  '.txt': 'text',
  '.text': 'text',
  '.parquet': 'parquet',
};

/** Extensions we read, for telling a file path from a Hub dataset id. */
export function hasDataExtension(file: string): boolean {
  return path.extname(file).toLowerCase() in BY_EXTENSION;
}

export function detectFormat(file: string, field: string, override?: DataFormat | null): DataFormat {
  if (override !== undefined && override !== null) {
    if (!DATA_FORMATS.includes(override)) {
      throw new LoraStudioError(`unknown format "${override}"; use one of ${DATA_FORMATS.join(', ')}`, undefined, 'data.format');
    }
    return override;
  }
  const ext = path.extname(file).toLowerCase();
  const format = BY_EXTENSION[ext];
  if (!format) {
    throw new LoraStudioError(
      `cannot tell the format from the extension "${ext || '(none)'}"; use .jsonl, .json, .csv, .tsv, .txt or .parquet, or set data.format`,
      file,
      field,
    );
  }
  return format;
}
