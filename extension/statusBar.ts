/**
 * The status-bar item of the running job: the backend (as the dashboard header names it), step/total and loss,
 * updated at most every loraStudio.metricsThrottleMs; a click opens the dashboard. Hidden while no run has started.
 */
import * as vscode from 'vscode';
import { backendLabel } from './backendLabel';
import { Disposable } from './disposable';
import type { RunManager } from './run';

export class RunStatusBar extends Disposable {
  private readonly item: vscode.StatusBarItem;
  private timer: NodeJS.Timeout | undefined;
  private last = 0;
  /** the backend of the live run, from its start event */
  private backend: string | undefined;

  constructor(private readonly runs: RunManager) {
    super();
    this.item = this._register(vscode.window.createStatusBarItem('loraStudio.run', vscode.StatusBarAlignment.Left, 10));
    this.item.name = 'LoRA Studio Training';
    this.item.command = 'loraStudio.showDashboard';
    this._register(runs.onDidChangeStatus(() => this.update()));
    this._register(runs.onDidReceiveEvent((e) => {
      if (e.event === 'start') {
        this.backend = backendLabel(e).text;
        this.update();
      }
      if (e.event === 'step') this.throttled();
    }));
    this._register({ dispose: () => clearTimeout(this.timer) });
    this.update();
  }

  private throttled(): void {
    const every = vscode.workspace.getConfiguration('loraStudio').get<number>('metricsThrottleMs', 100);
    const wait = this.last + every - Date.now();
    if (wait <= 0) {
      this.update();
      return;
    }
    if (!this.timer) this.timer = setTimeout(() => this.update(), wait);
  }

  private update(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.last = Date.now();
    const s = this.runs.status();
    const p = this.runs.progress();
    const steps = p.step !== undefined ? ` ${p.step}${p.totalSteps ? `/${p.totalSteps}` : ''}` : '';
    const loss = p.loss !== undefined && Number.isFinite(p.loss) ? ` · loss ${p.loss.toFixed(4)}` : '';
    const on = this.backend ? ` · ${this.backend}` : '';
    switch (s.state) {
      case 'starting':
        this.backend = undefined;
        this.item.text = '$(loading~spin) LoRA: starting…';
        break;
      case 'running':
        this.item.text = `$(loading~spin) LoRA${steps}${loss}${on}`;
        break;
      case 'stopping':
        this.item.text = `$(debug-stop) LoRA: stopping${steps}`;
        break;
      case 'done':
        this.item.text = '$(check) LoRA: done';
        break;
      case 'failed':
        this.item.text = '$(error) LoRA: failed';
        break;
      default:
        this.item.hide();
        return;
    }
    this.item.tooltip = `${s.configFile ?? ''}${this.backend ? `\nbackend: ${this.backend}` : ''}${s.outputDir ? `\noutput: ${s.outputDir}` : ''}\nClick to show the dashboard`;
    this.item.show();
  }
}
