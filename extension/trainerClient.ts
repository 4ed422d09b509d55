/**
 * The extension's side of the trainer protocol (counterpart: trainer/main.ts, types in trainer/protocol.ts).
 * It forks the trainer child with `silent: true`, sends typed requests with ids and resolves each with its
 * response, streams the child's TrainEvents to listeners, cancels by id, and turns a crash, an out-of-memory
 * kill or a non-zero exit into a TrainerExitedError carrying the exit code, signal and the tail of stderr.
 * After an exit the next request forks a fresh child. Disposing sends SIGTERM (the child checkpoints and
 * leaves), then SIGKILL after a grace period: closing the editor leaves no trainer behind.
 *
 * No vscode import: the context wires `log` to the LogOutputChannel, and unit tests drive the real child.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import type {
  ChildMessage, DoneEvent, ErrorCode, InspectParams, InspectResult, ParentMessage, SelectParams, SelectResult, TrainEvent, TrainEventName, TrainParams,
} from '../trainer/protocol';

/** Each method's params and result. */
export interface TrainerMethods {
  train: { params: TrainParams; result: DoneEvent };
  inspect: { params: InspectParams; result: InspectResult };
  select: { params: SelectParams; result: SelectResult };
}
export type Method = keyof TrainerMethods;

// Mirrors trainer/protocol.ts ERROR_CODES (extension/ imports only types from the trainer).
export const TRAINER_ERROR_CODES = { invalid_input: 1, internal: 2, cancelled: 3, unknown_method: 4 } as const satisfies Record<string, ErrorCode>;

// Every event name once: a name added to the trainer's TrainEvent and missing here fails to compile.
const TRAIN_EVENT_NAMES: Record<TrainEventName, true> = { start: true, step: true, eval: true, checkpoint: true, log: true, done: true, error: true };

export function isTrainEvent(e: unknown): e is TrainEvent {
  return !!e && typeof e === 'object' && typeof (e as { event?: unknown }).event === 'string' && Object.hasOwn(TRAIN_EVENT_NAMES, (e as { event: string }).event);
}

/** Validates a message from the child before anything reads it. */
export function isChildMessage(m: unknown): m is ChildMessage {
  if (!m || typeof m !== 'object') return false;
  const o = m as Record<string, unknown>;
  switch (o.kind) {
    case 'ready':
      return typeof o.pid === 'number';
    case 'notification':
      return typeof o.id === 'number' && isTrainEvent(o.event);
    case 'response': {
      if (typeof o.id !== 'number') return false;
      if ('error' in o) {
        const e = o.error as Record<string, unknown> | null;
        return !!e && typeof e === 'object' && typeof e.code === 'number' && typeof e.message === 'string';
      }
      return 'result' in o;
    }
    default:
      return false;
  }
}

/** The trainer answered a request with an error response (bad input, an internal failure, …). */
export class TrainerRequestError extends Error {
  override readonly name = 'TrainerRequestError';
  constructor(
    message: string,
    readonly code: ErrorCode,
    readonly file?: string,
    readonly field?: string,
  ) {
    super(message);
  }

  /** `file: field: message`, as the CLI prints it. */
  describe(): string {
    const where = [this.file, this.field].filter(Boolean).join(': ');
    return where ? `${where}: ${this.message}` : this.message;
  }
}

/** The child process ended while requests were open, or ended abnormally. */
export class TrainerExitedError extends Error {
  override readonly name = 'TrainerExitedError';
  constructor(
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly stderrTail: string,
  ) {
    super(TrainerExitedError.describe(exitCode, signal, stderrTail));
  }

  /** A V8 heap exhaustion, or a SIGKILL (what the Linux OOM killer sends). */
  get outOfMemory(): boolean {
    return /heap out of memory|Allocation failed|ENOMEM|\bOOM\b/.test(this.stderrTail) || this.signal === 'SIGKILL';
  }

  static describe(code: number | null, signal: NodeJS.Signals | null, tail: string): string {
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    const oom = /heap out of memory|Allocation failed|ENOMEM/i.test(tail) || signal === 'SIGKILL' ? ' (out of memory?)' : '';
    const last = tail.trim().split('\n').slice(-3).join(' | ');
    return `The trainer process ${how}${oom}${last ? `: ${last}` : ''}`;
  }
}

