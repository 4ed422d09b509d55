/**
 * "LoRA: Analyze Adapter…" and "LoRA: Compare Runs…". Analyze asks for the adapter (the current run's first),
 * optionally a second adapter and the base model, runs `lora-studio analyze … --json` and shows the result in
 * the Analyze panel; a CLI error (file: field: message) shows there and as a notification. Compare picks run
 * folders (those with metrics.jsonl) and shows their curves and the run-config fields that differ.
 * Callers (scripts, the integration tests) may pass the answers instead: { adapter, compare?, base? } and
 * { runs: [dir, …] }; both commands return the panel.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AnalyzeHostMessage, CompareHostMessage } from '../../webview/protocol';
import type { LoraContext } from '../context';
import { ANALYZE_KIND, COMPARE_KIND, ChartPanel } from '../analyze/panel';
import { toAnalysisData } from '../analyze/messages';
import { diffConfigs, isRunFolder, readRun, runConfigOf, runNames } from '../analyze/runs';
import { RUN_CONFIG_GLOB, adapterDirOf, getPath, readAdapterConfig, resolveModel } from '../runFiles';
import { cliArgsBackend, cliErrorText, runCliWithProgress } from './cli';

interface AnalyzeArgs {
  adapter?: string;
  compare?: string;
  base?: string;
}

const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);

function analyzeArgs(arg: unknown): AnalyzeArgs {
  if (arg instanceof vscode.Uri) return { adapter: arg.fsPath };
  if (!arg || typeof arg !== 'object') return {};
  const o = arg as Record<string, unknown>;
  return { adapter: str(o.adapter), compare: str(o.compare), base: str(o.base) };
}

const isAdapterDir = (d: string) => fs.existsSync(path.join(d, 'adapter_config.json')) && fs.existsSync(path.join(d, 'adapter_model.safetensors'));

/** Adapters to offer: the current run's (output_dir, then its checkpoints, newest first) and the last one used. */
function knownAdapters(ctx: LoraContext): string[] {
  const out = ctx.runs.status().outputDir;
  const found: string[] = [];
  if (out && adapterDirOf(out)) found.push(out);
  if (out && fs.existsSync(out)) {
    const cps = fs.readdirSync(out).filter((n) => /^checkpoint-\d+$/.test(n)).sort((a, b) => Number(b.slice(11)) - Number(a.slice(11)));
    for (const c of cps) if (isAdapterDir(path.join(out, c))) found.push(path.join(out, c));
  }
  if (ctx.lastAdapter && isAdapterDir(ctx.lastAdapter)) found.push(ctx.lastAdapter);
  return [...new Set(found.map((d) => path.resolve(d)))];
}

type Choice<T> = vscode.QuickPickItem & { value?: T; choose?: boolean };

async function pickAdapter(ctx: LoraContext, title: string, opts: { optional: boolean; exclude?: string }): Promise<string | null | undefined> {
  const items: Array<Choice<string | null>> = [];
  if (opts.optional) items.push({ label: '$(circle-slash) None', description: 'analyze one adapter only', value: null });
  const out = ctx.runs.status().outputDir;
  for (const d of knownAdapters(ctx).filter((d) => d !== opts.exclude)) {
    items.push({ label: `$(package) ${path.basename(d)}`, description: d, detail: out && path.resolve(out) === d ? 'the current run\'s adapter' : undefined, value: d });
  }
  items.push({ label: '$(folder-opened) Choose an adapter folder…', choose: true });
  const pick = items.length > 1 ? await vscode.window.showQuickPick(items, { title }) : items[0];
  if (!pick) return undefined;
  if (!pick.choose) return pick.value;
  const uris = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Use Adapter', title: `${title} (a PEFT folder with adapter_config.json)` });
  return uris?.[0]?.fsPath;
}

/** Local model folders to offer as the base: the open model, the run config's model. */
async function knownBases(ctx: LoraContext): Promise<string[]> {
  const found: string[] = [];
  const open = ctx.modules.openModel;
  if (open?.kind === 'folder') found.push(open.ref);
  const uri = ctx.store.uri;
  const cfg = uri ? await ctx.store.read() : undefined;
  const model = getPath(cfg, 'model');
  if (uri && typeof model === 'string') {
    const m = resolveModel(uri.fsPath, model);
    if (m.kind === 'folder' && fs.existsSync(path.join(m.ref, 'config.json'))) found.push(m.ref);
  }
  return [...new Set(found.map((d) => path.resolve(d)))];
}

async function pickBase(ctx: LoraContext): Promise<string | null | undefined> {
  const items: Array<Choice<string | null>> = [{ label: '$(circle-slash) No base model', description: 'skip the amplification table', value: null }];
  for (const d of await knownBases(ctx)) items.push({ label: `$(circuit-board) ${path.basename(d)}`, description: d, value: d });
  items.push({ label: '$(folder-opened) Choose a model folder…', choose: true });
  const pick = await vscode.window.showQuickPick(items, { title: 'Analyze: the base model (for the amplification of W\'s directions)' });
  if (!pick) return undefined;
  if (!pick.choose) return pick.value;
  const uris = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: 'Base Model', title: 'The adapter\'s base model (a Hugging Face folder)' });
  return uris?.[0]?.fsPath;
}

