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
  /** the backend as the header names it ("WASM", "TensorFlow (GPU)", "WebGPU · NVIDIA H200"), from the host */
  backend_label?: string;
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
  /** output_dir holds a finished adapter (adapter_model.safetensors), so "Analyze Adapter…" makes sense */
  hasAdapter?: boolean;
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
  | { type: 'integer'; min: number; max?: number }
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
  /** "LoRA: Analyze Adapter…" on the run's adapter */
  | { type: 'analyze' }
  /** "LoRA: Compare Runs…" */
  | { type: 'compare' }
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
      return isStr(v.backend) && isBool(v.gpu) && (v.backend_label === undefined || isStr(v.backend_label)) && isStr(v.task) && isStr(v.model) && isStr(v.output_dir)
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
    && isStrOrNull(v.configFile) && isStrOrNull(v.outputDir) && isBool(v.canResume) && (v.hasAdapter === undefined || isBool(v.hasAdapter));
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
      return isNum(v.min) && Number.isFinite(v.min) && isOptNum(v.max);
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

// ---- the Analyze panel (counterpart: extension/analyze/panel.ts) ----

/** One adapted module of `lora-studio analyze` (trainer/protocol.ts AnalyzedModule, re-declared). */
export interface AnalysisModule {
  name: string;
  r: number;
  /** all r singular values of ΔW, descending */
  singular_values: number[];
  /** ‖ΔW‖_F */
  delta_fro: number;
  /** ‖ΔW‖²_F / σ₁² */
  stable_rank: number;
  /** with a base model: ‖UᵀWV‖_F against a random baseline, and ‖ΔW‖_F / ‖UᵀWV‖_F */
  amplification?: { factor: number; projected_fro: number; random_fro: number };
}

/** What the Analyze panel shows: the CLI's AnalyzeResult, with the folders it read. */
export interface AnalysisData {
  adapter: string;
  base: string | null;
  compare: string | null;
  modules: AnalysisModule[];
  /** with a second adapter: phi[i-1][j-1] = φ(A1, A2, i, j), over the modules both adapt */
  similarity: Array<{ name: string; phi: number[][] }>;
  warnings: string[];
}

export type AnalyzeHostMessage =
  | { type: 'analysis'; data: AnalysisData }
  /** the analysis failed: the CLI's message (file: field: message) */
  | { type: 'error'; message: string }
  | { type: 'notice'; level: 'info' | 'error'; message: string };

// ---- the Compare Runs panel (counterpart: extension/analyze/comparePanel.ts) ----

/** x (steps) and y, same length */
export type XY = [number[], number[]];

export interface CompareRun {
  /** the run folder's name (its legend entry) */
  name: string;
  dir: string;
  loss: XY;
  /** eval_loss, eval_accuracy, … by name */
  evals: Record<string, XY>;
}

/** One run-config field whose value differs between the runs: the value per run (JSON), null where absent. */
export interface ConfigDiffRow {
  path: string;
  values: Array<string | null>;
}

export type CompareHostMessage =
  | { type: 'compare'; runs: CompareRun[]; diff: ConfigDiffRow[]; configSources: Array<string | null> }
  | { type: 'notice'; level: 'info' | 'error'; message: string };

/** webview → host, for both panels */
export type PanelWebviewMessage =
  | { type: 'ready' }
  /** a chart as an image (data:image/png;base64,… or data:image/svg+xml;base64,…), to save under `name` */
  | { type: 'saveImage'; name: string; dataUrl: string }
  /** what the page drew (the integration tests wait for it): `charts` names each chart with its item count */
  | { type: 'rendered'; charts: Record<string, number> };

const isNumArray = (v: unknown): v is number[] => Array.isArray(v) && v.every(isNum);
const isNotice = (v: Obj) => (v.level === 'info' || v.level === 'error') && isStr(v.message);

export function isAnalysisModule(v: unknown): v is AnalysisModule {
  if (!isObj(v) || !isStr(v.name) || !isNum(v.r) || !isNumArray(v.singular_values) || !isNum(v.delta_fro) || !isNum(v.stable_rank)) return false;
  const a = v.amplification;
  return a === undefined || (isObj(a) && hasNums(a, ['factor', 'projected_fro', 'random_fro']));
}

export function isAnalysisData(v: unknown): v is AnalysisData {
  return isObj(v) && isStr(v.adapter) && isStrOrNull(v.base) && isStrOrNull(v.compare)
    && Array.isArray(v.modules) && v.modules.every(isAnalysisModule)
    && Array.isArray(v.similarity) && v.similarity.every((s) => isObj(s) && isStr(s.name) && Array.isArray(s.phi) && s.phi.every(isNumArray))
    && Array.isArray(v.warnings) && v.warnings.every(isStr);
}

export function isAnalyzeHostMessage(v: unknown): v is AnalyzeHostMessage {
  if (!isObj(v)) return false;
  switch (v.type) {
    case 'analysis':
      return isAnalysisData(v.data);
    case 'error':
      return isStr(v.message);
    case 'notice':
      return isNotice(v);
    default:
      return false;
  }
}

const isXY = (v: unknown): v is XY => Array.isArray(v) && v.length === 2 && isNumArray(v[0]) && isNumArray(v[1]) && v[0].length === v[1].length;

export function isCompareRun(v: unknown): v is CompareRun {
  return isObj(v) && isStr(v.name) && isStr(v.dir) && isXY(v.loss) && isObj(v.evals) && Object.values(v.evals).every(isXY);
}

export function isCompareHostMessage(v: unknown): v is CompareHostMessage {
  if (!isObj(v)) return false;
  switch (v.type) {
    case 'compare':
      return Array.isArray(v.runs) && v.runs.every(isCompareRun)
        && Array.isArray(v.diff) && v.diff.every((r) => isObj(r) && isStr(r.path) && Array.isArray(r.values) && r.values.every(isStrOrNull))
        && Array.isArray(v.configSources) && v.configSources.every(isStrOrNull);
    case 'notice':
      return isNotice(v);
    default:
      return false;
  }
}
