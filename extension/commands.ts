/**
 * Every command of the extension, in one table, registered in one loop. Each entry has its enabled
 * behaviour (`run`) and says when it is disabled (`disabled` returns the reason): in Restricted Mode the
 * commands that run the trainer on workspace files (training, merging, evaluating, trying) show why instead
 * of running; the module filters need an open model. package.json's `when` clauses mirror this for menus.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cliArgsBackend, withCli } from './commands/cli';
import { analyzeAdapter, compareRuns } from './commands/analyze';
import type { LoraContext } from './context';
import { installGpuBackend, installNativeBackend } from './commands/install';
import { regexFromList } from './modules/treeModel';
import type { ModelRef } from './modules/view';
import { showTrainerError } from './run';
import {
  adapterDirOf, checkMergeOut, copyAdapter, getPath, looksLikeHubId, modelFieldFor, readAdapterConfig, resolveModel, runConfigTemplate,
  type Json,
} from './runFiles';

type Gate = 'trust' | 'model' | 'run';

interface CommandSpec {
  /** without the `loraStudio.` prefix */
  id: string;
  /** what the Restricted Mode message calls it */
  title: string;
  /** conditions, checked in order; the first unmet one is the disabled behaviour */
  needs?: Gate[];
  run(ctx: LoraContext, ...args: unknown[]): unknown;
}

/** Why a command cannot run now, or undefined when it can. */
function disabledReason(ctx: LoraContext, spec: CommandSpec): { message: string; action?: [string, () => unknown] } | undefined {
  for (const gate of spec.needs ?? []) {
    if (gate === 'trust' && !ctx.trusted) {
      return { message: ctx.restrictedReason(spec.title)!, action: ['Manage Workspace Trust', () => vscode.commands.executeCommand('workbench.trust.manage')] };
    }
    if (gate === 'model' && !ctx.modules.openModel) {
      return { message: `${spec.title} needs an open model.`, action: ['Open Model…', () => vscode.commands.executeCommand('loraStudio.openModel')] };
    }
    if (gate === 'run' && !ctx.runs.isActive) {
      return { message: 'No training run is in progress.' };
    }
  }
  return undefined;
}

export const COMMANDS: CommandSpec[] = [
  { id: 'openModel', title: 'Open Model', run: (ctx, arg) => openModel(ctx, arg) },
  { id: 'startTraining', title: 'Training', needs: ['trust'], run: (ctx) => ctx.runs.startTraining() },
  { id: 'stopTraining', title: 'Stop Training', needs: ['run'], run: (ctx) => ctx.runs.stopTraining() },
  { id: 'resumeTraining', title: 'Resuming training', needs: ['trust'], run: (ctx) => ctx.runs.resumeTraining() },
  { id: 'showDashboard', title: 'Show Dashboard', run: (ctx) => ctx.showDashboard() },
  { id: 'saveAdapterAs', title: 'Save Adapter As', run: (ctx) => saveAdapterAs(ctx) },
  { id: 'loadAdapter', title: 'Load Adapter', run: (ctx, arg) => loadAdapter(ctx, arg) },
  { id: 'mergeAdapter', title: 'Merging', needs: ['trust'], run: (ctx, arg) => mergeAdapter(ctx, arg) },
  { id: 'evaluateAdapter', title: 'Evaluating an adapter', needs: ['trust'], run: (ctx) => evaluateAdapter(ctx) },
  { id: 'tryAdapter', title: 'Trying an adapter', needs: ['trust'], run: (ctx) => tryAdapter(ctx) },
  { id: 'analyzeAdapter', title: 'Analyzing an adapter', needs: ['trust'], run: (ctx, arg) => analyzeAdapter(ctx, arg) },
  { id: 'compareRuns', title: 'Compare Runs', run: (ctx, arg) => compareRuns(ctx, arg) },
  { id: 'newRunConfig', title: 'New Run Config', run: (ctx) => newRunConfig(ctx) },
  { id: 'installNativeBackend', title: 'Install Native Backend', run: (ctx) => installNativeBackend(ctx) },
  { id: 'installGpuBackend', title: 'Install GPU Backend', run: (ctx) => installGpuBackend(ctx) },
  { id: 'showLog', title: 'Show Log', run: (ctx) => ctx.log.show() },
  { id: 'modules.filterRegex', title: 'Filter by regex', needs: ['model'], run: (ctx) => filterRegex(ctx) },
  { id: 'modules.filterAttention', title: 'Attention only', needs: ['model'], run: (ctx) => ctx.modules.applyFilter({ kind: 'attention' }) },
  { id: 'modules.filterAllLinear', title: 'All linear', needs: ['model'], run: (ctx) => ctx.modules.applyFilter({ kind: 'all-linear' }) },
  { id: 'modules.filterClear', title: 'Clear selection', needs: ['model'], run: (ctx) => ctx.modules.applyFilter({ kind: 'clear' }) },
];

