/**
 * The run as the dashboard knows it, built from DashboardEvents, without the DOM: the chart series, the
 * progress, the backend, the outcome and a tail of recent event lines. It also writes and reads the small
 * summary that getState/setState keep across reloads (until the host's replay rebuilds the whole run).
 */
import type { DashStart, DashboardEvent, DashDone } from './protocol';
import { GrowingSeries, selectIndices } from './series';

export const TAIL_LINES = 200;
/** eval metrics that are timings, not quality */
const EVAL_TIMINGS = new Set(['eval_runtime', 'eval_samples_per_second', 'eval_steps_per_second']);

export const TRAIN_FIELDS = ['loss', 'learning_rate', 'tokens_per_second', 'rss_mb', 'grad_norm'] as const;

export interface Progress {
  step: number;
  total_steps: number;
  epoch: number;
  num_train_epochs: number;
  eta_s: number | null;
}

/** What setState keeps: small, JSON-safe. */
export interface RunSummary {
  start: DashStart | null;
  progress: Progress;
  done: DashDone | null;
  error: string | null;
  lastCheckpoint: string | null;
  tail: string[];
  train: { x: number[]; cols: Record<string, number[]> };
  evals: { x: number[]; cols: Record<string, number[]> };
}

const num = (v: number) => (Number.isFinite(v) ? v : NaN);

export function formatNumber(v: number, digits = 4): string {
  if (!Number.isFinite(v)) return String(v);
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e6)) return v.toExponential(2);
  return Number(v.toPrecision(digits)).toString();
}

