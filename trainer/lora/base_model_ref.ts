/**
 * adapter_config.json's `base_model_name_or_path`, both ways. PEFT writes what the user passed: a Hub id stays
 * as it is, an absolute path stays absolute, and a relative local path is written relative to the adapter
 * folder (so the run folder can be moved or shared together with its model); readers resolve it against the
 * adapter folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The value to write into the adapter saved in `adapterDir`. `given` is the model as the user wrote it (run
 * config or flag); `resolved` is what it resolved to (an absolute folder, or the Hub id itself).
 */
export function baseModelRefFor(given: string, resolved: string, adapterDir: string): string {
  if (path.isAbsolute(given) || !path.isAbsolute(resolved)) return given;
  return relativeRef(adapterDir, resolved);
}

/** `target` relative to the folder `from`, with / separators, starting with ./ or ../ so it never reads as a Hub id. */
export function relativeRef(from: string, target: string): string {
  const rel = path.relative(path.resolve(from), target).split(path.sep).join('/');
  if (rel === '') return '.';
  if (path.isAbsolute(rel)) return target; // another drive: no relative path exists
  return rel.startsWith('../') || rel === '..' ? rel : `./${rel}`;
}

/** The local folder or Hub id that `value` (read from the adapter in `adapterDir`) names. */
export function resolveBaseModelRef(value: string, adapterDir: string): string {
  if (path.isAbsolute(value)) return value;
  const local = path.resolve(adapterDir, value);
  return /^\.\.?([\\/]|$)/.test(value) || fs.existsSync(local) ? local : value;
}