export function registerCommands(ctx: LoraContext): vscode.Disposable[] {
  return COMMANDS.map((spec) =>
    vscode.commands.registerCommand(`loraStudio.${spec.id}`, async (...args: unknown[]) => {
      const off = disabledReason(ctx, spec);
      if (off) {
        const pick = await vscode.window.showWarningMessage(off.message, ...(off.action ? [off.action[0]] : []));
        if (pick && off.action) await off.action[1]();
        return;
      }
      try {
        // the result (a panel, say) goes back to executeCommand's caller: scripts and the integration tests
        return await spec.run(ctx, ...args);
      } catch (e) {
        await showTrainerError(spec.title, e, ctx.log);
        return undefined;
      }
    }),
  );
}

// ---- Open Model… ----

const PICK_FOLDER = '$(folder-opened) Choose a model folder…';
const PICK_HUB = '$(cloud-download) Enter a Hugging Face hub id…';

async function openModel(ctx: LoraContext, arg: unknown): Promise<void> {
  let model: ModelRef | undefined;
  if (arg instanceof vscode.Uri) model = { kind: 'folder', ref: arg.fsPath };
  else if (typeof arg === 'string') model = fs.existsSync(arg) ? { kind: 'folder', ref: path.resolve(arg) } : { kind: 'hub', ref: arg };
  if (!model) {
    const items: Array<vscode.QuickPickItem & { model?: ModelRef }> = [{ label: PICK_FOLDER }, { label: PICK_HUB }];
    const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const demo = root ? path.join(root, '.lora-studio', 'demo', 'base') : undefined;
    if (demo && fs.existsSync(path.join(demo, 'config.json'))) items.push({ label: '$(beaker) Demo model', description: demo, model: { kind: 'folder', ref: demo } });
    items.push({ label: '', kind: vscode.QuickPickItemKind.Separator });
    for (const id of ['gpt2', 'distilgpt2', 'gpt2-medium']) items.push({ label: `$(cloud) ${id}`, description: 'Hugging Face hub', model: { kind: 'hub', ref: id } });
    const pick = await vscode.window.showQuickPick(items, { title: 'LoRA: Open Model', placeHolder: 'A Hugging Face model folder (config.json) or a hub id' });
    if (!pick) return;
    if (pick.model) model = pick.model;
    else if (pick.label === PICK_FOLDER) {
      const uris = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Open Model', title: 'A Hugging Face model folder (with config.json)' });
      if (!uris?.[0]) return;
      model = { kind: 'folder', ref: uris[0].fsPath };
    } else {
      const id = await vscode.window.showInputBox({
        title: 'Hugging Face hub id',
        placeHolder: 'gpt2, distilgpt2, owner/name',
        validateInput: (v) => (looksLikeHubId(v.trim()) ? undefined : 'A hub id looks like "gpt2" or "owner/name"'),
      });
      if (!id) return;
      model = { kind: 'hub', ref: id.trim() };
    }
  }
  if (model.kind === 'folder' && !fs.existsSync(path.join(model.ref, 'config.json'))) {
    void vscode.window.showErrorMessage(`${model.ref} has no config.json: it is not a Hugging Face model folder.`);
    return;
  }
  if (!(await ctx.modules.open(model))) return;
  // the run config follows the opened model
  const uri = ctx.store.uri;
  const cfg = await ctx.store.read();
  if (uri && cfg && (typeof cfg.model !== 'string' || resolveModel(uri.fsPath, cfg.model).ref !== model.ref)) {
    const field = model.kind === 'hub' ? model.ref : modelFieldFor(uri.fsPath, model.ref);
    await ctx.store.update([{ path: 'model', value: field }, { path: 'lora.target_modules', value: ctx.modules.targetSpec() }]);
    void vscode.window.showInformationMessage(`Set "model" in ${path.basename(uri.fsPath)} to ${JSON.stringify(field)}.`);
  }
}

