/**
 * The host's side of the webview → host commands (protocol: webview/protocol.ts, which the host imports only
 * for its types). The receiver validates what it receives: every message from the dashboard passes
 * isWebviewMessage here before the panel uses it. The host also owns which run-config fields the dashboard may
 * edit and what each accepts; it sends that table to the webview (DASHBOARD_FIELDS, in the `config` message),
 * so the webview keeps no copy of it. Kept free of vscode so it can be unit-tested.
 */
import type { EditableField, FieldKind, WebviewMessage } from '../../webview/protocol';

/** trainer/config/schema.ts LR_SCHEDULER_TYPES, re-declared (extension/ imports only the trainer's protocol types). */
export const LR_SCHEDULER_TYPES = ['linear', 'cosine', 'constant', 'constant_with_warmup'] as const;
/** transformers' IntervalStrategy, as trainer/config/schema.ts accepts it for eval_strategy and save_strategy. */
export const INTERVAL_STRATEGIES = ['no', 'steps', 'epoch'] as const;
export const TASKS = ['causal-lm', 'seq-cls'] as const;

/**
 * The only run-config paths the dashboard may edit, in form order, with what each accepts; mirrors
 * trainer/config/schema.ts for these fields, bounds included (MAX_RANK, MAX_EPOCHS, MAX_BATCH), and a unit test
 * holds it to that schema. Anything else (output_dir, target_modules, …) is not editable there.
 */
export const DASHBOARD_FIELDS: readonly EditableField[] = [
  { path: 'model', kind: { type: 'string' } },
  { path: 'task', kind: { type: 'enum', options: TASKS } },
  { path: 'data.train', kind: { type: 'string' } },
  { path: 'data.eval', kind: { type: 'string-or-null' } },
  { path: 'lora.r', kind: { type: 'integer', min: 1, max: 65_536 } },
  { path: 'lora.lora_alpha', kind: { type: 'number', min: 0, minExclusive: true } },
  { path: 'lora.lora_dropout', kind: { type: 'number', min: 0, max: 1, maxExclusive: true } },
  { path: 'training.num_train_epochs', kind: { type: 'number', min: 0, minExclusive: true, max: 1_000_000 } },
  { path: 'training.per_device_train_batch_size', kind: { type: 'integer', min: 1, max: 65_536 } },
  { path: 'training.learning_rate', kind: { type: 'number', min: 0 } },
  { path: 'training.lr_scheduler_type', kind: { type: 'enum', options: LR_SCHEDULER_TYPES } },
  { path: 'training.eval_strategy', kind: { type: 'enum', options: INTERVAL_STRATEGIES } },
  { path: 'training.save_strategy', kind: { type: 'enum', options: INTERVAL_STRATEGIES } },
];

const KIND_BY_PATH: ReadonlyMap<string, FieldKind> = new Map(DASHBOARD_FIELDS.map((f) => [f.path, f.kind]));

/** Whether `value` fits `kind`. */
export function fitsKind(kind: FieldKind, value: unknown): boolean {
  switch (kind.type) {
    case 'string':
      return typeof value === 'string' && value.trim().length > 0;
    case 'string-or-null':
      return value === null || (typeof value === 'string' && value.trim().length > 0);
    case 'integer':
      return Number.isSafeInteger(value) && (value as number) >= kind.min && (kind.max === undefined || (value as number) <= kind.max);
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return false;
      if (kind.min !== undefined && (kind.minExclusive ? value <= kind.min : value < kind.min)) return false;
      if (kind.max !== undefined && (kind.maxExclusive ? value >= kind.max : value > kind.max)) return false;
      return true;
    }
    case 'enum':
      return typeof value === 'string' && kind.options.includes(value);
  }
}

/** Whether the dashboard may set `path` to `value` (an editable path, and a value that field accepts). */
export function isValidFieldValue(path: string, value: unknown): boolean {
  const kind = KIND_BY_PATH.get(path);
  return kind !== undefined && fitsKind(kind, value);
}

/** A webview command; `editConfig` only for an editable path with a value that field accepts. */
export function isWebviewMessage(v: unknown): v is WebviewMessage {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  switch (o.type) {
    case 'ready':
    case 'start':
    case 'stop':
    case 'resume':
    case 'analyze':
    case 'compare':
      return true;
    case 'editConfig':
      return typeof o.path === 'string' && isValidFieldValue(o.path, o.value);
    default:
      return false;
  }
}
