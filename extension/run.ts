/**
 * The training run of this workspace: one at a time (a second start asks first), started as a `train`
 * request to the trainer child, stopped with `cancel` (the trainer checkpoints, then answers), resumed from
 * the latest checkpoint. It is the DashboardHost the dashboard panel talks to. It writes nothing itself:
 * the trainer appends every event to output_dir/metrics.jsonl, and history() reads that back.
 */
import * as vscode from 'vscode';
import type { DoneEvent, TrainEvent, TrainParams } from '../trainer/protocol';
import type { DashboardHost, RunStatus } from './dashboard/host';
import { Disposable } from './disposable';
import type { RunConfigStore } from './runConfig';
import { latestCheckpoint, outputDirOf, readMetrics } from './runFiles';
import { TrainerExitedError, TrainerRequestError, type TrainerClient } from './trainerClient';

export const OPEN_LOG = 'Open Log';

interface Current {
  id: number;
  configFile: string;
  done: Promise<unknown>;
  /** the latest step/total/loss, for the status bar */
  step?: number;
  totalSteps?: number;
  loss?: number;
}

export class RunManager extends Disposable implements DashboardHost {
  private _status: RunStatus = { state: 'idle' };
  private current: Current | undefined;
  private readonly _onDidChangeStatus = this._register(new vscode.EventEmitter<RunStatus>());
  readonly onDidChangeStatus = this._onDidChangeStatus.event;
  private readonly _onDidReceiveEvent = this._register(new vscode.EventEmitter<TrainEvent>());
  readonly onDidReceiveEvent = this._onDidReceiveEvent.event;
  readonly onDidChangeRunConfig: vscode.Event<void>;

  constructor(
    private readonly client: TrainerClient,
    private readonly store: RunConfigStore,
    readonly log: vscode.LogOutputChannel,
    /** says why training is disabled (Restricted Mode), or undefined */
    private readonly disabledReason: () => string | undefined,
  ) {
    super();
    this.onDidChangeRunConfig = store.onDidChange;
    this._register(store.onDidChange(() => void this.refreshIdleStatus()));
    void this.refreshIdleStatus();
  }

  status(): RunStatus {
    return { ...this._status };
  }

  get isActive(): boolean {
    return this._status.state === 'starting' || this._status.state === 'running' || this._status.state === 'stopping';
  }

  /** step/total and loss of the live run, for the status bar */
  progress(): { step?: number; totalSteps?: number; loss?: number } {
    return { step: this.current?.step, totalSteps: this.current?.totalSteps, loss: this.current?.loss };
  }

  async history(): Promise<TrainEvent[]> {
    const dir = this._status.outputDir ?? (await this.configuredOutputDir());
    return dir ? readMetrics(dir) : [];
  }

  readRunConfig(): Promise<Record<string, unknown> | undefined> {
    return this.store.read();
  }

  updateRunConfig(edits: Array<{ path: string; value: unknown }>): Promise<void> {
    return this.store.update(edits);
  }

  startTraining(): Promise<void> {
    return this.start({});
  }

  resumeTraining(): Promise<void> {
    return this.start({ resume: this._status.latestCheckpoint ?? true });
  }

  async stopTraining(): Promise<void> {
    const cur = this.current;
    if (!cur || !this.isActive) {
      void vscode.window.showInformationMessage('No training run is in progress.');
      return;
    }
    this.log.info(`stopping the run (request ${cur.id}); the trainer saves a checkpoint first`);
    this.setStatus({ ...this._status, state: 'stopping' });
    this.client.cancel(cur.id);
    await cur.done.catch(() => undefined);
  }

  private async start(opts: { resume?: string | boolean }): Promise<void> {
    const why = this.disabledReason();
    if (why) {
      void vscode.window.showWarningMessage(why);
      return;
    }
    const uri = this.store.uri;
    if (!uri) {
      const pick = await vscode.window.showWarningMessage('There is no run config (lora-run.json) in this workspace.', 'New Run Config');
      if (pick) await vscode.commands.executeCommand('loraStudio.newRunConfig');
      return;
    }
    if (this.isActive && this.current) {
      const p = this.current;
      const at = p.step !== undefined ? ` (step ${p.step}${p.totalSteps ? `/${p.totalSteps}` : ''})` : '';
      const choice = await vscode.window.showWarningMessage(
        `A training run is already in progress${at}. Only one run at a time is allowed in a workspace.`,
        { modal: true, detail: 'Stopping it saves a checkpoint that you can resume from later.' },
        'Stop It and Start New Run',
      );
      if (!choice) return;
      await this.stopTraining();
    }
    await this.store.saveIfDirty();
    const backend = vscode.workspace.getConfiguration('loraStudio').get<string>('backend', 'auto');
    const params: TrainParams = { config_file: uri.fsPath };
    if (backend && backend !== 'auto') params.backend = backend;
    if (opts.resume !== undefined) params.resume_from_checkpoint = opts.resume;

    const cfg = await this.store.read();
    this.setStatus({ state: 'starting', configFile: uri.fsPath, outputDir: outputDirOf(uri.fsPath, cfg), latestCheckpoint: this._status.latestCheckpoint });
    this.log.info(`starting training: ${uri.fsPath}${opts.resume !== undefined ? ` (resume from ${opts.resume === true ? 'the latest checkpoint' : opts.resume})` : ''}`);
    const handle = this.client.request('train', params, (e) => this.onEvent(e));
    const current: Current = { id: handle.id, configFile: uri.fsPath, done: handle.result };
    this.current = current;
    handle.result.then(
      (done) => this.finished(current, done),
      (err: Error) => this.failed(current, err),
    );
  }

