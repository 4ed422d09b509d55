/**
 * The dashboard webview panel (counterpart: webview/main.ts, protocol: webview/protocol.ts). It owns its
 * disposables (the Disposable base), waits for the webview's "ready" before posting, then sends the status, the run config and the
 * replayed history (so a reloaded or re-shown panel shows the whole run), and streams live events in throttled
 * batches (setting loraStudio.metricsThrottleMs). Every message from the webview passes the host's
 * isWebviewMessage (./messages) before it is used; anything else is logged and ignored. Trainer events, live or
 * replayed from metrics.jsonl, are mapped by mapTrainEvent (./events) on the way to the webview;
 * the config message carries the fields the dashboard may edit (DASHBOARD_FIELDS). It imports only types from
 * webview/protocol.ts and trainer/protocol.ts. It talks to the rest of the extension only through
 * DashboardHost. No retainContextWhenHidden: the webview keeps its form in getState/setState and the host
 * replays the history on every "ready".
 */
import * as vscode from 'vscode';
import type { TrainEvent } from '../../trainer/protocol';
import type { DashboardEvent, DashboardStatus, HostMessage, WebviewMessage } from '../../webview/protocol';
import type { DashboardHost, RunStatus } from './host';
import { adapterDirOf } from '../runFiles';
import { Disposable } from '../disposable';
import { DASHBOARD_SCRIPT, DASHBOARD_STYLES, RESOURCE_ROOTS, buildDashboardHtml, describeMessage as describe } from './html';
import { EventBatcher, chunk, mapTrainEvent, mergeReplay, toDashboardStatus } from './events';
import { DASHBOARD_FIELDS, isWebviewMessage } from './messages';

const THROTTLE_SETTING = 'metricsThrottleMs';
const DEFAULT_THROTTLE_MS = 100;
/** events per message when replaying the history */
const REPLAY_CHUNK = 5000;

function throttleMs(): number {
  const v = vscode.workspace.getConfiguration('loraStudio').get<number>(THROTTLE_SETTING, DEFAULT_THROTTLE_MS);
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : DEFAULT_THROTTLE_MS;
}

function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions {
  return {
    enableScripts: true,
    localResourceRoots: RESOURCE_ROOTS.map((root) => vscode.Uri.joinPath(extensionUri, root)),
  };
}

/** The webview's status, with whether output_dir holds a finished adapter (for "Analyze Adapter…"). */
function statusFor(s: RunStatus): DashboardStatus {
  return { ...toDashboardStatus(s), hasAdapter: !!s.outputDir && adapterDirOf(s.outputDir) !== undefined };
}

export class DashboardPanel extends Disposable implements vscode.Disposable {
  static readonly viewType = 'loraStudio.dashboard';
  private static current: DashboardPanel | undefined;

  private readonly batcher: EventBatcher<DashboardEvent>;
  /** the webview said "ready" and has not been torn down since */
  private ready = false;
  /** bumped on every "ready": an older replay that finishes late is dropped */
  private generation = 0;
  /** live events that arrive while the history is being read */
  private replayBuffer: DashboardEvent[] | undefined;

  /** Shows the dashboard, creating it the first time. */
  static createOrShow(extensionUri: vscode.Uri, host: DashboardHost): DashboardPanel {
    const column = vscode.window.activeTextEditor?.viewColumn;
    if (DashboardPanel.current) {
      DashboardPanel.current.panel.reveal(column);
      return DashboardPanel.current;
    }
    const panel = vscode.window.createWebviewPanel(DashboardPanel.viewType, 'LoRA Studio Dashboard', column ?? vscode.ViewColumn.One, {
      ...webviewOptions(extensionUri),
      retainContextWhenHidden: false,
    });
    DashboardPanel.current = new DashboardPanel(panel, extensionUri, host);
    return DashboardPanel.current;
  }

