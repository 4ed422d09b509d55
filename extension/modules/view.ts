/**
 * The Modules view: the open model's modules as named_modules() names them, with a checkbox on each
 * Linear/Conv1D (checkbox state managed here: a parent is checked when all adaptable modules under it are).
 * The checked set is written to the run config's lora.target_modules (a list of full names, or the active
 * regex); editing the run config updates the tree. The view's message carries PEFT's trainable-parameters
 * line from the trainer's `inspect` for the current selection and LoRA settings, and the warnings.
 * The logic lives in treeModel.ts (vscode-free); this file renders it and talks to the trainer.
 */
import * as vscode from 'vscode';
import type { InspectLora, InspectResult } from '../../trainer/protocol';
import { Disposable } from '../disposable';
import type { RunConfigStore } from '../runConfig';
import { getPath, resolveModel, type Json } from '../runFiles';
import { TrainerRequestError, type TrainerClient } from '../trainerClient';
import {
  applyChecks, attentionNames, buildTree, checkState, nodeDescription, nodeTooltip, sameSpec, specFromSelection, viewText,
  type ActiveRegex, type Filter, type ModuleNode, type ModuleTree, type TargetSpec,
} from './treeModel';

export const VIEW_ID = 'loraStudio.modules';
const INSPECT_DEBOUNCE_MS = 250;
const WRITE_DEBOUNCE_MS = 300;

export interface ModelRef {
  kind: 'folder' | 'hub';
  /** an absolute folder, or a hub id */
  ref: string;
}

type Task = 'causal-lm' | 'seq-cls';

export class ModulesView extends Disposable implements vscode.TreeDataProvider<ModuleNode> {
  private readonly view: vscode.TreeView<ModuleNode>;
  private readonly _onDidChangeTreeData = this._register(new vscode.EventEmitter<ModuleNode | undefined>());
  readonly onDidChangeTreeData = this._onDidChangeTreeData.event;

  private model: ModelRef | undefined;
  private tree: ModuleTree | undefined;
  private base: InspectResult | undefined;
  private selected = new Set<string>();
  private regex: ActiveRegex | undefined;
  /** bumped by every selection from a target_modules value: an answer to an older request is dropped */
  private selectGen = 0;
  private emptyRegex: string | undefined;
  private unmatched: string[] = [];
  private notAdaptable: string[] = [];
  private task: Task = 'causal-lm';
  private numLabels: number | undefined;
  private lora: InspectLora = {};
  private modulesToSave: string[] | null | undefined;
  private lastInspect: InspectResult | undefined;
  private inspectError: string | undefined;
  private inspectGen = 0;
  private inspectTimer: NodeJS.Timeout | undefined;
  private writeTimer: NodeJS.Timeout | undefined;
  /** writes of the selection to the run config that have started and not finished */
  private writesInFlight = 0;
  /** bumped by every change of the selection made here and by every write of it: a read of the file that began
   * before either may be stale */
  private localEpoch = 0;
  private loading: Promise<void> | undefined;

  constructor(
    private readonly client: TrainerClient,
    private readonly store: RunConfigStore,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
    this.view = this._register(vscode.window.createTreeView(VIEW_ID, { treeDataProvider: this, manageCheckboxStateManually: true, showCollapseAll: true }));
    this._register(this.view.onDidChangeCheckboxState((e) => this.onCheckboxes(e)));
    this._register(store.onDidChange(() => void this.syncFromConfig()));
    this._register({ dispose: () => (clearTimeout(this.inspectTimer), clearTimeout(this.writeTimer)) });
    void vscode.commands.executeCommand('setContext', 'loraStudio.modelOpen', false);
    this.render();
  }

  get openModel(): ModelRef | undefined {
    return this.model;
  }

  get openTask(): Task {
    return this.task;
  }

  /** The selection as lora.target_modules would hold it. */
  targetSpec(): string | string[] | undefined {
    return this.tree ? specFromSelection(this.tree, this.selected, this.regex) : undefined;
  }

  // ---- TreeDataProvider ----

  getChildren(node?: ModuleNode): ModuleNode[] {
    if (!this.tree) return [];
    return node ? node.children : this.tree.root.children;
  }

