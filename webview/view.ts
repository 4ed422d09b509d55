/**
 * The dashboard's page around the form and the charts: the header (backend, state, model, PEFT line), the
 * Start / Stop / Resume buttons, the progress (step/total, epoch, ETA), the banner and the event tail.
 * It writes text with textContent only, and never an inline style or handler attribute.
 */
import type { VscodeBadge } from '@vscode-elements/elements/dist/vscode-badge/vscode-badge.js';
import type { VscodeButton } from '@vscode-elements/elements/dist/vscode-button/vscode-button.js';
import type { VscodeProgressBar } from '@vscode-elements/elements/dist/vscode-progress-bar/vscode-progress-bar.js';
import type { DashboardStatus } from './protocol';
import { formatDuration, type RunState } from './runState';

export type Action = 'start' | 'stop' | 'resume';

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** GPU / CPU / WASM from the start event's backend name and gpu flag. */
export function backendLabel(backend: string, gpu: boolean): { kind: 'GPU' | 'CPU' | 'WASM'; text: string } {
  const kind = gpu ? 'GPU' : backend === 'wasm' ? 'WASM' : 'CPU';
  return { kind, text: `${kind} · ${backend}` };
}

/** Which buttons a status enables. */
export function buttonStates(s: DashboardStatus | null): Record<Action, boolean> {
  const idle = s !== null && (s.state === 'idle' || s.state === 'done' || s.state === 'failed');
  const hasConfig = s !== null && s.configFile !== null;
  return {
    start: idle && hasConfig,
    stop: s !== null && (s.state === 'starting' || s.state === 'running'),
    resume: idle && hasConfig && s.canResume,
  };
}

export class DashboardView {
  readonly formHost = el('div', 'form');
  readonly chartsHost = el('div', 'charts');
  private readonly backend = el('div', 'backend');
  private readonly state = document.createElement('vscode-badge') as VscodeBadge;
  private readonly model = el('div', 'model');
  private readonly peft = el('div', 'peft');
  private readonly banner = el('div', 'banner');
  private readonly progressBar = document.createElement('vscode-progress-bar') as VscodeProgressBar;
  private readonly progressText = el('div', 'progress-text');
  private readonly outcome = el('div', 'outcome');
  private readonly tail = el('pre', 'tail');
  private readonly buttons: Record<Action, VscodeButton>;
  private tailVersion = -1;

  constructor(root: HTMLElement, onAction: (a: Action) => void) {
    const header = el('header');
    const titleRow = el('div', 'title-row');
    titleRow.append(this.backend, this.state, this.model);
    header.append(titleRow, this.peft);

    const make = (a: Action, text: string, secondary: boolean) => {
      const b = document.createElement('vscode-button');
      b.textContent = text;
      b.secondary = secondary;
      b.disabled = true;
      b.addEventListener('click', () => {
        if (!b.disabled) onAction(a);
      });
      return b;
    };
    this.buttons = { start: make('start', 'Start', false), stop: make('stop', 'Stop', true), resume: make('resume', 'Resume from checkpoint', true) };
    const actions = el('div', 'actions');
    actions.append(this.buttons.start, this.buttons.stop, this.buttons.resume);

    this.banner.setAttribute('role', 'alert');
    this.banner.hidden = true;
    this.progressBar.max = 1;
    this.progressBar.value = 0;
    this.progressBar.ariaLabel = 'Training progress';
    const progress = el('div', 'progress');
    progress.append(this.progressBar, this.progressText, this.outcome);

    const left = el('div', 'left');
    left.append(actions, this.formHost);
    const right = el('div', 'right');
    const tailBox = el('section', 'tail-box');
    tailBox.append(el('h3', undefined, 'Events'), this.tail);
    right.append(progress, this.chartsHost, tailBox);
    const main = el('div', 'layout');
    main.append(left, right);

    root.append(header, this.banner, main);
    root.removeAttribute('aria-busy');
  }

  setStatus(s: DashboardStatus | null): void {
    this.state.textContent = s ? s.state : 'not connected';
    this.state.dataset.state = s?.state ?? 'none';
    const on = buttonStates(s);
    for (const a of Object.keys(on) as Action[]) this.buttons[a].disabled = !on[a];
  }

  notice(level: 'info' | 'error' | null, message = ''): void {
    this.banner.hidden = level === null;
    this.banner.textContent = message;
    this.banner.dataset.level = level ?? '';
  }

  /** Header, progress and tail from the run (the charts draw themselves). */
  render(run: RunState): void {
    const s = run.start;
    if (s) {
      const b = backendLabel(s.backend, s.gpu);
      this.backend.textContent = b.text;
      this.backend.dataset.kind = b.kind;
      this.model.textContent = `${s.model} · ${s.task}`;
      const pct = s.all_params > 0 ? (100 * s.trainable_params) / s.all_params : 0;
      this.peft.textContent = `trainable params: ${s.trainable_params.toLocaleString('en-US')} || all params: ${s.all_params.toLocaleString('en-US')} || trainable%: ${pct.toFixed(4)}`;
    } else {
      this.backend.textContent = 'backend: not started';
      this.backend.dataset.kind = 'none';
      this.model.textContent = '';
      this.peft.textContent = '';
    }
    const p = run.progress;
    this.progressBar.max = Math.max(1, p.total_steps);
    this.progressBar.value = Math.min(p.step, Math.max(1, p.total_steps));
    this.progressText.textContent = s
      ? `step ${p.step} / ${p.total_steps} · epoch ${p.epoch.toFixed(2)} / ${p.num_train_epochs} · ETA ${run.done ? '—' : formatDuration(p.eta_s)}`
      : 'No run yet.';
    if (run.error) this.outcome.textContent = `Failed: ${run.error}`;
    else if (run.done) this.outcome.textContent = `${run.done.stopped ? 'Stopped' : 'Finished'} at step ${run.done.global_step}${run.done.best ? ` · best: ${run.done.best}` : ''}`;
    else this.outcome.textContent = run.lastCheckpoint ? `Last checkpoint: ${run.lastCheckpoint}` : '';
    this.outcome.dataset.kind = run.error ? 'error' : run.done ? 'done' : '';

    if (this.tailVersion !== run.version) {
      this.tailVersion = run.version;
      const atBottom = this.tail.scrollTop + this.tail.clientHeight >= this.tail.scrollHeight - 4;
      this.tail.textContent = run.tail.join('\n');
      if (atBottom) this.tail.scrollTop = this.tail.scrollHeight;
    }
  }
}
