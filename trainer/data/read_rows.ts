/**
 * Reads a data file into rows (plain records with their line numbers) and bad rows (with a reason).
 * JSONL, JSON, CSV/TSV and plain text live here; Parquet is in read_parquet.ts. Nothing is dropped
 * silently: every row that cannot be read becomes a BadRow.
 */
import { parse as parseCsv } from 'csv-parse/sync';
import { LoraStudioError } from '../errors';
import { MAX_WHOLE_TEXT_BYTES, readDataFile } from './data_file';
import { detectFormat } from './format';
import { decodeStrict, splitLines } from './lines';
import { readParquetRows } from './read_parquet';
import type { BadRow, DataFormat, Row, RowsRead } from './types';

export interface ReadRowsOptions {
  /** overrides the extension */
  format?: DataFormat | null;
  /** config field the file came from, for error messages (default data.train) */
  field?: string;
  /** plain text: the record key each line is stored under (default "text") */
  textColumn?: string;
  /** parquet: read only these columns (those that exist); other formats ignore it */
  columns?: string[];
}

export async function readRows(file: string, opts: ReadRowsOptions = {}): Promise<RowsRead> {
  const field = opts.field ?? 'data.train';
  const format = detectFormat(file, field, opts.format);
  if (format === 'parquet') return readParquetRows(file, field, opts.columns);
  const bytes = readBytes(file, field, format === 'jsonl' || format === 'text' ? undefined : MAX_WHOLE_TEXT_BYTES);
  switch (format) {
    case 'jsonl':
      return readJsonl(bytes);
    case 'json':
      return readJson(bytes, file, field);
    case 'csv':
    case 'tsv':
      return readDelimited(bytes, format, file, field);
    case 'text':
      return readTextRows(bytes, opts.textColumn ?? 'text');
  }
}

