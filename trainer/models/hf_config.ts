/**
 * What every family's config.json reader does the same way (models/gpt2/config.ts, models/llama/config.ts): zod
 * helpers for bounded fields, the first validation problem as an error naming the JSON path and the value, the
 * seq-cls label fields, and the bound on the parameter count a config implies. The bounds themselves stay with
 * each family.
 */
import { z } from 'zod';
import { LoraStudioError, preview } from '../errors';
import { checkLabelMaps } from '../data/labels';

/** An integer field in [lo, hi] (`orNull`: the message also allows null, for fields that are `.nullable()`). */
export const intIn = (lo: number, hi: number, orNull = false) => {
  const error = `must be ${orNull ? 'null or ' : ''}an integer from ${lo} to ${hi}`;
  return z.number({ error }).int({ error }).min(lo, { error }).max(hi, { error });
};

export const configBoolean = z.boolean({ error: 'must be true or false' });

/**
 * Validates `c` (defaults merged with the user's object) against `schema`. The caller keeps `c` itself, not zod's
 * output, which drops keys such as "__proto__" that are ordinary keys in a JSON file.
 */
export function checkConfigFields(schema: z.ZodType, c: Record<string, unknown>, file: string): void {
  const checked = schema.safeParse(c);
  if (checked.success) return;
  const issue = checked.error.issues[0];
  const field = issue.path.map(String).join('.');
  throw new LoraStudioError(`${issue.message} (got ${preview(valueAt(c, issue.path))})`, file, field || undefined);
}

function valueAt(root: unknown, p: readonly PropertyKey[]): unknown {
  let cur = root;
  for (const k of p) {
    if (!cur || typeof cur !== 'object' || !Object.prototype.hasOwnProperty.call(cur, k)) return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
}

/** The seq-cls fields transformers' PretrainedConfig shares across families. */
export interface HeadFields {
  num_labels?: number;
  id2label?: Record<string, string>;
  label2id?: Record<string, number>;
}

/** id2label and label2id are each other's inverse, and agree with num_labels. */
export function checkConfigLabels(c: HeadFields, file: string): void {
  if (c.id2label !== undefined || c.label2id !== undefined) checkLabelMaps(c.id2label, c.label2id, file, '');
  if (c.num_labels !== undefined && c.id2label !== undefined && Object.keys(c.id2label).length !== c.num_labels) {
    throw new LoraStudioError(`is ${c.num_labels} but id2label has ${Object.keys(c.id2label).length} labels`, file, 'num_labels');
  }
}

/** The seq-cls head size: num_labels, else the size of id2label, else 2 (transformers' default). */
export function configNumLabels(c: HeadFields): number {
  if (typeof c.num_labels === 'number') return c.num_labels;
  if (c.id2label) return Object.keys(c.id2label).length;
  return 2;
}

/**
 * The parameter count `base` + Σ parts, refused beyond `limit` before anything is built; the error names the field
 * behind the largest part. `dims` describes the config in the message.
 */
export function checkParameterCount(parts: Array<[field: string, params: number]>, base: number, limit: number, file: string, dims: string): number {
  const total = parts.reduce((a, [, p]) => a + p, base);
  if (total > limit) {
    const [field] = parts.reduce((a, b) => (b[1] > a[1] ? b : a));
    throw new LoraStudioError(`describes a model of ${total.toExponential(2)} parameters (${dims}); the limit is ${limit.toExponential(0)}`, file, field);
  }
  return total;
}