  getParent(node: ModuleNode): ModuleNode | undefined {
    if (!this.tree || node.name === '') return undefined;
    const p = node.name.includes('.') ? node.name.slice(0, node.name.lastIndexOf('.')) : '';
    return p === '' ? undefined : this.tree.byName.get(p);
  }

  getTreeItem(node: ModuleNode): vscode.TreeItem {
    const item = new vscode.TreeItem(node.label, node.children.length === 0 ? vscode.TreeItemCollapsibleState.None : this.defaultCollapse(node));
    item.id = `module:${node.name}`;
    item.description = nodeDescription(node, this.selected);
    const isTarget = this.selected.has(node.name);
    const saved = this.lastInspect?.modules_to_save.includes(node.name) ?? this.base?.modules_to_save.includes(node.name) ?? false;
    item.tooltip = nodeTooltip(node, { lora: isTarget, saved });
    if (node.adaptableNames.length > 0) {
      const s = checkState(node, this.selected);
      item.checkboxState = {
        state: s.checked ? vscode.TreeItemCheckboxState.Checked : vscode.TreeItemCheckboxState.Unchecked,
        tooltip: node.adaptable ? (s.checked ? 'LoRA target: uncheck to leave it frozen' : 'Check to adapt this module with LoRA') : `${s.k} of ${s.n} Linear/Conv1D modules below are LoRA targets`,
      };
    }
    item.iconPath = new vscode.ThemeIcon(saved ? 'save' : node.adaptable ? (isTarget ? 'circle-filled' : 'circle-outline') : node.children.length ? 'symbol-namespace' : 'symbol-field');
    item.contextValue = node.adaptable ? 'adaptable' : 'module';
    return item;
  }

  private defaultCollapse(node: ModuleNode): vscode.TreeItemCollapsibleState {
    // the top level and `transformer` open; the blocks stay closed
    return node.name.split('.').length <= 1 ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.Collapsed;
  }

  // ---- opening models ----

  /** Shows a model's modules (inspect reads config.json only; a hub id makes the trainer fetch it). */
  async open(model: ModelRef, opts: { selectionFromConfig?: boolean } = {}): Promise<boolean> {
    const cfg = await this.store.read();
    const fromConfig = opts.selectionFromConfig !== false && cfg !== undefined && this.sameModel(cfg, model);
    const task = fromConfig ? (getPath(cfg, 'task') as Task | undefined) ?? 'causal-lm' : undefined;
    const handle = this.client.request('inspect', { model_dir: model.ref, ...(task ? { task, num_labels: numOrUndef(getPath(cfg, 'num_labels')) } : {}) });
    let result: InspectResult;
    try {
      result = await vscode.window.withProgress({ location: { viewId: VIEW_ID }, title: `Reading ${model.ref}` }, () => handle.result);
    } catch (e) {
      const msg = e instanceof TrainerRequestError ? e.describe() : (e as Error).message;
      const hint = model.kind === 'hub' ? ` The trainer fetches config.json of "${model.ref}" from the Hugging Face Hub: check the network connection (or HF_ENDPOINT / HF_HUB_OFFLINE), or open a local model folder instead.` : '';
      this.log.error(`open model ${model.ref}: ${msg}`);
      const pick = await vscode.window.showErrorMessage(`Could not open the model ${model.ref}: ${msg}${hint}`, 'Open Log');
      if (pick) this.log.show(true);
      return false;
    }
    this.model = model;
    this.base = result;
    this.tree = buildTree(result.modules);
    this.task = result.task;
    this.numLabels = result.num_labels;
    this.regex = undefined;
    this.emptyRegex = undefined;
    this.unmatched = [];
    this.notAdaptable = [];
    this.selected = new Set();
    if (fromConfig) {
      this.readLora(cfg);
      await this.selectFromSpec(getPath(cfg, 'lora.target_modules') as TargetSpec);
    } else {
      this.lora = {};
      this.modulesToSave = undefined;
      this.selected = new Set(result.targets.map((t) => t.name));
    }
    this.lastInspect = undefined;
    void vscode.commands.executeCommand('setContext', 'loraStudio.modelOpen', true);
    this.log.info(`opened ${model.ref}: ${result.modules.length} modules, ${this.tree.adaptable.length} Linear/Conv1D`);
    this.render();
    this.scheduleInspect();
    return true;
  }

