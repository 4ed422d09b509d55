/**
 * Reads Parquet files (as written by pandas/pyarrow/`datasets`, and the Hub's converted datasets) with
 * hyparquet. Rows are numbered from 1. Strings are decoded as strict UTF-8 so a bad value costs one row.
 * ClassLabel names that `datasets` stores in the file's "huggingface" metadata are returned too.
 */
import * as fs from 'node:fs';
import { parquetMetadata, parquetReadObjects, type FileMetaData } from 'hyparquet';
import { LoraStudioError } from '../errors';
import { decodeStrict } from './lines';
import type { BadRow, Row, RowsRead } from './types';

/** Marks a string value whose bytes were not valid UTF-8. */
const INVALID_UTF8 = Symbol('invalid UTF-8');

export async function readParquetRows(file: string, field: string, wanted?: string[]): Promise<RowsRead> {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new LoraStudioError(`cannot read the file: ${(e as Error).message}`, file, field);
  }
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  let metadata: FileMetaData;
  try {
    metadata = parquetMetadata(ab);
  } catch (e) {
    throw new LoraStudioError(`not a readable Parquet file (${(e as Error).message})`, file, field);
  }
  const topLevel = topLevelColumns(metadata);
  const selected = wanted ? wanted.filter((c) => topLevel.includes(c)) : undefined;
  let objects: Array<Record<string, unknown>>;
  try {
    objects = await parquetReadObjects({
      file: ab,
      metadata,
      columns: selected,
      parsers: { stringFromBytes: (bytes: Uint8Array) => (bytes === undefined ? bytes : (decodeStrict(bytes) ?? INVALID_UTF8)) },
    });
  } catch (e) {
    throw new LoraStudioError(`cannot read the Parquet data (${(e as Error).message})`, file, field);
  }
  const rows: Row[] = [];
  const bad: BadRow[] = [];
  objects.forEach((obj, i) => {
    const record: Record<string, unknown> = {};
    let invalid: string | undefined;
    for (const [k, v] of Object.entries(obj)) {
      if (v === INVALID_UTF8) invalid ??= k;
      record[k] = typeof v === 'bigint' && Number.isSafeInteger(Number(v)) ? Number(v) : v;
    }
    if (invalid !== undefined) bad.push({ line: i + 1, reason: `invalid UTF-8 in column "${invalid}"` });
    else rows.push({ line: i + 1, record });
  });
  return { format: 'parquet', rows, bad, labelNames: classLabelNames(metadata), columns: topLevel };
}

function topLevelColumns(metadata: FileMetaData): string[] {
  const out: string[] = [];
  const schema = metadata.schema;
  let i = 1;
  const skip = (idx: number): number => {
    const n = schema[idx].num_children ?? 0;
    let next = idx + 1;
    for (let c = 0; c < n; c++) next = skip(next);
    return next;
  };
  while (i < schema.length) {
    out.push(schema[i].name);
    i = skip(i);
  }
  return out;
}

/** `datasets` writes {"info": {"features": {col: {"_type": "ClassLabel", "names": [...]}}}} under the key "huggingface". */
function classLabelNames(metadata: FileMetaData): Record<string, string[]> | undefined {
  const entry = metadata.key_value_metadata?.find((kv) => kv.key === 'huggingface');
  if (!entry?.value) return undefined;
  try {
    const parsed = JSON.parse(entry.value) as { info?: { features?: Record<string, { _type?: string; names?: unknown }> } };
    const out: Record<string, string[]> = {};
    for (const [col, feat] of Object.entries(parsed.info?.features ?? {})) {
      if (feat?._type === 'ClassLabel' && Array.isArray(feat.names) && feat.names.every((n) => typeof n === 'string')) out[col] = feat.names as string[];
    }
    return Object.keys(out).length ? out : undefined;
  } catch {
    return undefined;
  }
}
