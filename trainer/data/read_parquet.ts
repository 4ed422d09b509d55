/**
 * Reads Parquet files (as written by pandas/pyarrow/`datasets`, and the Hub's converted datasets) with
 * hyparquet. Rows are numbered from 1. Strings are decoded as strict UTF-8 so a bad value costs one row.
 * ClassLabel names that `datasets` stores in the file's "huggingface" metadata are returned too.
 */
import { parquetMetadata, parquetReadObjects, type FileMetaData } from 'hyparquet';
import { LoraStudioError, preview } from '../errors';
import { readDataFile } from './data_file';
import { decodeStrict } from './lines';
import type { BadRow, Row, RowsRead } from './types';

/** Marks a string value whose bytes were not valid UTF-8. */
const INVALID_UTF8 = Symbol('invalid UTF-8');

export async function readParquetRows(file: string, field: string, wanted?: string[]): Promise<RowsRead> {
  const buf = readDataFile(file, field);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  const bad = (why: string): LoraStudioError => new LoraStudioError(`not a readable Parquet file (${why})`, file, field);
  checkFooter(buf, bad);
  let metadata: FileMetaData;
  try {
    metadata = parquetMetadata(ab);
  } catch (e) {
    throw bad(e instanceof Error ? e.message : String(e));
  }
  checkMetadata(metadata, buf.byteLength, bad);
  const topLevel = topLevelColumns(metadata, bad);
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
  const badRows: BadRow[] = [];
  objects.forEach((obj, i) => {
    const record: Record<string, unknown> = {};
    let invalid: string | undefined;
    for (const [k, v] of Object.entries(obj)) {
      if (v === INVALID_UTF8) invalid ??= k;
      // defined, not assigned: a column named "__proto__" is an ordinary column
      Object.defineProperty(record, k, { value: typeof v === 'bigint' && Number.isSafeInteger(Number(v)) ? Number(v) : v, enumerable: true, writable: true, configurable: true });
    }
    if (invalid !== undefined) badRows.push({ line: i + 1, reason: `invalid UTF-8 in column "${invalid}"` });
    else rows.push({ line: i + 1, record });
  });
  return { format: 'parquet', rows, bad: badRows, labelNames: classLabelNames(metadata), columns: topLevel };
}

/** Rows one Parquet file may declare: far above a fine-tuning set (each row becomes an object in memory). */
export const MAX_PARQUET_ROWS = 50_000_000;

/** "PAR1" at both ends, and a footer length that fits in the file, checked before hyparquet reads the footer. */
function checkFooter(buf: Buffer, bad: (why: string) => LoraStudioError): void {
  if (buf.byteLength < 12) throw bad(`${buf.byteLength} bytes is too short`);
  if (buf.toString('latin1', 0, 4) !== 'PAR1' || buf.toString('latin1', buf.byteLength - 4) !== 'PAR1') throw bad('no "PAR1" magic at its start and end');
  const footer = buf.readUInt32LE(buf.byteLength - 8);
  if (footer + 12 > buf.byteLength) throw bad(`the footer claims ${footer} bytes but the file has ${buf.byteLength}`);
}

/**
 * The footer's counts and offsets against the file's size, so that no later loop runs on a number the file cannot
 * back: row counts bounded (and summing up), every column chunk inside the file with a positive size.
 */
function checkMetadata(m: FileMetaData, size: number, bad: (why: string) => LoraStudioError): void {
  const n = (v: unknown): number => (typeof v === 'bigint' ? Number(v) : typeof v === 'number' ? v : NaN);
  const rows = n(m.num_rows);
  if (!(Number.isInteger(rows) && rows >= 0 && rows <= MAX_PARQUET_ROWS)) throw bad(`num_rows ${String(m.num_rows)} is not between 0 and ${MAX_PARQUET_ROWS}`);
  if (!Array.isArray(m.schema) || m.schema.length < 1) throw bad('the schema is empty');
  if (!Array.isArray(m.row_groups)) throw bad('no row groups');
  let sum = 0;
  for (const [g, rg] of m.row_groups.entries()) {
    const r = n(rg?.num_rows);
    if (!(Number.isInteger(r) && r >= 0)) throw bad(`row group ${g} has num_rows ${String(rg?.num_rows)}`);
    sum += r;
    for (const [c, col] of (rg.columns ?? []).entries()) {
      const md = col?.meta_data;
      if (!md) continue;
      const start = n(md.dictionary_page_offset ?? md.data_page_offset);
      const len = n(md.total_compressed_size);
      const values = n(md.num_values);
      if (!(Number.isInteger(start) && start >= 4 && Number.isInteger(len) && len > 0 && start + len <= size)) {
        throw bad(`row group ${g}, column ${c}: its data (offset ${String(start)}, ${String(md.total_compressed_size)} bytes) is not inside the file of ${size} bytes`);
      }
      if (!(Number.isInteger(values) && values >= 0 && values <= MAX_PARQUET_ROWS * 16)) throw bad(`row group ${g}, column ${c}: num_values ${String(md.num_values)} is out of range`);
    }
  }
  if (sum !== rows) throw bad(`the row groups hold ${sum} rows but num_rows is ${rows}`);
}

/** Names of the top-level columns, walking the flattened schema tree; a num_children past the schema's end is an error. */
function topLevelColumns(metadata: FileMetaData, bad: (why: string) => LoraStudioError): string[] {
  const out: string[] = [];
  const schema = metadata.schema;
  const rootChildren = schema[0]?.num_children ?? 0;
  // each entry: how many more elements this subtree still needs to visit
  let i = 1;
  while (i < schema.length && out.length < rootChildren) {
    const el = schema[i];
    if (typeof el?.name !== 'string') throw bad(`schema element ${i} has no name`);
    out.push(el.name);
    // skip the subtree of `el`: count pending children iteratively
    let pending = el.num_children ?? 0;
    i++;
    while (pending > 0) {
      if (i >= schema.length) throw bad(`schema element "${preview(el.name, 40)}" claims more children than the schema holds`);
      pending += (schema[i].num_children ?? 0) - 1;
      i++;
    }
  }
  if (out.length < rootChildren) throw bad(`the schema root claims ${rootChildren} columns but holds ${out.length}`);
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
