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
import { MAX_SMOOTHING, clampSmoothing } from './smoothing';

export type Action = 'start' | 'stop' | 'resume' | 'analyze' | 'compare';

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * The header's backend, said once: the host's label when the start event carries one ("WASM", "TensorFlow (GPU)",
 * "WebGPU · NVIDIA H200", made by extension/backendLabel.ts), else a plain name from the backend and gpu flag.
 * `kind` (GPU / CPU / WASM) picks the badge colour.
 */
export function backendLabel(backend: string, gpu: boolean, label?: string): { kind: 'GPU' | 'CPU' | 'WASM'; text: string } {
  const kind = gpu ? 'GPU' : backend === 'wasm' ? 'WASM' : 'CPU';
  const plain: Record<string, string> = { wasm: 'WASM', cpu: 'CPU', tensorflow: `TensorFlow (${gpu ? 'GPU' : 'CPU'})`, webgpu: 'WebGPU' };
  return { kind, text: label || plain[backend] || backend };
}

/** Which buttons a status enables. */
export function buttonStates(s: DashboardStatus | null): Record<Action, boolean> {
  const idle = s !== null && (s.state === 'idle' || s.state === 'done' || s.state === 'failed');
  const hasConfig = s !== null && s.configFile !== null;
  return {
    start: idle && hasConfig,
    stop: s !== null && (s.state === 'starting' || s.state === 'running'),
    resume: idle && hasConfig && s.canResume,
    analyze: idle && s.hasAdapter === true,
    compare: s !== null,
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
  private readonly smoothingRow = el('div', 'smoothing');
  private readonly smoothingInput = document.createElement('input');
  private readonly smoothingValue = el('span', 'smoothing-value');

  constructor(root: HTMLElement, onAction: (a: Action) => void, onSmoothing: (w: number) => void) {
    const label = el('label', undefined, 'Smoothing');
    label.htmlFor = 'smoothing';
    const input = this.smoothingInput;
    input.type = 'range';
    input.id = 'smoothing';
    input.min = '0';
    input.max = String(MAX_SMOOTHING);
    input.step = '0.001';
    input.title = 'Exponential moving average as TensorBoard computes it (with debiasing), for loss and tokens/s; the raw series stays faint behind';
    input.addEventListener('input', () => {
      const w = clampSmoothing(Number(input.value));
      this.smoothingValue.textContent = w.toFixed(3);
      onSmoothing(w);
    });
    this.smoothingRow.append(label, input, this.smoothingValue);

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
    this.buttons = {
      start: make('start', 'Start', false),
      stop: make('stop', 'Stop', true),
      resume: make('resume', 'Resume from checkpoint', true),
      analyze: make('analyze', 'Analyze Adapter…', true),
      compare: make('compare', 'Compare Runs…', true),
    };
    this.buttons.analyze.title = 'Spectrum, subspace similarity and amplification of the run\'s adapter';
    this.buttons.compare.title = 'Overlay the loss and eval curves of several runs, and list what differs in their configs';
    const actions = el('div', 'actions');
    actions.append(this.buttons.start, this.buttons.stop, this.buttons.resume);
    const tools = el('div', 'actions tools');
    tools.append(this.buttons.analyze, this.buttons.compare);

    this.banner.setAttribute('role', 'alert');
    this.banner.hidden = true;
    this.progressBar.max = 1;
    this.progressBar.value = 0;
    this.progressBar.ariaLabel = 'Training progress';
    const progress = el('div', 'progress');
    progress.append(this.progressBar, this.progressText, this.outcome);

    const left = el('div', 'left');
    left.append(actions, this.formHost, tools);
    const right = el('div', 'right');
    const tailBox = el('section', 'tail-box');
    tailBox.append(el('h3', undefined, 'Events'), this.tail);
    right.append(progress, this.smoothingRow, this.chartsHost, tailBox);
    const main = el('div', 'layout');
    main.append(left, right);

    root.append(header, this.banner, main);
    root.removeAttribute('aria-busy');
  }

  setSmoothing(w: number): void {
    this.smoothingInput.value = String(w);
    this.smoothingValue.textContent = w.toFixed(3);
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
      const b = backendLabel(s.backend, s.gpu, s.backend_label);
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