// ---- filters ----

async function filterRegex(ctx: LoraContext): Promise<void> {
  const spec = ctx.modules.targetSpec();
  const seed = ctx.modules.currentRegex() ?? (Array.isArray(spec) && spec.length ? regexFromList(spec) : '.*\\.attn\\.c_attn');
  const pattern = await vscode.window.showInputBox({
    title: 'Filter modules by regex',
    prompt: 'Matched against the WHOLE module name (PEFT uses re.fullmatch), e.g. transformer\\.h\\.(0|1)\\..*  or  .*c_(attn|proj)',
    value: seed,
  });
  if (pattern === undefined || pattern === '') return;
  // the trainer checks and matches it (Python's spelling, under a time limit) and the view shows its error
  await ctx.modules.applyFilter({ kind: 'regex', pattern });
}

// ---- adapters ----

/** The finished adapter of the current run config, else a checkpoint picked by the user. */
async function runAdapter(ctx: LoraContext): Promise<string | undefined> {
  const status = ctx.runs.status();
  const out = status.outputDir;
  if (!out) return undefined;
  const final = adapterDirOf(out);
  const checkpoints = fs.existsSync(out)
    ? fs.readdirSync(out).filter((n) => /^checkpoint-\d+$/.test(n) && adapterDirOf(path.join(out, n))).sort((a, b) => Number(b.slice(11)) - Number(a.slice(11)))
    : [];
  if (final && checkpoints.length === 0) return final;
  if (!final && checkpoints.length === 0) return undefined;
  const items = [
    ...(final ? [{ label: '$(package) Final adapter', description: final, dir: final }] : []),
    ...checkpoints.map((c) => ({ label: `$(history) ${c}`, description: path.join(out, c), dir: path.join(out, c) })),
  ];
  const pick = await vscode.window.showQuickPick(items, { title: 'Which adapter?' });
  return pick?.dir;
}

async function saveAdapterAs(ctx: LoraContext): Promise<void> {
  const src = await runAdapter(ctx);
  if (!src) {
    void vscode.window.showWarningMessage('There is no trained adapter yet: the run config\'s output_dir holds no adapter_config.json + adapter_model.safetensors.');
    return;
  }
  const uris = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Save Adapter Here', title: 'Folder for the adapter (adapter_config.json, adapter_model.safetensors)' });
  const dest = uris?.[0]?.fsPath;
  if (!dest) return;
  if (fs.existsSync(path.join(dest, 'adapter_model.safetensors'))) {
    const ok = await vscode.window.showWarningMessage(`${dest} already holds an adapter. Replace it?`, { modal: true }, 'Replace');
    if (!ok) return;
  }
  copyAdapter(src, dest);
  ctx.lastAdapter = dest;
  ctx.log.info(`saved the adapter of ${src} to ${dest}`);
  const pick = await vscode.window.showInformationMessage(`Saved the adapter to ${dest}.`, 'Reveal');
  if (pick) await vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(path.join(dest, 'adapter_config.json')));
}

async function pickAdapterFolder(ctx: LoraContext, title: string): Promise<string | undefined> {
  const suggestions = [ctx.lastAdapter, ctx.runs.status().outputDir && adapterDirOf(ctx.runs.status().outputDir!)].filter((d): d is string => !!d && fs.existsSync(d));
  let dir: string | undefined;
  if (suggestions.length) {
    const items = [...new Set(suggestions)].map((d) => ({ label: `$(package) ${path.basename(d)}`, description: d, dir: d as string | undefined }));
    items.push({ label: '$(folder-opened) Choose an adapter folder…', description: '', dir: undefined });
    const pick = await vscode.window.showQuickPick(items, { title });
    if (!pick) return undefined;
    dir = pick.dir;
  }
  if (!dir) {
    const uris = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Use Adapter', title: `${title} (a PEFT folder with adapter_config.json)` });
    dir = uris?.[0]?.fsPath;
  }
  if (!dir) return undefined;
  const check = readAdapterConfig(dir);
  if (!check.ok) {
    void vscode.window.showErrorMessage(check.reason);
    return undefined;
  }
  return dir;
}