  /** Opens the run config's model, or follows its target_modules / LoRA settings when that model is open. */
  async syncFromConfig(): Promise<void> {
    if (this.loading) await this.loading;
    const epoch = this.localEpoch;
    const cfg = await this.store.read();
    const uri = this.store.uri;
    if (!cfg || !uri) {
      this.render();
      return;
    }
    const model = typeof cfg.model === 'string' && cfg.model ? resolveModel(uri.fsPath, cfg.model) : undefined;
    if (!model) return;
    if (!this.model || this.model.ref !== model.ref || getPath(cfg, 'task') !== undefined && getPath(cfg, 'task') !== this.task) {
      this.loading = this.open(model).then(() => undefined);
      await this.loading;
      this.loading = undefined;
      return;
    }
    this.readLora(cfg);
    // while a write is pending or on its way the tree is ahead of the file; after it, our own echo reads the
    // same targets the tree shows, so only an edit made elsewhere changes the selection
    if (this.writesInFlight === 0 && !this.writeTimer && epoch === this.localEpoch) {
      const spec = getPath(cfg, 'lora.target_modules') as TargetSpec;
      if (!sameSpec(spec, this.targetSpec())) await this.selectFromSpec(spec, epoch);
    }
    this.render();
    this.scheduleInspect();
  }

  /** Checks the target modules of a PEFT adapter (adapter_config.json's target_modules). */
  async selectSpec(spec: TargetSpec, source: string): Promise<boolean> {
    if (!this.tree || !(await this.selectFromSpec(spec))) return false;
    this.log.info(`selected the targets of ${source}: ${JSON.stringify(spec)}`);
    this.changed();
    return true;
  }

  /** Applies a filter; a regex or "all-linear" is resolved by the trainer. False when it was refused or overtaken. */
  async applyFilter(filter: Filter): Promise<boolean> {
    if (!this.tree) return false;
    if (filter.kind === 'regex' || filter.kind === 'all-linear') {
      if (!(await this.selectFromSpec(filter.kind === 'regex' ? filter.pattern : 'all-linear'))) return false;
    } else {
      this.selectGen++;
      this.regex = undefined;
      this.emptyRegex = undefined;
      this.unmatched = [];
      this.notAdaptable = [];
      this.selected = filter.kind === 'attention' ? new Set(attentionNames(this.tree)) : new Set();
    }
    this.changed();
    return true;
  }

  /** The active regex filter, to seed the regex input box. */
  currentRegex(): string | undefined {
    return this.regex?.pattern;
  }

  // ---- internals ----

  private onCheckboxes(e: vscode.TreeCheckboxChangeEvent<ModuleNode>): void {
    if (!this.tree) return;
    this.selected = applyChecks(this.selected, e.items.map(([n, s]) => [n, s === vscode.TreeItemCheckboxState.Checked] as [ModuleNode, boolean]));
    this.emptyRegex = undefined;
    this.unmatched = [];
    this.notAdaptable = [];
    this.changed();
  }

  /**
   * Selects what a target_modules value selects, as the trainer resolves it (a user's regex never runs in the
   * extension host: the trainer matches it under a time limit). False, with the selection unchanged, when the
   * trainer refused the value (shown to the user), or when a newer selection or a local change (`epoch`) overtook it.
   */
  private async selectFromSpec(spec: TargetSpec, epoch = this.localEpoch): Promise<boolean> {
    const tree = this.tree;
    const model = this.model;
    if (!tree || !model) return false;
    const gen = ++this.selectGen;
    let s;
    try {
      s = await this.client.request('select', { model_dir: model.ref, task: this.task, num_labels: this.numLabels, target_modules: spec ?? null }).result;
    } catch (e) {
      const msg = e instanceof TrainerRequestError ? e.message : (e as Error).message;
      this.log.error(`target_modules ${JSON.stringify(spec)}: ${msg}`);
      if (gen === this.selectGen) void vscode.window.showErrorMessage(`target_modules ${JSON.stringify(spec)}: ${msg}`);
      return false;
    }
    if (gen !== this.selectGen || epoch !== this.localEpoch || tree !== this.tree) return false;
    this.selected = new Set(s.selected);
    this.regex = s.regex !== undefined ? { pattern: s.regex, selected: s.selected } : undefined;
    this.unmatched = s.unmatched;
    this.emptyRegex = s.regex !== undefined && s.selected.length === 0 ? s.regex : undefined;
    this.notAdaptable = s.not_adaptable;
    return true;
  }