/** A data file's bytes: a regular file only (never a FIFO or a device), of a bounded size. */
export function readBytes(file: string, field: string, maxBytes?: number): Uint8Array {
  return readDataFile(file, field, maxBytes);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describeJsonValue(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`;
}

/** One JSON object per line; blank lines are skipped; line numbers are file lines. */
function readJsonl(bytes: Uint8Array): RowsRead {
  const rows: Row[] = [];
  const bad: BadRow[] = [];
  for (const { line, text } of splitLines(bytes)) {
    if (text === null) {
      bad.push({ line, reason: 'invalid UTF-8' });
      continue;
    }
    if (text.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      bad.push({ line, reason: `not valid JSON (${(e as Error).message})` });
      continue;
    }
    if (isPlainObject(value)) rows.push({ line, record: value });
    else bad.push({ line, reason: `not a JSON object (got ${describeJsonValue(value)})` });
  }
  return { format: 'jsonl', rows, bad };
}

/** A JSON array of objects, or {"data": [...]}. "line" is the 1-based index of the row in the array. */
function readJson(bytes: Uint8Array, file: string, field: string): RowsRead {
  const text = decodeStrict(bytes);
  if (text === null) {
    const first = splitLines(bytes).find((l) => l.text === null);
    throw new LoraStudioError(`not valid UTF-8 (first bad bytes on line ${first?.line ?? '?'})`, file, field);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new LoraStudioError(`not valid JSON (${(e as Error).message})`, file, field);
  }
  const items = Array.isArray(value) ? value : isPlainObject(value) && Array.isArray(value.data) ? value.data : null;
  if (items === null) {
    throw new LoraStudioError('a .json data file must hold an array of objects, or {"data": [...]}; for one object per line use .jsonl', file, field);
  }
  const rows: Row[] = [];
  const bad: BadRow[] = [];
  items.forEach((item: unknown, i: number) => {
    if (isPlainObject(item)) rows.push({ line: i + 1, record: item });
    else bad.push({ line: i + 1, reason: `not a JSON object (got ${describeJsonValue(item)})` });
  });
  return { format: 'json', rows, bad };
}

interface CsvInfo {
  lines: number;
  empty_lines: number;
}

/**
 * CSV/TSV with a header row. A row's line is the file line where the record starts (a quoted field
 * may span lines). Lines with invalid UTF-8 make the records that touch them bad rows.
 */
function readDelimited(bytes: Uint8Array, format: 'csv' | 'tsv', file: string, field: string): RowsRead {
  const raw = splitLines(bytes);
  const invalidLines = new Set(raw.filter((l) => l.text === null).map((l) => l.line));
  // Lenient decoding keeps every 0x0A byte, so line numbers stay those of the file.
  const text = new TextDecoder('utf-8').decode(bytes);
  const rows: Row[] = [];
  const bad: BadRow[] = [];
  const warnings: string[] = [];
  let lastLine = 1; // the header
  let lastEmpty = 0;
  const startOf = (info: CsvInfo): number => lastLine + 1 + (info.empty_lines - lastEmpty);
  const touchesInvalid = (from: number, to: number): boolean => {
    for (let l = from; l <= to; l++) if (invalidLines.has(l)) return true;
    return false;
  };
  // on_record and on_skip run in file order during the parse, so the line bookkeeping stays in step.
  const step = (info: CsvInfo): number => {
    const start = startOf(info);
    lastLine = info.lines;
    lastEmpty = info.empty_lines;
    return start;
  };
  try {
    parseCsv(text, {
      delimiter: format === 'tsv' ? '\t' : ',',
      columns: (header: string[]) => {
        const dup = header.filter((h, i) => header.indexOf(h) !== i);
        if (dup.length) warnings.push(`${file}: the header repeats column(s) ${[...new Set(dup)].map((d) => `"${d}"`).join(', ')}; the last one wins`);
        return header;
      },
      skip_empty_lines: true,
      // a quote inside an unquoted field is a plain character, as pandas reads it
      relax_quotes: true,
      skip_records_with_error: true,
      on_record: (record: Record<string, string>, info) => {
        const end = (info as unknown as CsvInfo).lines;
        const start = step(info as unknown as CsvInfo);
        if (touchesInvalid(start, end)) bad.push({ line: start, reason: 'invalid UTF-8' });
        else rows.push({ line: start, record });
        return null;
      },
      on_skip: (err) => {
        const info = err as unknown as CsvInfo;
        const end = info.lines;
        const start = step(info);
        bad.push({ line: start, reason: touchesInvalid(start, end) ? 'invalid UTF-8' : `not a valid ${format.toUpperCase()} record (${err?.message})` });
      },
    });
  } catch (e) {
    if (invalidLines.has(1)) throw new LoraStudioError('the header line is not valid UTF-8', file, field);
    throw new LoraStudioError(`cannot parse the ${format.toUpperCase()} file: ${(e as Error).message}`, file, field);
  }
  if (invalidLines.has(1)) throw new LoraStudioError('the header line is not valid UTF-8', file, field);
  bad.sort((a, b) => a.line - b.line);
  return { format, rows, bad, warnings };
}

/** Plain text: one row per non-blank line, stored under `textColumn`. */
function readTextRows(bytes: Uint8Array, textColumn: string): RowsRead {
  const rows: Row[] = [];
  const bad: BadRow[] = [];
  for (const { line, text } of splitLines(bytes)) {
    if (text === null) bad.push({ line, reason: 'invalid UTF-8' });
    else if (text.trim() !== '') rows.push({ line, record: { [textColumn]: text } });
  }
  return { format: 'text', rows, bad };
}

/**
 * Plain text for packing: the whole file as one document, newlines kept. Lines that are not valid
 * UTF-8 are left out and reported as bad rows; `rows` counts the file's lines.
 */
export function readTextDocument(file: string, field: string): { text: string; rows: number; bad: BadRow[] } {
  const lines = splitLines(readBytes(file, field));
  const bad = lines.filter((l) => l.text === null).map((l) => ({ line: l.line, reason: 'invalid UTF-8' }));
  const text = lines
    .filter((l) => l.text !== null)
    .map((l) => l.text)
    .join('\n');
  return { text, rows: lines.length, bad };
}