async function loadAdapter(ctx: LoraContext, arg: unknown): Promise<void> {
  const dir = arg instanceof vscode.Uri ? arg.fsPath : await pickAdapterFolder(ctx, 'Load Adapter');
  if (!dir) return;
  const check = readAdapterConfig(dir);
  if (!check.ok) {
    void vscode.window.showErrorMessage(check.reason);
    return;
  }
  ctx.lastAdapter = dir;
  const base = check.config.base_model_name_or_path;
  if (!ctx.modules.openModel && typeof base === 'string' && base) {
    // a local base is written relative to the adapter folder when the user gave a relative path, as PEFT keeps it
    const local = path.resolve(dir, base);
    const ref: ModelRef = fs.existsSync(path.join(local, 'config.json')) ? { kind: 'folder', ref: local } : { kind: 'hub', ref: base };
    if (!(await ctx.modules.open(ref, { selectionFromConfig: false }))) return;
  }
  if (!ctx.modules.openModel) {
    void vscode.window.showWarningMessage('Open the adapter\'s base model first (LoRA: Open Model…); its target modules will then be checked.');
    return;
  }
  if (!(await ctx.modules.selectSpec(check.config.target_modules as string | string[] | null, dir))) return;
  void vscode.window.showInformationMessage(`Checked the target modules of ${path.basename(dir)}: ${JSON.stringify(check.config.target_modules)} (r=${check.config.r}, lora_alpha=${check.config.lora_alpha}).`);
}

// ---- merge / eval / try: the trainer's CLI ----

async function pickBaseModel(ctx: LoraContext, title: string): Promise<string | undefined> {
  const open = ctx.modules.openModel;
  const items: Array<vscode.QuickPickItem & { ref?: string }> = [];
  if (open) items.push({ label: `$(circuit-board) ${path.basename(open.ref)}`, description: open.ref, detail: 'the open model', ref: open.ref });
  items.push({ label: '$(folder-opened) Choose a model folder…' });
  const pick = items.length > 1 ? await vscode.window.showQuickPick(items, { title }) : items[0];
  if (!pick) return undefined;
  if (pick.ref) return pick.ref;
  const uris = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Base Model', title });
  return uris?.[0]?.fsPath;
}

/** What a caller (a script, the integration tests) may pass to Merge instead of answering its pickers. */
interface MergeArgs {
  base?: string;
  adapter?: string;
  out?: string;
}

function mergeArgs(arg: unknown): MergeArgs {
  if (!arg || typeof arg !== 'object') return {};
  const o = arg as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
  return { base: str(o.base), adapter: str(o.adapter), out: str(o.out) };
}

