/**
 * The one place that writes files: to a temporary name beside the target, fsync, then rename.
 * A crash leaves either the old file or the new one, never half of one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

function tempNameFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Writes `data` (one buffer or several chunks, written in order) to `file` atomically. */
export function writeFileAtomic(file: string, data: string | Uint8Array | Uint8Array[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = tempNameFor(file);
  const fd = fs.openSync(tmp, 'w');
  try {
    const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : Array.isArray(data) ? data : [data];
    for (const chunk of chunks) {
      let off = 0;
      while (off < chunk.byteLength) off += fs.writeSync(fd, chunk, off, chunk.byteLength - off);
    }
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}

export function writeJsonAtomic(file: string, value: unknown, sortKeys = false): void {
  writeFileAtomic(file, JSON.stringify(sortKeys ? sortedKeys(value) : value, null, 2) + '\n');
}

/**
 * Builds a whole directory under a temporary sibling name, then renames it into place.
 * `target` must not exist: we never write into a folder the user already has.
 */
export function writeDirAtomic(target: string, fill: (tmpDir: string) => void): void {
  if (fs.existsSync(target)) throw new Error(`${target} already exists; refusing to overwrite it`);
  fs.mkdirSync(path.dirname(path.resolve(target)), { recursive: true });
  const tmp = tempNameFor(path.resolve(target));
  fs.mkdirSync(tmp);
  try {
    fill(tmp);
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** JSON with object keys sorted recursively, as PEFT writes adapter_config.json. */
export function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortedKeys((value as Record<string, unknown>)[k])]));
  }
  return value;
}
