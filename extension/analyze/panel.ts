/**
 * The Analyze and Compare Runs webview panels (counterparts: webview/analyze.ts and webview/compare.ts, protocol:
 * webview/protocol.ts). One panel of each kind, reused: showing it again replaces its content. Like the
 * dashboard, the host waits for the page's "ready" before it posts, and re-posts the content on every "ready"
 * (a hidden webview is torn down and says "ready" again when shown). Every message from the page passes
 * isPanelWebviewMessage; "saveImage" asks where to save with showSaveDialog and writes the image atomically.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AnalyzeHostMessage, CompareHostMessage } from '../../webview/protocol';
import { Disposable } from '../disposable';
import { RESOURCE_ROOTS, buildDashboardHtml, describeMessage as describe } from '../dashboard/html';
import { decodeImageDataUrl, imageFileName, writeFileAtomic } from './image';
import { isPanelWebviewMessage } from './messages';

interface PanelKind {
  viewType: string;
  title: string;
  script: readonly string[];
  styles: readonly (readonly string[])[];
}

export const ANALYZE_KIND: PanelKind = {
  viewType: 'loraStudio.analyze',
  title: 'LoRA Adapter Analysis',
  script: ['dist', 'webview', 'analyze.js'],
  styles: [['dist', 'webview', 'analyze.css'], ['media', 'dashboard.css'], ['media', 'analyze.css']],
};

export const COMPARE_KIND: PanelKind = {
  viewType: 'loraStudio.compareRuns',
  title: 'LoRA Run Comparison',
  script: ['dist', 'webview', 'compare.js'],
  styles: [['dist', 'webview', 'compare.css'], ['media', 'dashboard.css'], ['media', 'analyze.css']],
};

export class ChartPanel<M extends AnalyzeHostMessage | CompareHostMessage> extends Disposable {
  private static readonly current = new Map<string, ChartPanel<AnalyzeHostMessage | CompareHostMessage>>();
  private ready = false;
  /** what the page shows (re-posted on every "ready") */
  private content: M[] = [];
  /** what the page last said it drew, chart → items (the integration tests read it) */
  rendered: Record<string, number> | undefined;
  /** the folder the last image went to (offered first next time) */
  private lastSaveDir: string | undefined;
  private readonly _onDidRender = this._register(new vscode.EventEmitter<Record<string, number>>());
  readonly onDidRender = this._onDidRender.event;

  /** The panel of this kind, created the first time, revealed and with `content` (replacing what it showed). */
  static show<M extends AnalyzeHostMessage | CompareHostMessage>(kind: PanelKind, extensionUri: vscode.Uri, log: vscode.LogOutputChannel, content: M[], title?: string): ChartPanel<M> {
    let p = ChartPanel.current.get(kind.viewType) as ChartPanel<M> | undefined;
    if (!p) {
      const panel = vscode.window.createWebviewPanel(kind.viewType, title ?? kind.title, vscode.window.activeTextEditor?.viewColumn ?? vscode.ViewColumn.One, {
        enableScripts: true,
        retainContextWhenHidden: false,
        localResourceRoots: RESOURCE_ROOTS.map((root) => vscode.Uri.joinPath(extensionUri, root)),
      });
      p = new ChartPanel<M>(kind, panel, extensionUri, log);
      ChartPanel.current.set(kind.viewType, p as unknown as ChartPanel<AnalyzeHostMessage | CompareHostMessage>);
    } else {
      p.panel.reveal();
    }
    if (title) p.panel.title = title;
    p.setContent(content);
    return p;
  }

  private constructor(
    private readonly kind: PanelKind,
    readonly panel: vscode.WebviewPanel,
    extensionUri: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
    const webview = panel.webview;
    this._register(panel.onDidDispose(() => this.dispose()));
    this._register(webview.onDidReceiveMessage((m: unknown) => void this.onMessage(m)));
    this._register(panel.onDidChangeViewState(() => {
      if (!panel.visible) this.ready = false;
    }));
    const asUri = (p: readonly string[]) => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, ...p)).toString();
    webview.html = buildDashboardHtml({ cspSource: webview.cspSource, scriptUri: asUri(kind.script), styleUris: kind.styles.map(asUri), title: kind.title });
  }

  /** Replaces what the page shows. */
  setContent(content: M[]): void {
    this.content = content;
    this.rendered = undefined;
    for (const m of content) this.post(m);
  }

  /** Adds a message to what the page shows (a notice, say). */
  post(m: M): void {
    if (this.ready && !this.isDisposed) void this.panel.webview.postMessage(m);
  }

  override dispose(): void {
    if (this.isDisposed) return;
    if (ChartPanel.current.get(this.kind.viewType) === (this as unknown)) ChartPanel.current.delete(this.kind.viewType);
    super.dispose();
    this.panel.dispose();
  }

  private async onMessage(raw: unknown): Promise<void> {
    if (!isPanelWebviewMessage(raw)) {
      this.log.warn(`${this.kind.viewType}: ignored a malformed message from the webview: ${describe(raw)}`);
      return;
    }
    switch (raw.type) {
      case 'ready':
        this.ready = true;
        for (const m of this.content) this.post(m);
        return;
      case 'rendered':
        this.rendered = raw.charts;
        this._onDidRender.fire(raw.charts);
        return;
      case 'saveImage':
        await this.saveImage(raw.name, raw.dataUrl);
        return;
    }
  }

  private async saveImage(name: string, dataUrl: string): Promise<void> {
    const img = decodeImageDataUrl(dataUrl);
    if (!img.ok) {
      this.log.warn(`${this.kind.viewType}: could not save ${name}: ${img.reason}`);
      void vscode.window.showErrorMessage(`Could not save the chart: ${img.reason}.`);
      return;
    }
    const folder = this.lastSaveDir ?? vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const file = imageFileName(name, img.ext);
    const target = await vscode.window.showSaveDialog({
      title: `Save ${name} as ${img.ext.toUpperCase()}`,
      saveLabel: 'Save Image',
      defaultUri: folder ? vscode.Uri.file(path.join(folder, file)) : undefined,
      filters: img.ext === 'png' ? { 'PNG image': ['png'] } : { 'SVG image': ['svg'] },
    });
    if (!target) return;
    try {
      fs.mkdirSync(path.dirname(target.fsPath), { recursive: true });
      writeFileAtomic(target.fsPath, img.bytes);
    } catch (e) {
      const message = `Could not save ${target.fsPath}: ${(e as Error).message}`;
      this.log.error(message);
      void vscode.window.showErrorMessage(message);
      return;
    }
    this.lastSaveDir = path.dirname(target.fsPath);
    this.log.info(`saved ${name} to ${target.fsPath} (${img.bytes.length} bytes)`);
    this.post({ type: 'notice', level: 'info', message: `Saved ${target.fsPath}` } as M);
  }
}
