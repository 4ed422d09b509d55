/**
 * The config form's fields without the DOM: how the form lays out and labels run-config paths, which of them
 * the host lets it edit (the host sends that list with each config; the webview keeps no copy), how a value is
 * shown as text, and how the user's text becomes a value, checked against the kind the host sent so the user
 * sees a mistake at once (the host checks every edit again when it receives it).
 */
import type { EditableField, FieldKind } from './protocol';

/** How the form shows a run-config path. Whether it is editable, and how, comes from the host. */
export interface FieldLayout {
  path: string;
  label: string;
  /** shown when the config does not set the field (the trainer's default) */
  defaultText: string;
  hint?: string;
}

export interface FieldSection {
  title: string;
  fields: FieldLayout[];
}

/** A field of the built form: its layout and, when the host lets the dashboard edit it, its kind. */
export interface FormField extends FieldLayout {
  /** undefined: shown read-only */
  kind?: FieldKind;
}

export interface FormSection {
  title: string;
  fields: FormField[];
}

/**
 * The form's layout, in order. Defaults are PEFT's LoraConfig and transformers' TrainingArguments, as the
 * trainer uses them. A path here that the host does not list as editable is shown read-only (target_modules,
 * which the Modules view sets).
 */
export const FORM_LAYOUT: readonly FieldSection[] = [
  { title: 'Model', fields: [
    { path: 'model', label: 'Model', defaultText: '', hint: 'A model folder (relative to the run config) or a hub id.' },
    { path: 'task', label: 'Task', defaultText: 'causal-lm' },
  ] },
  { title: 'Data', fields: [
    { path: 'data.train', label: 'Training data', defaultText: '', hint: '.jsonl, .json, .csv, .tsv, .txt or .parquet' },
    { path: 'data.eval', label: 'Evaluation data', defaultText: '', hint: 'Empty: hold out eval_split of the training data.' },
  ] },
  { title: 'LoRA', fields: [
    { path: 'lora.r', label: 'Rank (r)', defaultText: '8' },
    { path: 'lora.lora_alpha', label: 'Alpha (lora_alpha)', defaultText: '8' },
    { path: 'lora.lora_dropout', label: 'Dropout (lora_dropout)', defaultText: '0' },
    { path: 'lora.target_modules', label: 'Target modules', defaultText: "the model's default", hint: 'Set in the Modules view.' },
  ] },
  { title: 'Training', fields: [
    { path: 'training.num_train_epochs', label: 'Epochs', defaultText: '3' },
    { path: 'training.per_device_train_batch_size', label: 'Batch size', defaultText: '8' },
    { path: 'training.learning_rate', label: 'Learning rate', defaultText: '5e-5' },
    { path: 'training.lr_scheduler_type', label: 'Scheduler', defaultText: 'linear' },
    { path: 'training.eval_strategy', label: 'Evaluate', defaultText: 'no' },
    { path: 'training.save_strategy', label: 'Save checkpoints', defaultText: 'steps' },
  ] },
];

/** The value at a dotted path of a JSON object, or undefined. */
export function getPath(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const key of path.split('.')) {
    if (typeof cur !== 'object' || cur === null || Array.isArray(cur) || !Object.prototype.hasOwnProperty.call(cur, key)) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

/** A config value as the form shows it ('' when unset). */
export function formatFieldValue(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (Array.isArray(v)) return v.map(String).join(', ');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/**
 * The form for the fields the host lets the dashboard edit: the layout's sections, each field with the kind the
 * host sent (none: read-only), then, under "Other", any editable field the layout does not name.
 */
export function buildForm(editable: readonly EditableField[]): FormSection[] {
  const kinds = new Map(editable.map((f) => [f.path, f.kind]));
  const laidOut = new Set<string>();
  const sections: FormSection[] = FORM_LAYOUT.map((s) => ({
    title: s.title,
    fields: s.fields.map((f) => {
      laidOut.add(f.path);
      const kind = kinds.get(f.path);
      return kind ? { ...f, kind } : { ...f };
    }),
  }));
  const other = editable.filter((f) => !laidOut.has(f.path)).map((f) => ({ path: f.path, label: f.path, defaultText: '', kind: f.kind }));
  if (other.length > 0) sections.push({ title: 'Other', fields: other });
  return sections;
}

export type Parsed = { ok: true; value: unknown } | { ok: false; error: string };

/** Why `value` does not fit `kind`, or null when it does. */
function kindError(kind: FieldKind, value: unknown): string | null {
  switch (kind.type) {
    case 'string':
      return typeof value === 'string' && value.trim() ? null : 'must not be empty';
    case 'string-or-null':
      return value === null || (typeof value === 'string' && value.trim()) ? null : 'a file path, or empty';
    case 'integer':
      if (Number.isSafeInteger(value) && (value as number) >= kind.min && (kind.max === undefined || (value as number) <= kind.max)) return null;
      return kind.max === undefined ? `must be an integer >= ${kind.min}` : `must be an integer from ${kind.min} to ${kind.max}`;
    case 'number': {
      const aboveMin = (v: number) => kind.min === undefined || (kind.minExclusive ? v > kind.min : v >= kind.min);
      const belowMax = (v: number) => kind.max === undefined || (kind.maxExclusive ? v < kind.max : v <= kind.max);
      if (typeof value === 'number' && Number.isFinite(value) && aboveMin(value) && belowMax(value)) return null;
      const lo = kind.min === undefined ? '' : `${kind.minExclusive ? '>' : '>='} ${kind.min}`;
      const hi = kind.max === undefined ? '' : `${kind.maxExclusive ? '<' : '<='} ${kind.max}`;
      return `must be a number ${[lo, hi].filter(Boolean).join(' and ')}`.trim();
    }
    case 'enum':
      return typeof value === 'string' && kind.options.includes(value) ? null : `must be one of ${kind.options.join(', ')}`;
  }
}

/** The user's text for a field of kind `kind` as the value to send, or why it is not acceptable (no kind: read-only). */
export function parseFieldInput(kind: FieldKind | undefined, text: string): Parsed {
  if (!kind) return { ok: false, error: 'not editable here' };
  const t = text.trim();
  let value: unknown = t;
  if (kind.type === 'string-or-null' && t === '') value = null;
  else if (kind.type === 'integer' || kind.type === 'number') value = t === '' ? NaN : Number(t);
  const error = kindError(kind, value);
  return error === null ? { ok: true, value } : { ok: false, error };
}
