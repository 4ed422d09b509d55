/**
 * The one place that writes files: to a temporary name beside the target, fsync, then rename.
 * A crash leaves either the old file or the new one, never half of one. The temporary names follow one pattern
 * (TEMP_NAME), so that a later run can find and remove what a killed process left behind (removeStaleTemps).
 * File-system failures become LoraStudioErrors naming the path, with a hint (disk full, permissions, a file
 * where a folder should be).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { LoraStudioError } from '../errors';

/** `.<name>.tmp-<pid>-<8 hex>`: what tempNameFor makes; group 1 is the target's name, group 2 the writer's PID. */
export const TEMP_NAME = /^\.(.+)\.tmp-(\d+)-[0-9a-f]{8}$/;

/** A temp name older than this is stale even when its PID is alive (PIDs are reused). */
export const STALE_TEMP_AGE_MS = 10 * 60 * 1000;

function tempNameFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Where a write failed: `field` names the setting the path came from (e.g. training.output_dir). */
export interface WriteWhere {
  field?: string;
}

/** A file-system error as a LoraStudioError naming the path and saying what to do; other errors pass through. */
export function fsFailure(e: unknown, target: string, where: WriteWhere = {}): unknown {
  if (e instanceof LoraStudioError) return e;
  const err = e as NodeJS.ErrnoException;
  const code = err?.code;
  if (typeof code !== 'string') return e;
  const at = typeof err.path === 'string' ? err.path : target;
  const hint: Record<string, string> = {
    EEXIST: 'exists and is a file, where a folder is needed; remove it or choose another path',
    ENOTDIR: 'a part of this path is a file, where a folder is needed; choose another path',
    EISDIR: 'is a folder, where a file is needed',
    EACCES: 'permission denied: this process may not write here; choose a folder you can write to',
    EPERM: 'operation not permitted: this process may not write here; choose a folder you can write to',
    EROFS: 'is on a read-only file system; choose a writable folder',
    ENOSPC: 'the disk is full (ENOSPC); free some space and run again',
    EDQUOT: 'the disk quota is exhausted (EDQUOT); free some space and run again',
    ENAMETOOLONG: 'the path is too long',
  };
  return new LoraStudioError(`cannot write: ${hint[code] ?? `${code} (${err.message})`}`, at, where.field);
}

/** Writes `data` (one buffer or several chunks, written in order) to `file` atomically. */
export function writeFileAtomic(file: string, data: string | Uint8Array | Uint8Array[], where: WriteWhere = {}): void {
  let tmp: string | undefined;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    tmp = tempNameFor(file);
    const fd = fs.openSync(tmp, 'w');
    try {
      const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : Array.isArray(data) ? data : [data];
      for (const chunk of chunks) {
        let off = 0;
        while (off < chunk.byteLength) off += fs.writeSync(fd, chunk, off, chunk.byteLength - off);
      }
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    if (tmp) fs.rmSync(tmp, { force: true });
    throw fsFailure(e, file, where);
  }
}

export function writeJsonAtomic(file: string, value: unknown, sortKeys = false, where: WriteWhere = {}): void {
  writeFileAtomic(file, JSON.stringify(sortKeys ? sortedKeys(value) : value, null, 2) + '\n', where);
}

/**
 * Builds a whole directory under a temporary sibling name, then renames it into place.
 * `target` must not exist: we never write into a folder the user already has.
 */
export function writeDirAtomic(target: string, fill: (tmpDir: string) => void, where: WriteWhere = {}): void {
  if (fs.existsSync(target)) throw new LoraStudioError('already exists; refusing to overwrite it', target, where.field);
  let tmp: string | undefined;
  try {
    fs.mkdirSync(path.dirname(path.resolve(target)), { recursive: true });
    tmp = tempNameFor(path.resolve(target));
    fs.mkdirSync(tmp);
    fill(tmp);
    fs.renameSync(tmp, target);
  } catch (e) {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    throw fsFailure(e, target, where);
  }
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temporary files and folders that an earlier process (killed mid-write) left in `dir`: only names of
 * TEMP_NAME's pattern whose PID is not alive, or that are older than STALE_TEMP_AGE_MS. Returns what was removed.
 */
export function removeStaleTemps(dir: string, now = Date.now()): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m) continue;
    const full = path.join(dir, name);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(full);
    } catch {
      continue;
    }
    const pid = Number(m[2]);
    const stale = !pidAlive(pid) || (pid !== process.pid && now - st.mtimeMs > STALE_TEMP_AGE_MS);
    if (!stale) continue;
    fs.rmSync(full, { recursive: true, force: true });
    removed.push(full);
  }
  return removed;
}

/** JSON with object keys sorted recursively, as PEFT writes adapter_config.json. */
export function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortedKeys((value as Record<string, unknown>)[k])]));
  }
  return value;
}
