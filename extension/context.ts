/**
 * The extension's one owner of state and disposables: the log channel, the trainer client (one child
 * process, forked on first use), the run config store, the run manager (the dashboard's host), the Modules
 * view, the status bar and the dashboard serializer. Commands get it as their argument.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { DashboardPanel } from './dashboard/panel';
import { Disposable, toDisposable } from './disposable';
import { ModulesView } from './modules/view';
import { nativeModulesDir } from './native';
import { OPEN_LOG, RunManager } from './run';
import { RunConfigStore } from './runConfig';
import { RunStatusBar } from './statusBar';
import { TrainerClient } from './trainerClient';

export const RESTRICTED_MESSAGE =
  'is disabled in Restricted Mode: it runs the trainer on files of this workspace (data, models, output folders), ' +
  'so it needs a trusted workspace. Trust the workspace to enable it.';

export class LoraContext extends Disposable {
  readonly log: vscode.LogOutputChannel;
  readonly client: TrainerClient;
  readonly store: RunConfigStore;
  readonly runs: RunManager;
  readonly modules: ModulesView;
  /** the adapter most recently loaded or trained, offered first by Merge / Evaluate / Try */
  lastAdapter: string | undefined;

  constructor(readonly extension: vscode.ExtensionContext) {
    super();
    this.log = this._register(vscode.window.createOutputChannel('LoRA Studio', { log: true }));
    this.client = new TrainerClient({
      script: this.distPath('trainer', 'main.js'),
      nativeDir: this.nativeDir,
      log: (line, level) => (level === 'error' ? this.log.error(`[trainer] ${line}`) : this.log.info(`[trainer] ${line}`)),
    });
    // the client's dispose is async (SIGTERM, grace, SIGKILL); deactivate() awaits shutdown() as well
    this._register(toDisposable(() => void this.client.dispose()));
    this._register(toDisposable(this.client.onExit((err) => {
      if (!err) return;
      // requests that were open already report it; this covers a crash between requests
      void vscode.window.showErrorMessage(`${err.message}. The next action starts a new trainer process.`, OPEN_LOG).then((p) => {
        if (p) this.log.show(true);
      });
    })));

    this.store = this._register(new RunConfigStore(this.log));
    this.runs = this._register(new RunManager(this.client, this.store, this.log, () => this.restrictedReason('Training')));
    this.modules = this._register(new ModulesView(this.client, this.store, this.log));
    this._register(new RunStatusBar(this.runs));
    this._register(DashboardPanel.registerSerializer(extension.extensionUri, this.runs));
    this._register(vscode.workspace.onDidGrantWorkspaceTrust(() => this.log.info('workspace trusted: training and merging are enabled')));
    void this.store.discover();
    this.log.info(`LoRA Studio ${extension.extension.packageJSON.version ?? ''} activated`);
  }

  get trusted(): boolean {
    return vscode.workspace.isTrusted;
  }

  /** "<what> is disabled in Restricted Mode: …", or undefined in a trusted workspace. */
  restrictedReason(what: string): string | undefined {
    return this.trusted ? undefined : `${what} ${RESTRICTED_MESSAGE}`;
  }

  /** <extension>/dist/… */
  distPath(...parts: string[]): string {
    return path.join(this.extension.extensionUri.fsPath, 'dist', ...parts);
  }

  get globalStorage(): string {
    return this.extension.globalStorageUri.fsPath;
  }

  /** <globalStorage>/native/node_modules: where Install Native Backend puts tfjs-node(-gpu). */
  get nativeDir(): string {
    return nativeModulesDir(this.globalStorage);
  }

  showDashboard(): void {
    DashboardPanel.createOrShow(this.extension.extensionUri, this.runs);
  }

  /** Stops the trainer child and waits for it (deactivate). */
  async shutdown(): Promise<void> {
    await this.client.dispose();
    this.dispose();
  }
}