/** The last lines of a stream, bounded in lines and characters. */
export class RingBuffer {
  private lines: string[] = [];
  private partial = '';
  constructor(
    private readonly maxLines = 60,
    private readonly maxChars = 8000,
  ) {}

  /** Appends a chunk; returns the complete lines it finished. */
  push(chunk: string): string[] {
    const parts = (this.partial + chunk).split(/\r?\n/);
    this.partial = parts.pop() ?? '';
    for (const l of parts) this.lines.push(l);
    if (this.partial.length > this.maxChars) {
      parts.push(this.partial);
      this.lines.push(this.partial);
      this.partial = '';
    }
    while (this.lines.length > this.maxLines) this.lines.shift();
    return parts;
  }

  text(): string {
    const all = [...this.lines, ...(this.partial ? [this.partial] : [])].slice(-this.maxLines).join('\n');
    return all.length > this.maxChars ? all.slice(all.length - this.maxChars) : all;
  }

  clear(): void {
    this.lines = [];
    this.partial = '';
  }
}

export interface TrainerClientOptions {
  /** dist/trainer/main.js (or trainer/main.ts with execArgv ['--import', 'tsx'] in tests) */
  script: string;
  /** environment of the child, on top of process.env */
  env?: NodeJS.ProcessEnv;
  /** where the native backend was installed (its node_modules); passed as LORA_STUDIO_NATIVE_DIR when it exists */
  nativeDir?: string;
  execArgv?: string[];
  cwd?: string;
  /** every stderr/stdout line of the child, and the client's own notes */
  log?: (line: string, level: 'info' | 'error') => void;
  /** how long a child may take to stop after SIGTERM before SIGKILL */
  killGraceMs?: number;
}

interface Pending {
  method: Method;
  resolve(v: unknown): void;
  reject(e: Error): void;
  onEvent?: (e: TrainEvent) => void;
}

export interface RequestHandle<M extends Method> {
  id: number;
  result: Promise<TrainerMethods[M]['result']>;
}

/**
 * Events: 'event' (id, TrainEvent) for every notification; 'exit' (TrainerExitedError | undefined) when a
 * child ends: the error when it crashed while no request was open (open requests are rejected with it
 * instead), undefined otherwise.
 */
export class TrainerClient {
  private child: ChildProcess | undefined;
  private ready: Promise<ChildProcess> | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly stderr = new RingBuffer();
  private readonly emitter = new EventEmitter();
  private disposed = false;
  private readonly recycling = new WeakSet<ChildProcess>();

  constructor(private readonly opts: TrainerClientOptions) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The tail of the current (or last) child's stderr. */
  stderrTail(): string {
    return this.stderr.text();
  }

  onEvent(listener: (id: number, event: TrainEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  onExit(listener: (error: TrainerExitedError | undefined) => void): () => void {
    this.emitter.on('exit', listener);
    return () => this.emitter.off('exit', listener);
  }

  /** Sends a request; `onEvent` receives this request's notifications. A dead child is replaced first. */
  request<M extends Method>(method: M, params: TrainerMethods[M]['params'], onEvent?: (e: TrainEvent) => void): RequestHandle<M> {
    if (this.disposed) {
      return { id: -1, result: Promise.reject(new Error('the trainer client is disposed')) };
    }
    const id = this.nextId++;
    const result = new Promise<TrainerMethods[M]['result']>((resolve, reject) => {
      this.pending.set(id, { method, resolve: resolve as (v: unknown) => void, reject, onEvent });
    });
    this.start().then(
      (child) => {
        if (!this.pending.has(id)) return;
        this.post(child, { kind: 'request', id, method, params } as ParentMessage);
      },
      (e: Error) => this.settle(id, undefined, e),
    );
    return { id, result };
  }

  /** Asks request `id` to stop; a training run saves a checkpoint first, then answers with its DoneEvent. */
  cancel(id: number): void {
    if (!this.pending.has(id) || !this.child) return;
    this.post(this.child, { kind: 'cancel', id });
  }

  /**
   * Ends an idle child so that the next request forks a fresh one (with a newly installed native backend).
   * Returns false, and keeps the child, while requests are open.
   */
  recycle(): boolean {
    if (this.pending.size > 0) return false;
    const child = this.child;
    if (child) {
      this.recycling.add(child);
      this.child = undefined;
      this.ready = undefined;
      child.kill('SIGTERM');
    }
    return true;
  }

  /**
   * Stops the child: SIGTERM (a running training saves a checkpoint and answers; once nothing is open the
   * IPC channel is closed and the child leaves), then SIGKILL after the grace period. Resolves when it is gone.
   */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      for (const [id] of this.pending) this.settle(id, undefined, new Error('the trainer client is disposed'));
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.log('the trainer did not stop after SIGTERM; sending SIGKILL', 'error');
        child.kill('SIGKILL');
      }, this.opts.killGraceMs ?? 3000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }

