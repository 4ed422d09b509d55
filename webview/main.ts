/**
 * The dashboard webview's entry (counterpart: extension/dashboard/panel.ts). It restores what getState kept,
 * says "ready", then applies the host's messages (each checked with isHostMessage): status, run config, a
 * reset followed by the replayed history, and live event batches. The page redraws at most once per
 * animation frame, and saves a small summary with setState at most once a second.
 */
import './litNonce'; // first: Lit reads the nonce when it loads
import './elements';
import 'uplot/dist/uPlot.min.css'; // bundled into dist/webview/main.css, linked by the page
import { isDashboardEvent, isEditableField, isHostMessage, type DashboardStatus, type EditableField, type HostMessage, type WebviewMessage } from './protocol';
import { RunState, isRunSummary, type RunSummary } from './runState';
import { ChartGrid } from './charts';
import { ConfigForm } from './form';
import { DashboardView } from './view';
import { DEFAULT_SMOOTHING, clampSmoothing } from './smoothing';

interface PersistedState {
  v: 2;
  config: Record<string, unknown> | null;
  configFile: string | null;
  /** the editable fields the host last sent with the config */
  fields: EditableField[];
  status: DashboardStatus | null;
  drafts: Record<string, string>;
  run: RunSummary;
  /** the smoothing slider (absent in states saved before it existed) */
  smoothing?: number;
}

interface VsCodeApi {
  postMessage(m: WebviewMessage): void;
  getState(): unknown;
  setState(s: PersistedState): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const SAVE_EVERY_MS = 1000;

function isPersisted(v: unknown): v is PersistedState {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return o.v === 2 && typeof o.drafts === 'object' && o.drafts !== null && isRunSummary(o.run)
    && Array.isArray(o.fields) && o.fields.every(isEditableField);
}

function main(): void {
  const vscode = acquireVsCodeApi();
  const root = document.getElementById('app')!;
  const run = new RunState();
  let status: DashboardStatus | null = null;
  let config: Record<string, unknown> | null = null;
  let configFile: string | null = null;
  let fields: EditableField[] = [];
  let smoothing = DEFAULT_SMOOTHING;

  let saveTimer: ReturnType<typeof setTimeout> | undefined;
  const save = () => {
    saveTimer ??= setTimeout(() => {
      saveTimer = undefined;
      vscode.setState({ v: 2, config, configFile, fields, status, drafts: form.getDrafts(), run: run.summary(), smoothing });
    }, SAVE_EVERY_MS);
  };

  const view = new DashboardView(root, (a) => vscode.postMessage({ type: a }), (w) => {
    smoothing = w;
    charts.setSmoothing(w);
    save();
  });
  const form = new ConfigForm(view.formHost, (path, value) => vscode.postMessage({ type: 'editConfig', path, value }), save);
  const charts = new ChartGrid(view.chartsHost, run);

  let frame = 0;
  const redraw = () => {
    if (!frame) {
      frame = requestAnimationFrame(() => {
        frame = 0;
        view.render(run);
      });
    }
    charts.requestDraw();
    save();
  };
  const applyStatus = (s: DashboardStatus | null) => {
    status = s;
    view.setStatus(s);
    form.setEditable(s === null || !['starting', 'running', 'stopping'].includes(s.state));
  };

  const saved = vscode.getState();
  if (isPersisted(saved)) smoothing = clampSmoothing(saved.smoothing ?? DEFAULT_SMOOTHING);
  view.setSmoothing(smoothing);
  charts.setSmoothing(smoothing);
  if (isPersisted(saved)) {
    try {
      config = saved.config;
      configFile = saved.configFile;
      fields = saved.fields;
      run.restore(saved.run);
      form.restore(config, configFile, fields, saved.drafts);
      applyStatus(saved.status);
    } catch {
      run.reset();
    }
  } else {
    applyStatus(null);
  }
  redraw();

  const handle = (m: HostMessage) => {
    switch (m.type) {
      case 'status':
        applyStatus(m.status);
        if (m.status.state === 'starting') view.notice(null);
        save();
        return;
      case 'config':
        config = m.config;
        configFile = m.configFile;
        fields = m.fields;
        form.setConfig(config, configFile, fields);
        save();
        return;
      case 'reset':
        run.reset();
        redraw();
        return;
      case 'events': {
        const events = m.events.filter(isDashboardEvent);
        if (events.length < m.events.length) console.warn(`LoRA Studio: dropped ${m.events.length - events.length} malformed event(s)`);
        run.apply(events);
        redraw();
        return;
      }
      case 'notice':
        view.notice(m.level, m.message);
        return;
    }
  };

  window.addEventListener('message', (e: MessageEvent<unknown>) => {
    if (isHostMessage(e.data)) handle(e.data);
    else console.warn('LoRA Studio dashboard: ignored a malformed message', e.data);
  });
  vscode.postMessage({ type: 'ready' });
}

main();