async function mergeAdapter(ctx: LoraContext, arg?: unknown): Promise<void> {
  const given = mergeArgs(arg);
  const base = given.base ?? (await pickBaseModel(ctx, 'Merge: the base model'));
  if (!base) return;
  if (given.adapter) {
    const check = readAdapterConfig(given.adapter);
    if (!check.ok) {
      void vscode.window.showErrorMessage(check.reason);
      return;
    }
  }
  const adapter = given.adapter ?? (await pickAdapterFolder(ctx, 'Merge: the adapter'));
  if (!adapter) return;
  const parent = fs.existsSync(base) ? path.dirname(path.resolve(base)) : vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? path.dirname(adapter);
  const target = given.out
    ? vscode.Uri.file(path.resolve(given.out))
    : await vscode.window.showSaveDialog({
      title: 'Merge: a NEW folder for the merged model',
      saveLabel: 'Create Merged Model',
      defaultUri: vscode.Uri.file(path.join(parent, `${path.basename(base)}-merged`)),
    });
  if (!target) return;
  const out = target.fsPath;
  const bad = checkMergeOut(base, adapter, out);
  if (bad) {
    void vscode.window.showErrorMessage(bad);
    return;
  }
  const done = await withCli(ctx, `Merging ${path.basename(adapter)} into ${path.basename(base)}`, ['merge', base, '--adapter', adapter, '--out', out, ...cliArgsBackend()], (j) => j);
  if (!done) return;
  const pick = await vscode.window.showInformationMessage(`Merged model written to ${out}.`, 'Open Folder', 'Open in New Window', 'Reveal');
  if (pick === 'Open Folder') await ctx.modules.open({ kind: 'folder', ref: out }, { selectionFromConfig: false });
  if (pick === 'Open in New Window') await vscode.commands.executeCommand('vscode.openFolder', vscode.Uri.file(out), { forceNewWindow: true });
  if (pick === 'Reveal') await vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(path.join(out, 'config.json')));
}

/** The run config's eval (or train) data file, resolved against the config. */
async function configuredData(ctx: LoraContext): Promise<string | undefined> {
  const uri = ctx.store.uri;
  const cfg = await ctx.store.read();
  if (!uri || !cfg) return undefined;
  for (const key of ['data.eval', 'data.train']) {
    const v = getPath(cfg, key);
    if (typeof v === 'string' && fs.existsSync(path.resolve(path.dirname(uri.fsPath), v))) return path.resolve(path.dirname(uri.fsPath), v);
  }
  return undefined;
}

async function evaluateAdapter(ctx: LoraContext): Promise<void> {
  const base = await pickBaseModel(ctx, 'Evaluate: the base model');
  if (!base) return;
  const adapter = await pickAdapterFolder(ctx, 'Evaluate: the adapter');
  if (!adapter) return;
  const known = await configuredData(ctx);
  let data = known;
  const items = [...(known ? [{ label: `$(file) ${path.basename(known)}`, description: known, file: known as string | undefined }] : []), { label: '$(folder-opened) Choose a JSONL file…', description: '', file: undefined }];
  const pick = items.length > 1 ? await vscode.window.showQuickPick(items, { title: 'Evaluate: the data' }) : items[0];
  if (!pick) return;
  data = pick.file;
  if (!data) {
    const uris = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'JSON Lines': ['jsonl'] }, openLabel: 'Evaluate On', title: 'JSONL with "text" (and "label" for seq-cls)' });
    data = uris?.[0]?.fsPath;
  }
  if (!data) return;
  const task = ctx.modules.openModel?.ref === base ? ['--task', ctx.modules.openTask] : [];
  const result = await withCli(ctx, `Evaluating ${path.basename(adapter)}`, ['eval', base, '--adapter', adapter, '--data', data, ...task, ...cliArgsBackend()], (j) => j);
  if (!result) return;
  const metrics = (result.metrics && typeof result.metrics === 'object' ? result.metrics : result) as Json;
  const summary = Object.entries(metrics)
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : (v as number).toFixed(4)}`)
    .join(' · ');
  const show = await vscode.window.showInformationMessage(`Evaluation of ${path.basename(adapter)}: ${summary || JSON.stringify(result)}`, 'Show Details');
  if (show) await showDocument(`# Evaluation\n\n- model: ${base}\n- adapter: ${adapter}\n- data: ${data}\n\n\`\`\`json\n${JSON.stringify(result, null, 2)}\n\`\`\`\n`);
}

