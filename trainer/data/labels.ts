/**
 * Class labels for seq-cls: which raw values are labels, and the id ↔ name maps. Integer labels are ids
 * (names LABEL_i, as transformers defaults them, or a Parquet file's ClassLabel names); string labels get
 * ids in sorted order of the distinct training values, as datasets' class_encode_column does.
 */
export type RawLabel = number | string;

export interface LabelMaps {
  /** keys are stringified ids, as transformers writes config.json */
  id2label: Record<string, string>;
  label2id: Record<string, number>;
}

/** A value that may serve as a label, or why not. A missing column is the caller's to report. */
export function checkLabel(value: unknown, column: string): { label: RawLabel } | { reason: string } {
  if (value === null) return { reason: `column "${column}" is null` };
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) return { reason: `label ${value} in column "${column}" is not an integer or a string` };
    if (value < 0) return { reason: `label ${value} in column "${column}" is negative` };
    return { label: value };
  }
  if (typeof value === 'string') {
    if (value.trim() === '') return { reason: `column "${column}" is empty` };
    return { label: value };
  }
  const kind = Array.isArray(value) ? 'an array' : `a ${typeof value}`;
  return { reason: `label in column "${column}" is ${kind}, not an integer or a string` };
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
  const useNames = classNames !== undefined && classNames.length >= n && new Set(classNames.slice(0, n)).size === n;
  return mapsFromNames(Array.from({ length: n }, (_, i) => (useNames ? classNames[i] : `LABEL_${i}`)));
}

function mapsFromNames(names: string[]): LabelMaps {
  const id2label: Record<string, string> = {};
  const label2id: Record<string, number> = {};
  names.forEach((name, i) => {
    id2label[String(i)] = name;
    label2id[name] = i;
  });
  return { id2label, label2id };
}
