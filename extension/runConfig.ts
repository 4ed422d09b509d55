/**
 * The active run config (lora-run.json): which file it is, reading it (from the open editor when there is one,
 * so unsaved edits count), dotted-path edits applied as a WorkspaceEdit and saved, and a change event fed by a
 * FileSystemWatcher and by editor changes. The Modules view and the run manager both read it through here.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { Disposable } from './disposable';
import { applyEdits, isRunConfigFile, parseConfigText, RUN_CONFIG_GLOB, type Json } from './runFiles';

export class RunConfigStore extends Disposable {
  private _uri: vscode.Uri | undefined;
  private readonly _onDidChange = this._register(new vscode.EventEmitter<void>());
  /** the active file changed, or its content did */
  readonly onDidChange = this._onDidChange.event;
  private changeTimer: NodeJS.Timeout | undefined;

  constructor(private readonly log: vscode.LogOutputChannel) {
    super();
    const watcher = this._register(vscode.workspace.createFileSystemWatcher(RUN_CONFIG_GLOB));
    this._register(watcher.onDidChange((u) => this.onFileEvent(u)));
    this._register(watcher.onDidCreate((u) => {
      if (!this._uri) this.setActive(u);
      else this.onFileEvent(u);
    }));
    this._register(watcher.onDidDelete((u) => {
      if (this._uri && u.toString() === this._uri.toString()) void this.discover();
    }));
    // typing in the open run config updates the tree too (debounced)
    this._register(vscode.workspace.onDidChangeTextDocument((e) => this.onFileEvent(e.document.uri)));
    this._register(vscode.window.onDidChangeActiveTextEditor((ed) => {
      const u = ed?.document.uri;
      if (u && u.scheme === 'file' && isRunConfigFile(u.fsPath) && u.toString() !== this._uri?.toString()) this.setActive(u);
    }));
    this._register({ dispose: () => clearTimeout(this.changeTimer) });
  }

  get uri(): vscode.Uri | undefined {
    return this._uri;
  }

  /** Picks the run config: lora-run.json at a workspace root first, else the first one found. */
  async discover(): Promise<void> {
    const found = await vscode.workspace.findFiles(RUN_CONFIG_GLOB, '**/node_modules/**', 20);
    const roots = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
    found.sort((a, b) => depth(a.fsPath, roots) - depth(b.fsPath, roots) || Number(path.basename(b.fsPath) === 'lora-run.json') - Number(path.basename(a.fsPath) === 'lora-run.json') || a.fsPath.localeCompare(b.fsPath));
    this.setActive(found[0]);
  }

  setActive(uri: vscode.Uri | undefined): void {
    if (uri?.toString() === this._uri?.toString()) return;
    this._uri = uri;
    void vscode.commands.executeCommand('setContext', 'loraStudio.hasRunConfig', !!uri);
    if (uri) this.log.info(`run config: ${uri.fsPath}`);
    this._onDidChange.fire();
  }

  /** The parsed config, or undefined when there is none or it is not valid JSON (logged). */
  async read(): Promise<Json | undefined> {
    if (!this._uri) return undefined;
    try {
      return parseConfigText(await this.text(this._uri));
    } catch (e) {
      this.log.debug(`${this._uri.fsPath} is not valid JSON yet: ${(e as Error).message}`);
      return undefined;
    }
  }

  /** Applies dotted-path edits to the run config and saves it. */
  async update(edits: ReadonlyArray<{ path: string; value: unknown }>): Promise<void> {
    const uri = this._uri;
    if (!uri) throw new Error('there is no run config (lora-run.json); create one with "LoRA: New Run Config"');
    const doc = await vscode.workspace.openTextDocument(uri);
    const before = doc.getText();
    const after = applyEdits(before, edits);
    if (after === before) return;
    const edit = new vscode.WorkspaceEdit();
    edit.replace(uri, new vscode.Range(doc.positionAt(0), doc.positionAt(before.length)), after);
    if (!(await vscode.workspace.applyEdit(edit))) throw new Error(`could not edit ${uri.fsPath}`);
    await doc.save();
  }

  /** Writes a new run config file and makes it the active one. */
  async create(uri: vscode.Uri, config: Json): Promise<void> {
    await vscode.workspace.fs.writeFile(uri, Buffer.from(JSON.stringify(config, null, 2) + '\n', 'utf8'));
    this.setActive(uri);
    this._onDidChange.fire();
  }

  /** Saves the run config if it has unsaved edits (before a run starts). */
  async saveIfDirty(): Promise<void> {
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === this._uri?.toString());
    if (doc?.isDirty) await doc.save();
  }

  private async text(uri: vscode.Uri): Promise<string> {
    const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
    if (open) return open.getText();
    return Buffer.from(await vscode.workspace.fs.readFile(uri)).toString('utf8');
  }

  private onFileEvent(uri: vscode.Uri): void {
    if (!this._uri || uri.toString() !== this._uri.toString()) return;
    clearTimeout(this.changeTimer);
    this.changeTimer = setTimeout(() => this._onDidChange.fire(), 150);
  }
}

function depth(file: string, roots: string[]): number {
  const root = roots.find((r) => file.startsWith(r + path.sep));
  return (root ? path.relative(root, file) : file).split(path.sep).length;
}
