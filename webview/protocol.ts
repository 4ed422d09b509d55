/**
 * The dashboard's protocol with the extension host (counterpart: extension/dashboard/panel.ts).
 * Notifications go host → webview, commands go webview → host. Each side checks what it receives before using
 * it: the webview with isHostMessage (here), the host with isWebviewMessage (extension/dashboard/messages.ts;
 * extension/ imports this file only for its types). The webview never imports trainer/: the few TrainEvent
 * fields it draws are re-declared here as DashboardEvent, and the host maps trainer events to them
 * (extension/dashboard/events.ts). Field names stay the trainer's (transformers' log_history names).
 */

// ---- events, as the webview sees them ----

export interface DashStart {
  event: 'start';
  backend: string;
  gpu: boolean;
  task: string;
  model: string;
  output_dir: string;
  trainable_params: number;
  all_params: number;
  total_steps: number;
  num_train_epochs: number;
  global_step: number;
}

export interface DashStep {
  event: 'step';
  step: number;
  epoch: number;
  loss: number;
  learning_rate: number;
  grad_norm: number;
  tokens_per_second: number;
  rss_mb: number;
  eta_s: number;
}

export interface DashEval {
  event: 'eval';
  step: number;
  epoch: number;
  /** eval_loss always; eval_accuracy/eval_f1 (seq-cls) or eval_perplexity (causal-lm), plus timings */
  metrics: Record<string, number>;
}

export interface DashCheckpoint {
  event: 'checkpoint';
  step: number;
  path: string;
}

export interface DashLog {
  event: 'log';
  level: 'info' | 'warning';
  message: string;
}

export interface DashDone {
  event: 'done';
  best: string | null;
  best_metric: number | null;
  output_dir: string;
  global_step: number;
  stopped: boolean;
}

export interface DashError {
  event: 'error';
  message: string;
}

export type DashboardEvent = DashStart | DashStep | DashEval | DashCheckpoint | DashLog | DashDone | DashError;

/** The run's state for the header and the buttons (the host's RunStatus, minus host-only details). */
export interface DashboardStatus {
  state: 'idle' | 'starting' | 'running' | 'stopping' | 'done' | 'failed';
  configFile: string | null;
  outputDir: string | null;
  /** a checkpoint exists, so "Resume from checkpoint" makes sense */
  canResume: boolean;
}

export const RUN_STATES: readonly DashboardStatus['state'][] = ['idle', 'starting', 'running', 'stopping', 'done', 'failed'];

// ---- the editable fields of the run config ----

/**
 * What a form field accepts. The host owns which run-config paths the dashboard may edit and their kinds
 * (extension/dashboard/messages.ts) and sends them in the `config` message; the webview keeps no table of them.
 */
export type FieldKind =
  | { type: 'string' }
  | { type: 'string-or-null' }
  | { type: 'number'; min?: number; minExclusive?: boolean; max?: number; maxExclusive?: boolean }
  | { type: 'integer'; min: number }
  | { type: 'enum'; options: readonly string[] };

/** One run-config path the dashboard may edit (dotted, e.g. `lora.r`), with what it accepts. */
export interface EditableField {
  path: string;
  kind: FieldKind;
}

// ---- host → webview ----

export type HostMessage =
  | { type: 'status'; status: DashboardStatus }
  /**
   * the raw run config object (as in lora-run.json), or null when there is none, and the fields of it the
   * dashboard may edit (anything else the form shows is read-only)
   */
  | { type: 'config'; config: Record<string, unknown> | null; configFile: string | null; fields: EditableField[] }
  /** forget the run's data (a history replay follows as `events`) */
  | { type: 'reset' }
  /** a batch of events, in order (live and throttled, or a chunk of the replayed history) */
  /** checked one by one on arrival (isDashboardEvent): a bad event is dropped, not the whole batch */
  | { type: 'events'; events: unknown[] }
  /** something the user should see in the banner (e.g. a config edit the host refused) */
  | { type: 'notice'; level: 'info' | 'error'; message: string };

// ---- webview → host ----

export type WebviewMessage =
  | { type: 'ready' }
  | { type: 'start' }
  | { type: 'stop' }
  | { type: 'resume' }
  | { type: 'editConfig'; path: string; value: unknown };

// ---- guards ----

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === 'number';
const isStr = (v: unknown): v is string => typeof v === 'string';
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isStrOrNull = (v: unknown) => v === null || isStr(v);
const isNumOrNull = (v: unknown) => v === null || isNum(v);
const hasNums = (o: Obj, keys: readonly string[]) => keys.every((k) => isNum(o[k]));

export function isDashboardEvent(v: unknown): v is DashboardEvent {
  if (!isObj(v)) return false;
  switch (v.event) {
    case 'start':
      return isStr(v.backend) && isBool(v.gpu) && isStr(v.task) && isStr(v.model) && isStr(v.output_dir)
        && hasNums(v, ['trainable_params', 'all_params', 'total_steps', 'num_train_epochs', 'global_step']);
    case 'step':
      return hasNums(v, ['step', 'epoch', 'loss', 'learning_rate', 'grad_norm', 'tokens_per_second', 'rss_mb', 'eta_s']);
    case 'eval':
      return isNum(v.step) && isNum(v.epoch) && isObj(v.metrics) && Object.values(v.metrics).every(isNum);
    case 'checkpoint':
      return isNum(v.step) && isStr(v.path);
    case 'log':
      return (v.level === 'info' || v.level === 'warning') && isStr(v.message);
    case 'done':
      return isStrOrNull(v.best) && isNumOrNull(v.best_metric) && isStr(v.output_dir) && isNum(v.global_step) && isBool(v.stopped);
    case 'error':
      return isStr(v.message);
    default:
      return false;
  }
}

export function isDashboardStatus(v: unknown): v is DashboardStatus {
  return isObj(v) && RUN_STATES.includes(v.state as DashboardStatus['state'])
    && isStrOrNull(v.configFile) && isStrOrNull(v.outputDir) && isBool(v.canResume);
}

const isOptNum = (v: unknown) => v === undefined || (isNum(v) && Number.isFinite(v));
const isOptBool = (v: unknown) => v === undefined || isBool(v);

export function isFieldKind(v: unknown): v is FieldKind {
  if (!isObj(v)) return false;
  switch (v.type) {
    case 'string':
    case 'string-or-null':
      return true;
    case 'number':
      return isOptNum(v.min) && isOptNum(v.max) && isOptBool(v.minExclusive) && isOptBool(v.maxExclusive);
    case 'integer':
      return isNum(v.min) && Number.isFinite(v.min);
    case 'enum':
      return Array.isArray(v.options) && v.options.length > 0 && v.options.every(isStr);
    default:
      return false;
  }
}

export function isEditableField(v: unknown): v is EditableField {
  return isObj(v) && isStr(v.path) && v.path.length > 0 && isFieldKind(v.kind);
}

export function isHostMessage(v: unknown): v is HostMessage {
  if (!isObj(v)) return false;
  switch (v.type) {
    case 'status':
      return isDashboardStatus(v.status);
    case 'config':
      return (v.config === null || isObj(v.config)) && isStrOrNull(v.configFile)
        && Array.isArray(v.fields) && v.fields.every(isEditableField);
    case 'reset':
      return true;
    case 'events':
      return Array.isArray(v.events);
    case 'notice':
      return (v.level === 'info' || v.level === 'error') && isStr(v.message);
    default:
      return false;
  }
}
