/**
 * The host's half of the dashboard data flow, kept free of vscode so it can be unit-tested: checks trainer
 * events (live, or read back from metrics.jsonl) and maps them and the run status to the webview's shapes,
 * merges a history replay with live events that arrived meanwhile, and batches live events so the webview gets
 * at most one message per throttle interval. It imports only types from trainer/ and webview/.
 */
import type { TrainEvent } from '../../trainer/protocol';
import type { DashboardEvent, DashboardStatus } from '../../webview/protocol';
import type { RunStatus } from './host';
import { isTrainEvent } from '../trainerClient';
import { backendLabel } from '../backendLabel';

/**
 * The webview's event for a trainer event (live, or a metrics.jsonl line that a killed run may have cut short or
 * a user may have edited), or undefined when it is not one. Field types are checked where they are used, in the
 * webview (isDashboardEvent), which drops a malformed event without losing the rest of its batch.
 */
export function mapTrainEvent(v: unknown): DashboardEvent | undefined {
  if (!isTrainEvent(v)) return undefined;
  try {
    return toDashboardEvent(v);
  } catch {
    return undefined; // e.g. an eval event without metrics
  }
}

/** The fields the webview draws, copied by name (nothing else of the trainer's event crosses over). */
export function toDashboardEvent(e: TrainEvent): DashboardEvent {
  switch (e.event) {
    case 'start':
      return {
        event: 'start', backend: e.backend, gpu: e.gpu, backend_label: backendLabel(e).text, task: e.task, model: e.model, output_dir: e.output_dir,
        trainable_params: e.trainable_params, all_params: e.all_params, total_steps: e.total_steps,
        num_train_epochs: e.num_train_epochs, global_step: e.global_step,
      };
    case 'step':
      return {
        event: 'step', step: e.step, epoch: e.epoch, loss: e.loss, learning_rate: e.learning_rate,
        grad_norm: e.grad_norm, tokens_per_second: e.tokens_per_second, rss_mb: e.rss_mb, eta_s: e.eta_s,
      };
    case 'eval':
      return { event: 'eval', step: e.step, epoch: e.epoch, metrics: e.metrics };
    case 'checkpoint':
      return { event: 'checkpoint', step: e.step, path: e.path };
    case 'log':
      return { event: 'log', level: e.level, message: e.message };
    case 'done':
      return {
        event: 'done', best: e.best, best_metric: e.best_metric, output_dir: e.output_dir,
        global_step: e.global_step, stopped: e.stopped,
      };
    case 'error':
      if (typeof e.message !== 'string') throw new TypeError('an error event without a message');
      return { event: 'error', message: [e.message, e.file, e.field].filter((x) => typeof x === 'string' && x).join(' — ') };
  }
}

export function toDashboardStatus(s: RunStatus): DashboardStatus {
  return {
    state: s.state,
    configFile: s.configFile ?? null,
    outputDir: s.outputDir ?? null,
    canResume: s.latestCheckpoint !== undefined,
  };
}

/**
 * The replayed history followed by the live events that arrived while it was read, minus those the history
 * already holds (metrics.jsonl and the live stream carry the same events, so equal JSON means the same event).
 */
export function mergeReplay(history: readonly DashboardEvent[], live: readonly DashboardEvent[], window = 2000): DashboardEvent[] {
  const seen = new Set(history.slice(-window).map((e) => JSON.stringify(e)));
  return [...history, ...live.filter((e) => !seen.has(JSON.stringify(e)))];
}

/** Splits a long replay into messages of at most `size` events. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += Math.max(1, size)) out.push(items.slice(i, i + Math.max(1, size)));
  return out;
}

export interface Timer {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const realTimer: Timer = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/**
 * Collects events and hands them to `flush` as one array at most once per `intervalMs` (trailing edge: the
 * first event of a quiet period starts the clock). A batch that reaches `maxBatch` goes at once, so one message
 * never grows without bound. `intervalMs <= 0` still batches the events of one tick.
 */
export class EventBatcher<T> {
  private pending: T[] = [];
  private handle: unknown;
  private disposed = false;

  constructor(
    private readonly flushTo: (batch: T[]) => void,
    private intervalMs: number,
    private readonly maxBatch = 5000,
    private readonly timer: Timer = realTimer,
  ) {}

  push(item: T): void {
    if (this.disposed) return;
    this.pending.push(item);
    if (this.pending.length >= this.maxBatch) this.flush();
    else if (this.handle === undefined) this.handle = this.timer.set(() => this.flush(), Math.max(0, this.intervalMs));
  }

  /** A new interval (the throttle setting changed); applies from the next batch. */
  setInterval(ms: number): void {
    this.intervalMs = ms;
  }

  /** Sends what is pending now. */
  flush(): void {
    if (this.handle !== undefined) this.timer.clear(this.handle);
    this.handle = undefined;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.flushTo(batch);
  }

  /** Drops what is pending (e.g. when the webview is gone; the replay brings it back). */
  clear(): void {
    if (this.handle !== undefined) this.timer.clear(this.handle);
    this.handle = undefined;
    this.pending = [];
  }

  dispose(): void {
    this.clear();
    this.disposed = true;
  }
}
