/**
 * Splits a file's raw bytes into lines and decodes each one as strict UTF-8 on its own, so a bad byte
 * costs one row (reported with its line number) instead of the whole file.
 */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export interface RawLine {
  /** 1-based file line */
  line: number;
  /** the decoded line without its `\n` / `\r\n`; null when the bytes are not valid UTF-8 */
  text: string | null;
}

/** A leading UTF-8 byte order mark is dropped. The empty piece after a final newline is not a line. */
export function splitLines(bytes: Uint8Array): RawLine[] {
  let start = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  const out: RawLine[] = [];
  let line = 1;
  while (start < bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    const next = end === -1 ? bytes.length : end + 1;
    if (end === -1) end = bytes.length;
    if (end > start && bytes[end - 1] === 0x0d) end--;
    out.push({ line, text: decodeStrict(bytes.subarray(start, end)) });
    start = next;
    line++;
  }
  return out;
}

export function decodeStrict(bytes: Uint8Array): string | null {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}