  /** Revives the panel after a window reload (needs the activation event onWebviewPanel:loraStudio.dashboard). */
  static registerSerializer(extensionUri: vscode.Uri, host: DashboardHost): vscode.Disposable {
    return vscode.window.registerWebviewPanelSerializer(DashboardPanel.viewType, {
      async deserializeWebviewPanel(panel: vscode.WebviewPanel, _state: unknown): Promise<void> {
        DashboardPanel.current?.dispose();
        panel.webview.options = webviewOptions(extensionUri);
        DashboardPanel.current = new DashboardPanel(panel, extensionUri, host);
      },
    });
  }

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    extensionUri: vscode.Uri,
    private readonly host: DashboardHost,
  ) {
    super();
    this.batcher = this._register(new EventBatcher<DashboardEvent>((events) => this.post({ type: 'events', events }), throttleMs()));
    const webview = panel.webview;
    this._register(panel.onDidDispose(() => this.dispose()));
    this._register(webview.onDidReceiveMessage((m: unknown) => this.onMessage(m)));
    this._register(panel.onDidChangeViewState(() => {
      // a hidden webview is torn down; it says "ready" again when shown, and gets a fresh replay
      if (!panel.visible) this.notReady();
    }));
    this._register(host.onDidReceiveEvent((e) => this.onEvent(e)));
    this._register(host.onDidChangeStatus((s) => this.post({ type: 'status', status: statusFor(s) })));
    this._register(host.onDidChangeRunConfig(() => void this.postConfig()));
    this._register(vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration(`loraStudio.${THROTTLE_SETTING}`)) this.batcher.setInterval(throttleMs());
    }));

    // last, so the listener is in place before the page can say "ready"
    const asUri = (p: readonly string[]) => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, ...p)).toString();
    webview.html = buildDashboardHtml({
      cspSource: webview.cspSource,
      scriptUri: asUri(DASHBOARD_SCRIPT),
      styleUris: DASHBOARD_STYLES.map(asUri),
    });
  }

  override dispose(): void {
    if (this.isDisposed) return;
    if (DashboardPanel.current === this) DashboardPanel.current = undefined;
    this.notReady();
    super.dispose(); // the batcher and every listener
    this.panel.dispose(); // fires onDidDispose, which finds this already disposed
  }

  private notReady(): void {
    this.ready = false;
    this.generation++;
    this.replayBuffer = undefined;
    this.batcher.clear();
  }

  private post(m: HostMessage): void {
    if (!this.ready || this.isDisposed) return;
    void this.panel.webview.postMessage(m);
  }

  private onEvent(e: TrainEvent): void {
    if (!this.ready) return; // the replay on the next "ready" brings it
    const d = mapTrainEvent(e);
    if (!d) {
      this.host.log.warn(`dashboard: dropped a malformed trainer event: ${describe(e)}`);
      return;
    }
    if (this.replayBuffer) this.replayBuffer.push(d);
    else this.batcher.push(d);
  }

  private onMessage(raw: unknown): void {
    if (!isWebviewMessage(raw)) {
      this.host.log.warn(`dashboard: ignored a malformed message from the webview: ${describe(raw)}`);
      return;
    }
    const m: WebviewMessage = raw;
    switch (m.type) {
      case 'ready':
        void this.onReady();
        return;
      case 'start':
        this.run('start training', () => this.host.startTraining());
        return;
      case 'stop':
        this.run('stop training', () => this.host.stopTraining());
        return;
      case 'resume':
        this.run('resume training', () => this.host.resumeTraining());
        return;
      case 'analyze': {
        const out = this.host.status().outputDir;
        this.run('analyze the adapter', async () => void (await vscode.commands.executeCommand('loraStudio.analyzeAdapter', out && adapterDirOf(out) ? vscode.Uri.file(out) : undefined)));
        return;
      }
      case 'compare':
        this.run('compare runs', async () => void (await vscode.commands.executeCommand('loraStudio.compareRuns')));
        return;
      case 'editConfig':
        this.run(`set ${m.path}`, () => this.host.updateRunConfig([{ path: m.path, value: m.value }]), () => this.postConfig());
        return;
    }
  }

  /** Runs a host action; a failure is logged and shown in the dashboard's banner (then `after`, if any). */
  private run(what: string, action: () => Promise<void>, afterFailure?: () => unknown): void {
    action().catch((e: unknown) => {
      const message = e instanceof Error ? e.message : String(e);
      this.host.log.error(`dashboard: could not ${what}: ${message}`);
      this.post({ type: 'notice', level: 'error', message: `Could not ${what}: ${message}` });
      afterFailure?.();
    });
  }

  private async postConfig(): Promise<void> {
    const status = this.host.status();
    let config: Record<string, unknown> | undefined;
    try {
      config = await this.host.readRunConfig();
    } catch (e) {
      this.host.log.warn(`dashboard: could not read the run config: ${e instanceof Error ? e.message : String(e)}`);
    }
    this.post({ type: 'config', config: config ?? null, configFile: status.configFile ?? null, fields: [...DASHBOARD_FIELDS] });
  }

  /** The webview (re)loaded: status, config, then the whole history, then live events. */
  private async onReady(): Promise<void> {
    this.notReady();
    const generation = this.generation;
    this.ready = true;
    this.replayBuffer = [];
    this.post({ type: 'status', status: statusFor(this.host.status()) });
    await this.postConfig();
    let history: DashboardEvent[] = [];
    try {
      const raw = await this.host.history();
      history = raw.map(mapTrainEvent).filter((d): d is DashboardEvent => d !== undefined);
      if (history.length < raw.length) this.host.log.warn(`dashboard: skipped ${raw.length - history.length} malformed history lines`);
    } catch (e) {
      this.host.log.warn(`dashboard: could not read the run history: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (generation !== this.generation || !this.replayBuffer) return; // reloaded or hidden meanwhile
    const events = mergeReplay(history, this.replayBuffer);
    this.replayBuffer = undefined;
    this.post({ type: 'reset' });
    for (const events_ of chunk(events, REPLAY_CHUNK)) this.post({ type: 'events', events: events_ });
  }
}