export async function analyzeAdapter(ctx: LoraContext, arg?: unknown): Promise<ChartPanel<AnalyzeHostMessage> | undefined> {
  const given = analyzeArgs(arg);
  const adapter = given.adapter ?? (await pickAdapter(ctx, 'Analyze: the adapter', { optional: false }));
  if (!adapter) return undefined;
  const check = readAdapterConfig(adapter);
  if (!check.ok) {
    void vscode.window.showErrorMessage(check.reason);
    return undefined;
  }
  const interactive = given.adapter === undefined;
  const compare = given.compare ?? (interactive ? await pickAdapter(ctx, 'Analyze: a second adapter to compare with (optional)', { optional: true, exclude: path.resolve(adapter) }) : null);
  if (compare === undefined) return undefined;
  const base = given.base ?? (interactive ? await pickBase(ctx) : null);
  if (base === undefined) return undefined;
  ctx.lastAdapter = adapter;

  const args = [adapter, ...(base ? ['--base', base] : []), ...(compare ? ['--compare', compare] : []), ...cliArgsBackend()];
  const title = `Analysis: ${path.basename(adapter)}${compare ? ` vs ${path.basename(compare)}` : ''}`;
  let message: AnalyzeHostMessage;
  try {
    const json = await runCliWithProgress(ctx, `Analyzing ${path.basename(adapter)}`, 'analyze', args);
    if (!json) return undefined; // cancelled
    message = { type: 'analysis', data: toAnalysisData(json) };
  } catch (e) {
    const text = cliErrorText(e);
    ctx.log.error(`Analyzing ${adapter}: ${text}`);
    message = { type: 'error', message: text };
    void vscode.window.showErrorMessage(`Analyzing ${path.basename(adapter)}: ${text}`);
  }
  return ChartPanel.show(ANALYZE_KIND, ctx.extension.extensionUri, ctx.log, [message], title);
}

// ---- Compare Runs… ----

async function pickRuns(): Promise<string[] | undefined> {
  const found = await vscode.workspace.findFiles('**/metrics.jsonl', '**/node_modules/**', 500);
  const dirs = [...new Set(found.map((u) => path.dirname(u.fsPath)))].sort();
  const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const items: Array<Choice<string>> = dirs.map((d) => ({ label: path.basename(d), description: root ? path.relative(root, d) : d, value: d }));
  items.push({ label: '$(folder-opened) Choose other run folders…', choose: true });
  const picks = await vscode.window.showQuickPick(items, { title: 'Compare Runs: the run folders (with metrics.jsonl)', canPickMany: true });
  if (!picks) return undefined;
  const chosen = picks.filter((p) => p.value).map((p) => p.value!);
  if (picks.some((p) => p.choose)) {
    const uris = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, canSelectMany: true, openLabel: 'Compare', title: 'Run folders (each holds metrics.jsonl)' });
    if (!uris) return undefined;
    chosen.push(...uris.map((u) => u.fsPath));
  }
  return chosen;
}

export async function compareRuns(ctx: LoraContext, arg?: unknown): Promise<ChartPanel<CompareHostMessage> | undefined> {
  const given = arg && typeof arg === 'object' && Array.isArray((arg as { runs?: unknown }).runs)
    ? ((arg as { runs: unknown[] }).runs.filter((r): r is string => typeof r === 'string'))
    : undefined;
  const picked = given ?? (await pickRuns());
  if (!picked) return undefined;
  const dirs = [...new Set(picked.map((d) => path.resolve(d)))];
  const notRuns = dirs.filter((d) => !isRunFolder(d));
  if (notRuns.length) {
    void vscode.window.showErrorMessage(`Not a run folder (no metrics.jsonl): ${notRuns.join(', ')}`);
    return undefined;
  }
  if (dirs.length < 2) {
    void vscode.window.showWarningMessage('Pick at least two run folders to compare.');
    return undefined;
  }
  const configFiles = (await vscode.workspace.findFiles(RUN_CONFIG_GLOB, '**/node_modules/**', 200)).map((u) => u.fsPath).sort();
  const names = runNames(dirs);
  const runs = dirs.map((d, i) => readRun(d, names[i]));
  const configs = dirs.map((d) => runConfigOf(d, configFiles));
  for (const [i, c] of configs.entries()) ctx.log.info(`compare: ${dirs[i]}: run config ${c ? c.file : 'not found'}`);
  const message: CompareHostMessage = { type: 'compare', runs, diff: diffConfigs(configs.map((c) => c?.config)), configSources: configs.map((c) => c?.file ?? null) };
  return ChartPanel.show(COMPARE_KIND, ctx.extension.extensionUri, ctx.log, [message], `Compare: ${names.join(' · ')}`.slice(0, 80));
}