export function formatDuration(s: number | null): string {
  if (s === null || !Number.isFinite(s) || s < 0) return '—';
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${sec}s` : `${sec}s`;
}

/** One line of the event tail. */
export function formatEvent(e: DashboardEvent): string {
  switch (e.event) {
    case 'start':
      return `start  ${e.model} (${e.task}) on ${e.backend}${e.gpu ? ' GPU' : ''}  ${e.total_steps} steps${e.global_step > 0 ? `, resuming at ${e.global_step}` : ''}`;
    case 'step':
      return `step ${e.step}  epoch ${e.epoch.toFixed(2)}  loss ${formatNumber(e.loss)}  lr ${formatNumber(e.learning_rate, 3)}  ${Math.round(e.tokens_per_second)} tok/s  ${Math.round(e.rss_mb)} MB`;
    case 'eval':
      return `eval @${e.step}  ${Object.entries(e.metrics).filter(([k]) => !EVAL_TIMINGS.has(k)).map(([k, v]) => `${k} ${formatNumber(v)}`).join('  ')}`;
    case 'checkpoint':
      return `checkpoint @${e.step}  ${e.path}`;
    case 'log':
      return `${e.level === 'warning' ? 'warning: ' : ''}${e.message}`;
    case 'done':
      return `done at step ${e.global_step}${e.stopped ? ' (stopped)' : ''}${e.best ? `  best ${e.best} (${e.best_metric === null ? '' : formatNumber(e.best_metric)})` : ''}`;
    case 'error':
      return `error: ${e.message}`;
  }
}

/** A table of series sharing one x (steps); columns can appear later and are back-filled with NaN. */
export class SeriesTable {
  readonly x = new GrowingSeries();
  readonly cols = new Map<string, GrowingSeries>();

  get length(): number {
    return this.x.length;
  }

  /** Appends a row; false (and nothing changes) when `x` does not come after the last row. */
  add(x: number, values: Record<string, number>): boolean {
    const last = this.x.last();
    if (last !== undefined && !(x > last)) return false;
    const n = this.x.length;
    for (const k of Object.keys(values)) {
      if (!this.cols.has(k)) {
        const s = new GrowingSeries();
        for (let i = 0; i < n; i++) s.push(NaN);
        this.cols.set(k, s);
      }
    }
    this.x.push(x);
    for (const [k, s] of this.cols) s.push(k in values ? num(values[k]) : NaN);
    return true;
  }

  /** Drops the rows after step `x`. */
  truncateAfter(x: number): void {
    let n = this.x.length;
    while (n > 0 && this.x.get(n - 1) > x) n--;
    this.x.truncate(n);
    for (const s of this.cols.values()) s.truncate(n);
  }

  clear(): void {
    this.x.clear();
    this.cols.clear();
  }

  /** At most `maxPoints` rows (min/max selection), as plain arrays (NaN becomes null in JSON; read back as NaN). */
  summary(maxPoints: number): { x: number[]; cols: Record<string, number[]> } {
    const names = [...this.cols.keys()];
    const idx = selectIndices(names.map((k) => this.cols.get(k)!.view()), this.length, maxPoints);
    const cols: Record<string, number[]> = {};
    for (const k of names) cols[k] = idx.map((i) => this.cols.get(k)!.get(i));
    return { x: idx.map((i) => this.x.get(i)), cols };
  }

  restore(s: { x: number[]; cols: Record<string, number[]> }): void {
    this.clear();
    s.x.forEach((x, i) => {
      const row: Record<string, number> = {};
      for (const [k, col] of Object.entries(s.cols)) row[k] = typeof col[i] === 'number' ? col[i] : NaN;
      this.add(x, row);
    });
  }
}

export class RunState {
  start: DashStart | null = null;
  progress: Progress = { step: 0, total_steps: 0, epoch: 0, num_train_epochs: 0, eta_s: null };
  done: DashDone | null = null;
  error: string | null = null;
  lastCheckpoint: string | null = null;
  readonly train = new SeriesTable();
  readonly evals = new SeriesTable();
  private tailLines: string[] = [];
  /** bumped on every change the view must redraw */
  version = 0;

  get tail(): readonly string[] {
    return this.tailLines;
  }

  /** The quality metrics seen so far (eval_accuracy, eval_f1, eval_perplexity, …), without eval_loss. */
  evalMetricNames(): string[] {
    return [...this.evals.cols.keys()].filter((k) => k !== 'eval_loss' && !EVAL_TIMINGS.has(k));
  }

  reset(): void {
    this.start = null;
    this.progress = { step: 0, total_steps: 0, epoch: 0, num_train_epochs: 0, eta_s: null };
    this.done = null;
    this.error = null;
    this.lastCheckpoint = null;
    this.train.clear();
    this.evals.clear();
    this.tailLines = [];
    this.version++;
  }

  apply(events: readonly DashboardEvent[]): void {
    for (const e of events) this.applyOne(e);
    if (this.tailLines.length > TAIL_LINES) this.tailLines = this.tailLines.slice(-TAIL_LINES);
    this.version++;
  }

  private applyOne(e: DashboardEvent): void {
    this.tailLines.push(formatEvent(e));
    if (this.tailLines.length > 2 * TAIL_LINES) this.tailLines = this.tailLines.slice(-TAIL_LINES);
    switch (e.event) {
      case 'start':
        // a fresh run starts over; a resumed one drops what came after its checkpoint
        if (e.global_step <= 0) {
          this.train.clear();
          this.evals.clear();
        } else {
          this.train.truncateAfter(e.global_step);
          this.evals.truncateAfter(e.global_step);
        }
        this.start = e;
        this.done = null;
        this.error = null;
        this.progress = { step: e.global_step, total_steps: e.total_steps, epoch: this.progress.epoch, num_train_epochs: e.num_train_epochs, eta_s: null };
        return;
      case 'step': {
        const row: Record<string, number> = {};
        for (const k of TRAIN_FIELDS) row[k] = e[k];
        this.train.add(e.step, row);
        this.progress = { ...this.progress, step: e.step, epoch: e.epoch, eta_s: e.eta_s };
        return;
      }
      case 'eval':
        this.evals.add(e.step, Object.fromEntries(Object.entries(e.metrics).filter(([k]) => !EVAL_TIMINGS.has(k))));
        return;
      case 'checkpoint':
        this.lastCheckpoint = e.path;
        return;
      case 'done':
        this.done = e;
        this.progress = { ...this.progress, step: e.global_step, eta_s: 0 };
        return;
      case 'error':
        this.error = e.message;
        return;
      case 'log':
        return;
    }
  }

  summary(maxPoints = 300): RunSummary {
    return {
      start: this.start,
      progress: this.progress,
      done: this.done,
      error: this.error,
      lastCheckpoint: this.lastCheckpoint,
      tail: this.tailLines.slice(-50),
      train: this.train.summary(maxPoints),
      evals: this.evals.summary(maxPoints),
    };
  }

  restore(s: RunSummary): void {
    this.start = s.start;
    this.progress = s.progress;
    this.done = s.done;
    this.error = s.error;
    this.lastCheckpoint = s.lastCheckpoint;
    this.tailLines = [...s.tail];
    this.train.restore(s.train);
    this.evals.restore(s.evals);
    this.version++;
  }
}

/** A light shape check of a summary read back from getState (it is ours, but may come from an older version). */
export function isRunSummary(v: unknown): v is RunSummary {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  const table = (t: unknown) =>
    typeof t === 'object' && t !== null && Array.isArray((t as Record<string, unknown>).x)
    && typeof (t as Record<string, unknown>).cols === 'object' && (t as Record<string, unknown>).cols !== null;
  return typeof o.progress === 'object' && o.progress !== null && Array.isArray(o.tail) && table(o.train) && table(o.evals);
}
