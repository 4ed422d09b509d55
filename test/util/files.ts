/** File helpers shared by the suites that check what the trainer and the extension write. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';

/** sha256 of every file under `dir` by relative path, for "left byte-identical" checks. */
export function hashDir(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const p = path.join(e.parentPath, e.name);
    out.set(path.relative(dir, p), createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
  }
  return out;
}
