/**
 * Class labels for seq-cls: which raw values are labels, and the id ↔ name maps. Integer labels are ids
 * (names LABEL_i, as transformers defaults them, or a Parquet file's ClassLabel names); string labels get
 * ids in sorted order of the distinct training values, as datasets' class_encode_column does.
 */
import { MAX_LABELS } from '../task';
import { LoraStudioError, preview } from '../errors';
import { isPlainObject } from '../io/json';

export type RawLabel = number | string;


/**
 * Both tables are null-prototype objects: a label is the user's string, and "__proto__", "constructor" or
 * "toString" are ordinary labels (on a plain object they would read Object.prototype's members).
 */
export interface LabelMaps {
  /** keys are stringified ids, as transformers writes config.json */
  id2label: Record<string, string>;
  label2id: Record<string, number>;
}

/** An empty table keyed by the user's strings: no inherited keys. */
export function userTable<V>(): Record<string, V> {
  return Object.create(null) as Record<string, V>;
}

/** Whether `key` is one of the table's own keys (never an inherited member such as "toString"). */
export function hasKey(table: Record<string, unknown>, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(table, key);
}

/** A value that may serve as a label, or why not. A missing column is the caller's to report. */
export function checkLabel(value: unknown, column: string): { label: RawLabel } | { reason: string } {
  if (value === null) return { reason: `column "${column}" is null` };
  if (typeof value === 'bigint') {
    // Parquet int64 beyond 2^53 (safe ones arrive as numbers)
    return { reason: `label ${value} in column "${column}" is too large: a class id is at most ${MAX_LABELS - 1}` };
  }
  if (typeof value === 'number') {
    // a whole-number float (1.0 from a float column) counts as the integer
    if (!Number.isInteger(value)) return { reason: `label ${value} in column "${column}" is not an integer or a string` };
    if (value < 0) return { reason: `label ${value} in column "${column}" is negative` };
    if (value >= MAX_LABELS) return { reason: `label ${value} in column "${column}" is too large: a class id is at most ${MAX_LABELS - 1}` };
    return { label: value };
  }
  if (typeof value === 'string') {
    if (value.trim() === '') return { reason: `column "${column}" is empty` };
    return { label: value };
  }
  const kind = Array.isArray(value) ? 'an array' : value instanceof Uint8Array ? 'bytes' : `${typeof value === 'object' ? 'an object' : `a ${typeof value}`}`;
  return { reason: `label in column "${column}" is ${kind} (${preview(value, 40)}), not an integer or a string` };
}

const INT_LIKE = /^\s*-?\d+\s*$/;

/** CSV and TSV cells are strings: a label column whose every value is a whole number holds ids (pandas infers int64). */
export function allIntLike(values: unknown[]): boolean {
  return values.length > 0 && values.every((v) => typeof v === 'string' && INT_LIKE.test(v));
}

/** Python's sorted() on str: by code point (JS's default sort compares UTF-16 units). */
export function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

export function stringLabelMaps(trainLabels: Iterable<string>): LabelMaps {
  const names = [...new Set(trainLabels)].sort(compareCodePoints);
  return mapsFromNames(names);
}

/**
 * Ids 0..n-1 where n is num_labels when given, else the largest id + 1. Names come from `classNames`
 * (a ClassLabel feature) when it covers every id, else LABEL_i.
 */
export function intLabelMaps(maxId: number, numLabels?: number, classNames?: string[]): LabelMaps {
  const n = numLabels ?? maxId + 1;
  if (!(Number.isInteger(n) && n >= 1 && n <= MAX_LABELS)) throw new RangeError(`intLabelMaps: ${n} classes; checkLabel and the run config bound it to ${MAX_LABELS}`);
  const useNames = classNames !== undefined && classNames.length >= n && new Set(classNames.slice(0, n)).size === n;
  return mapsFromNames(Array.from({ length: n }, (_, i) => (useNames ? classNames[i] : `LABEL_${i}`)));
}

function mapsFromNames(names: string[]): LabelMaps {
  const id2label = userTable<string>();
  const label2id = userTable<number>();
  names.forEach((name, i) => {
    id2label[String(i)] = name;
    label2id[name] = i;
  });
  return { id2label, label2id };
}

const LABEL_ID = /^(0|[1-9]\d{0,8})$/;

/**
 * transformers' label maps: id2label an object of id (a decimal integer key, 0 … n-1) → name, label2id an object
 * of name → id; when both are given they must be each other's inverse. Used for config.json and for the maps an
 * adapter carries in its safetensors metadata. `prefix` is put before the field names (e.g. "__metadata__.").
 */
export function checkLabelMaps(id2label: unknown, label2id: unknown, file: string, prefix: string): void {
  const fail = (field: string, msg: string): never => {
    throw new LoraStudioError(msg, file, `${prefix}${field}`);
  };
  const short = (k: string) => (k.length > 60 ? `${k.slice(0, 59)}…` : k);
  let n: number | undefined;
  if (id2label !== undefined) {
    if (!isPlainObject(id2label)) fail('id2label', `must be an object of label id → label name, got ${preview(id2label)}`);
    const ids = Object.keys(id2label as object);
    n = ids.length;
    if (n === 0) fail('id2label', 'must name at least one label');
    for (const id of ids) {
      const v = (id2label as Record<string, unknown>)[id];
      if (!LABEL_ID.test(id) || Number(id) >= n) fail(`id2label.${short(id)}`, `key must be a label id from 0 to ${n - 1} (the labels are numbered 0 … n-1)`);
      if (typeof v !== 'string') fail(`id2label.${short(id)}`, `must be a label name (a string), got ${preview(v)}`);
    }
  }
  if (label2id !== undefined) {
    if (!isPlainObject(label2id)) fail('label2id', `must be an object of label name → label id, got ${preview(label2id)}`);
    const names = Object.keys(label2id as object);
    if (n !== undefined && names.length !== n) fail('label2id', `has ${names.length} labels but id2label has ${n}`);
    for (const name of names) {
      const v = (label2id as Record<string, unknown>)[name];
      if (!Number.isInteger(v) || (v as number) < 0 || (v as number) >= (n ?? names.length)) {
        fail(`label2id.${short(name)}`, `must be a label id from 0 to ${(n ?? names.length) - 1}, got ${preview(v)}`);
      }
      if (n !== undefined && (id2label as Record<string, unknown>)[String(v)] !== name) {
        fail(`label2id.${short(name)}`, `is ${v}, but id2label.${v} is ${preview((id2label as Record<string, unknown>)[String(v)])}: the two maps must agree`);
      }
    }
  }
}