  // ---- internals ----

  private start(): Promise<ChildProcess> {
    if (this.ready) return this.ready;
    this.stderr.clear();
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.opts.env, ELECTRON_RUN_AS_NODE: '1' };
    if (this.opts.nativeDir && fs.existsSync(this.opts.nativeDir)) env.LORA_STUDIO_NATIVE_DIR = this.opts.nativeDir;
    if (!fs.existsSync(this.opts.script)) {
      return Promise.reject(new Error(`the trainer is missing: ${this.opts.script} does not exist (run \`npm run build\`)`));
    }
    const child = fork(this.opts.script, [], { silent: true, execArgv: this.opts.execArgv ?? [], env, cwd: this.opts.cwd });
    this.child = child;
    this.log(`trainer started (pid ${child.pid})`, 'info');
    const onLines = (level: 'info' | 'error') => (chunk: Buffer) => {
      const lines = level === 'error' ? this.stderr.push(chunk.toString('utf8')) : chunk.toString('utf8').split(/\r?\n/).filter(Boolean);
      for (const l of lines) this.log(l, level);
    };
    child.stderr?.on('data', onLines('error'));
    child.stdout?.on('data', onLines('info'));

    this.ready = new Promise<ChildProcess>((resolve, reject) => {
      let isReady = false;
      child.on('message', (m: unknown) => {
        if (!isChildMessage(m)) {
          this.log(`ignored a malformed message from the trainer: ${safeJson(m)}`, 'error');
          return;
        }
        if (m.kind === 'ready') {
          isReady = true;
          resolve(child);
          return;
        }
        this.dispatch(m);
      });
      child.on('error', (e) => {
        this.log(`trainer process error: ${e.message}`, 'error');
        if (!isReady) reject(e);
      });
      child.on('exit', (code, signal) => {
        if (this.child === child) {
          this.child = undefined;
          this.ready = undefined;
        }
        const abnormal = !this.disposed && !this.recycling.has(child) && (signal !== null || code !== 0);
        const err = new TrainerExitedError(code, signal, this.stderr.text());
        const hadPending = this.pending.size > 0;
        this.log(`trainer exited (${signal ? `signal ${signal}` : `code ${code}`})`, abnormal ? 'error' : 'info');
        if (!isReady) reject(err);
        for (const [id] of this.pending) this.settle(id, undefined, err);
        this.recycling.delete(child);
        // open requests already carry the error; 'exit' reports a crash that nobody else saw
        if (!this.disposed) this.emitter.emit('exit', abnormal && !hadPending ? err : undefined);
      });
    });
    // a failed start must not poison the next request
    this.ready.catch(() => {
      if (this.child === child || this.child === undefined) this.ready = undefined;
    });
    return this.ready;
  }

  private dispatch(m: Exclude<ChildMessage, { kind: 'ready' }>): void {
    const p = this.pending.get(m.id);
    if (m.kind === 'notification') {
      this.emitter.emit('event', m.id, m.event);
      p?.onEvent?.(m.event);
      return;
    }
    if (!p) return;
    if ('error' in m) {
      this.settle(m.id, undefined, new TrainerRequestError(m.error.message, m.error.code, m.error.file, m.error.field));
    } else {
      this.settle(m.id, m.result);
    }
  }

  private settle(id: number, value: unknown, error?: Error): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (error) p.reject(error);
    else p.resolve(value);
    // shutting down: the last open request has answered, so let the child go (it exits on disconnect)
    if (this.disposed && this.pending.size === 0 && this.child?.connected) this.child.disconnect();
  }

  private post(child: ChildProcess, m: ParentMessage): void {
    if (!child.connected) return; // the exit handler rejects what is open
    child.send(m, (e) => {
      if (e) this.log(`could not send to the trainer: ${e.message}`, 'error');
    });
  }

  private log(line: string, level: 'info' | 'error'): void {
    this.opts.log?.(line, level);
  }
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v)?.slice(0, 300) ?? String(v);
  } catch {
    return String(v);
  }
}
