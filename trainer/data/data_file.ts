/**
 * The one gate every local data file passes before it is read: it must be a regular file (a FIFO, a device or a
 * folder would block or fail mid-read) and of a size the reader can hold. Errors name the file and the field
 * (data.train, data.eval or --data).
 */
import * as fs from 'node:fs';
import { LoraStudioError } from '../errors';

/**
 * Line-based formats (JSONL, text) and Parquet: read as one buffer. 2 GiB is beyond any dataset that fits in a
 * training process's memory as rows; larger corpora should be split into several files or read from the Hub.
 */
export const MAX_DATA_FILE_BYTES = 2 * 1024 ** 3;
/** JSON arrays and CSV/TSV are decoded as one string, and V8 strings stop at ~512 MiB. */
export const MAX_WHOLE_TEXT_BYTES = 500 * 1024 ** 2;

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/** Stats `file` (following links) and returns its size; refuses anything but a regular file of at most `maxBytes`. */
export function checkDataFile(file: string, field: string, maxBytes = MAX_DATA_FILE_BYTES): number {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new LoraStudioError(code === 'ENOENT' ? `file not found` : `cannot read the file (${code ?? (e as Error).message})`, file, field);
  }
  if (!st.isFile()) {
    throw new LoraStudioError(`is ${kindOf(st)}, not a data file; name a regular file (.jsonl, .json, .csv, .tsv, .txt or .parquet)`, file, field);
  }
  if (st.size > maxBytes) {
    throw new LoraStudioError(
      `is ${(st.size / 1024 ** 2).toFixed(0)} MiB; a file of this format is read whole and may be at most ${maxBytes / 1024 ** 2} MiB. ` +
        'Split it into several files, or convert it to JSONL or Parquet',
      file,
      field,
    );
  }
  return st.size;
}

/** Reads a data file after checkDataFile; read errors name the file and the field. */
export function readDataFile(file: string, field: string, maxBytes = MAX_DATA_FILE_BYTES): Buffer {
  checkDataFile(file, field, maxBytes);
  try {
    return fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new LoraStudioError(`cannot read the file (${code ?? (e as Error).message})`, file, field);
  }
}
