/**
 * The one reader of the JSON files users and other tools hand us (config.json, adapter_config.json, lora-run.json,
 * trainer_state.json, tokenizer files, safetensors indexes): a byte limit checked before reading, a UTF-8 BOM
 * accepted, syntax errors reported with line and column, and nesting bounded, so that no later step (validation,
 * error formatting, writing the value back) can overflow the stack. Every error names the file.
 */
import * as fs from 'node:fs';
import { LoraStudioError } from '../errors';

/** Deeper than any real Hugging Face or PEFT file (they nest 3–6 levels; tokenizer.json about 8). */
export const MAX_JSON_DEPTH = 64;
/** Config-like files: a real config.json is a few kB; tokenizer.json of a large vocabulary is ~20 MB. */
export const DEFAULT_MAX_JSON_BYTES = 64 * 1024 * 1024;

export interface JsonReadOptions {
  /** refuse files larger than this (default DEFAULT_MAX_JSON_BYTES) */
  maxBytes?: number;
  /** the field to name when the whole file is wrong (e.g. `resume_from_checkpoint`) */
  field?: string;
}

/** Reads and parses a JSON file. Missing, unreadable, too large, not JSON or too deep: a LoraStudioError naming `file`. */
export function readJsonFile(file: string, opts: JsonReadOptions = {}): unknown {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_JSON_BYTES;
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new LoraStudioError('is not a regular file', file, opts.field);
    if (st.size > maxBytes) throw new LoraStudioError(`is ${st.size} bytes; a file of this kind is at most ${maxBytes} bytes`, file, opts.field);
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof LoraStudioError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new LoraStudioError(code === 'ENOENT' ? 'missing' : `cannot be read: ${code ?? (e as Error).message}`, file, opts.field);
  }
  return parseJsonText(text, file, opts.field);
}

/** Parses JSON text (a leading BOM is skipped); errors give line and column and name `file`. */
export function parseJsonText(text: string, file: string, field?: string): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (e) {
    const msg = (e as Error).message;
    const m = /position (\d+)/.exec(msg);
    const pos = m ? Number(m[1]) : body.length;
    const before = body.slice(0, pos);
    const line = before.split('\n').length;
    const column = pos - before.lastIndexOf('\n');
    const reason = msg.replace(/\s*\(line \d+ column \d+\)/, '').replace(/ in JSON at position \d+$/, '').replace(/, ".*$/s, '');
    throw new LoraStudioError(`not valid JSON at line ${line}, column ${column} (position ${pos}): ${reason}`, file, field);
  }
  const deep = tooDeep(value);
  if (deep) throw new LoraStudioError(`nested more than ${MAX_JSON_DEPTH} levels deep`, file, deep);
  return value;
}

/** The JSON path of the first value nested deeper than MAX_JSON_DEPTH, or undefined. Iterative: no recursion. */
function tooDeep(root: unknown): string | undefined {
  const stack: Array<{ v: unknown; depth: number; path: string }> = [{ v: root, depth: 0, path: '' }];
  while (stack.length > 0) {
    const { v, depth, path } = stack.pop()!;
    if (!v || typeof v !== 'object') continue;
    if (depth >= MAX_JSON_DEPTH) return path.length > 80 ? `${path.slice(0, 79)}…` : path || '(top level)';
    if (Array.isArray(v)) v.forEach((x, i) => stack.push({ v: x, depth: depth + 1, path: `${path}[${i}]` }));
    else for (const k of Object.keys(v)) stack.push({ v: (v as Record<string, unknown>)[k], depth: depth + 1, path: path ? `${path}.${k}` : k });
  }
  return undefined;
}

export const isPlainObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