  private onEvent(e: TrainEvent): void {
    const cur = this.current;
    switch (e.event) {
      case 'start':
        if (cur) {
          cur.totalSteps = e.total_steps;
          cur.step = e.global_step;
        }
        this.log.info(`training on ${e.backend}${e.gpu ? ' (GPU)' : ''}: ${e.total_steps} steps, output ${e.output_dir}`);
        this.setStatus({ ...this._status, state: this._status.state === 'stopping' ? 'stopping' : 'running', outputDir: e.output_dir });
        break;
      case 'step':
        if (cur) {
          cur.step = e.step;
          cur.loss = e.loss;
        }
        break;
      case 'checkpoint':
        this.setStatus({ ...this._status, latestCheckpoint: e.path });
        break;
      case 'log':
        if (e.level === 'warning') this.log.warn(e.message);
        else this.log.info(e.message);
        break;
      case 'error':
        this.log.error(e.message);
        break;
      default:
        break;
    }
    this._onDidReceiveEvent.fire(e);
  }

  private finished(cur: Current, done: DoneEvent): void {
    if (this.current !== cur) return;
    this.current = undefined;
    this.setStatus({ ...this._status, state: 'done', outputDir: done.output_dir, latestCheckpoint: latestCheckpoint(done.output_dir) ?? this._status.latestCheckpoint });
    const what = done.stopped ? `Training stopped at step ${done.global_step}; a checkpoint was saved.` : `Training finished after ${done.global_step} steps.`;
    this.log.info(`${what} Output: ${done.output_dir}`);
    void vscode.window.showInformationMessage(`${what} The adapter is in ${done.output_dir}.`, 'Save Adapter As…', 'Analyze Adapter', 'Show Dashboard').then((pick) => {
      if (pick === 'Save Adapter As…') void vscode.commands.executeCommand('loraStudio.saveAdapterAs');
      // a stopped run has its adapter in checkpoints only: then the command offers them
      if (pick === 'Analyze Adapter') void vscode.commands.executeCommand('loraStudio.analyzeAdapter', done.stopped ? undefined : vscode.Uri.file(done.output_dir));
      if (pick === 'Show Dashboard') void vscode.commands.executeCommand('loraStudio.showDashboard');
    });
  }

  private failed(cur: Current, err: Error): void {
    if (this.current !== cur) return;
    this.current = undefined;
    this.setStatus({ ...this._status, state: 'failed' });
    void showTrainerError('Training failed', err, this.log);
  }

  private async configuredOutputDir(): Promise<string | undefined> {
    const uri = this.store.uri;
    return uri ? outputDirOf(uri.fsPath, await this.store.read()) : undefined;
  }

  /** While no run is live, the status follows the run config: its output_dir and latest checkpoint. */
  private async refreshIdleStatus(): Promise<void> {
    if (this.isActive) return;
    const uri = this.store.uri;
    const outputDir = await this.configuredOutputDir();
    if (this.isActive) return;
    this.setStatus({ state: this._status.state, configFile: uri?.fsPath, outputDir, latestCheckpoint: outputDir ? latestCheckpoint(outputDir) : undefined });
  }

  private setStatus(s: RunStatus): void {
    this._status = s;
    const active = this.isActive;
    void vscode.commands.executeCommand('setContext', 'loraStudio.running', active);
    void vscode.commands.executeCommand('setContext', 'loraStudio.hasCheckpoint', !!s.latestCheckpoint);
    this._onDidChangeStatus.fire(this.status());
  }
}

/**
 * One error notification for anything the trainer reports: its message (file: field: message for bad
 * input), the exit code/signal and stderr tail for a crash, and "Open Log".
 */
export async function showTrainerError(what: string, err: unknown, log: vscode.LogOutputChannel, extra: string[] = []): Promise<string | undefined> {
  let text: string;
  if (err instanceof TrainerRequestError) text = err.describe();
  else if (err instanceof TrainerExitedError) {
    text = err.message;
    log.error(`${what}: trainer exited (code ${err.exitCode}, signal ${err.signal}); stderr tail:\n${err.stderrTail}`);
  } else text = err instanceof Error ? err.message : String(err);
  log.error(`${what}: ${text}`);
  const pick = await vscode.window.showErrorMessage(`${what}: ${text}`, ...extra, OPEN_LOG);
  if (pick === OPEN_LOG) log.show(true);
  return pick;
}