  private readLora(cfg: Json | undefined): void {
    const l = (getPath(cfg, 'lora') ?? {}) as Record<string, unknown>;
    const pick: InspectLora = {};
    for (const k of ['r', 'lora_alpha', 'exclude_modules', 'modules_to_save', 'bias', 'use_rslora', 'rank_pattern', 'alpha_pattern'] as const) {
      if (l[k] !== undefined) (pick as Record<string, unknown>)[k] = l[k];
    }
    this.lora = pick;
    this.modulesToSave = Array.isArray(l.modules_to_save) ? (l.modules_to_save as string[]) : (l.modules_to_save as null | undefined);
    this.numLabels = numOrUndef(getPath(cfg, 'num_labels')) ?? this.numLabels;
  }

  private sameModel(cfg: Json, model: ModelRef): boolean {
    const uri = this.store.uri;
    if (!uri || typeof cfg.model !== 'string') return false;
    return resolveModel(uri.fsPath, cfg.model).ref === model.ref;
  }

  /** The selection changed here: refresh, write it to the run config, recompute the PEFT line. */
  private changed(): void {
    this.localEpoch++;
    this.lastInspect = undefined;
    this.render();
    this.scheduleWrite();
    this.scheduleInspect();
  }

  private scheduleWrite(): void {
    clearTimeout(this.writeTimer);
    this.writeTimer = setTimeout(() => {
      this.writeTimer = undefined;
      // counted from here, with no await in between: a config change event that arrives while the write is on
      // its way would otherwise read the old file and undo the newest checks
      this.writesInFlight++;
      this.localEpoch++;
      void this.writeSelection().finally(() => this.writesInFlight--);
    }, WRITE_DEBOUNCE_MS);
  }

  private async writeSelection(): Promise<void> {
    const uri = this.store.uri;
    const spec = this.targetSpec();
    if (!uri || spec === undefined || !this.model) return;
    const cfg = await this.store.read();
    if (!cfg || !this.sameModel(cfg, this.model)) return;
    if (sameSpec(getPath(cfg, 'lora.target_modules') as TargetSpec, spec)) return;
    try {
      await this.store.update([{ path: 'lora.target_modules', value: spec }]);
    } catch (e) {
      void vscode.window.showErrorMessage(`Could not write target_modules to ${uri.fsPath}: ${(e as Error).message}`);
    }
  }

  private scheduleInspect(): void {
    clearTimeout(this.inspectTimer);
    this.inspectTimer = setTimeout(() => void this.runInspect(), INSPECT_DEBOUNCE_MS);
  }

  private async runInspect(): Promise<void> {
    const spec = this.targetSpec();
    const gen = ++this.inspectGen;
    if (!this.model || spec === undefined || (Array.isArray(spec) && spec.length === 0) || this.emptyRegex !== undefined) {
      this.inspectError = undefined;
      this.render();
      return;
    }
    try {
      const result = await this.client.request('inspect', {
        model_dir: this.model.ref, task: this.task, num_labels: this.numLabels, lora: { ...this.lora, target_modules: spec },
      }).result;
      if (gen !== this.inspectGen) return;
      this.lastInspect = result;
      this.inspectError = undefined;
    } catch (e) {
      if (gen !== this.inspectGen) return;
      this.lastInspect = undefined;
      this.inspectError = e instanceof TrainerRequestError ? e.message : (e as Error).message;
    }
    this.render();
  }

  private render(): void {
    this._onDidChangeTreeData.fire(undefined);
    if (!this.tree || !this.model) {
      this.view.description = undefined;
      this.view.message = undefined;
      return;
    }
    const text = viewText({
      tree: this.tree,
      selected: this.selected,
      task: this.task,
      modules_to_save: this.modulesToSave,
      emptyRegex: this.emptyRegex,
      unmatched: this.unmatched,
      notAdaptable: this.notAdaptable,
      inspect: this.lastInspect,
      inspectError: this.inspectError,
      noRunConfig: !this.store.uri,
    });
    this.view.description = text.description;
    this.view.message = text.message;
  }
}

function numOrUndef(v: unknown): number | undefined {
  return typeof v === 'number' ? v : undefined;
}