async function tryAdapter(ctx: LoraContext): Promise<void> {
  const base = await pickBaseModel(ctx, 'Try: the base model');
  if (!base) return;
  const adapter = await pickAdapterFolder(ctx, 'Try: the adapter');
  if (!adapter) return;
  const classify = adapterTaskType(adapter) === 'SEQ_CLS';
  const prompt = await vscode.window.showInputBox({
    title: 'Try the adapter',
    prompt: classify ? 'A text to classify' : 'A prompt to continue',
    placeHolder: classify ? 'The movie was wonderful' : 'Once upon a time',
  });
  if (!prompt) return;
  const args = classify
    ? ['classify', base, '--adapter', adapter, '--text', prompt, ...cliArgsBackend()]
    : ['generate', base, '--adapter', adapter, '--prompt', prompt, '--max-new-tokens', '40', ...cliArgsBackend()];
  const result = await withCli(ctx, `Running ${path.basename(adapter)}`, args, (j) => j);
  if (!result) return;
  let body: string;
  if (classify && typeof result.label === 'string') {
    const probs = Object.entries((result.probabilities ?? {}) as Record<string, number>).map(([k, p]) => `| ${k} | ${p.toFixed(4)} |`).join('\n');
    body = `**Text**\n\n> ${prompt}\n\n**Label:** ${result.label}\n\n| label | probability |\n|---|---|\n${probs}\n`;
  } else if (typeof result.completion === 'string') {
    body = `**Prompt**\n\n> ${prompt}\n\n**Output**\n\n${prompt}${result.completion}\n`;
  } else {
    body = `**Input**\n\n> ${prompt}\n\n\`\`\`json\n${JSON.stringify(result, null, 2)}\n\`\`\`\n`;
  }
  await showDocument(`# Try adapter ${path.basename(adapter)}\n\n- model: ${base}\n\n${body}`);
}

/** task_type from a PEFT adapter's adapter_config.json, if readable. */
function adapterTaskType(dir: string): string | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')).task_type;
  } catch {
    return undefined;
  }
}

async function showDocument(markdown: string): Promise<void> {
  const doc = await vscode.workspace.openTextDocument({ content: markdown, language: 'markdown' });
  await vscode.window.showTextDocument(doc, { preview: true, viewColumn: vscode.ViewColumn.Beside });
}

// ---- New Run Config ----

async function newRunConfig(ctx: LoraContext): Promise<void> {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) {
    void vscode.window.showWarningMessage('Open a folder first: the run config lives in the workspace.');
    return;
  }
  let uri = vscode.Uri.joinPath(folder.uri, 'lora-run.json');
  if (fs.existsSync(uri.fsPath)) {
    const name = await vscode.window.showInputBox({
      title: 'lora-run.json exists; name the new run config',
      value: 'experiment',
      prompt: 'Written as <name>.lora-run.json',
      validateInput: (v) => (/^[\w.-]+$/.test(v) ? (fs.existsSync(path.join(folder.uri.fsPath, `${v}.lora-run.json`)) ? 'That file exists' : undefined) : 'Letters, digits, ".", "_" and "-"'),
    });
    if (!name) return;
    uri = vscode.Uri.joinPath(folder.uri, `${name}.lora-run.json`);
  }
  const open = ctx.modules.openModel;
  const schemaUri = await stableSchemaUri(ctx);
  const defaultOut = vscode.workspace.getConfiguration('loraStudio').get<string>('defaultOutputDir', '') || undefined;
  const spec = ctx.modules.targetSpec();
  const config = runConfigTemplate({
    model: open ? (open.kind === 'hub' ? open.ref : modelFieldFor(uri.fsPath, open.ref)) : undefined,
    task: open ? ctx.modules.openTask : undefined,
    target_modules: spec !== undefined && !(Array.isArray(spec) && spec.length === 0) ? spec : undefined,
    output_dir: defaultOut,
    schema: schemaUri,
  });
  await ctx.store.create(uri, config);
  await vscode.window.showTextDocument(uri);
  if (!open) void ctx.modules.syncFromConfig();
}

/**
 * A copy of the trainer's JSON Schema in global storage, whose path survives extension updates, for the
 * "$schema" field (contributes.jsonValidation covers lora-run.json files anyway).
 */
async function stableSchemaUri(ctx: LoraContext): Promise<string> {
  const src = path.join(ctx.extension.extensionUri.fsPath, 'trainer', 'config', 'lora-run.schema.json');
  const dst = path.join(ctx.globalStorage, 'lora-run.schema.json');
  try {
    fs.mkdirSync(ctx.globalStorage, { recursive: true });
    fs.copyFileSync(src, dst);
    return vscode.Uri.file(dst).toString();
  } catch {
    return vscode.Uri.file(src).toString();
  }
}


