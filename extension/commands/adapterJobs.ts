/**
 * Merge, Evaluate and Try an adapter: each asks for what it needs (or takes it from the caller, for Merge) and
 * runs the trainer's one-shot CLI behind a progress notification (./cli.ts).
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LoraContext } from '../context';
import { checkMergeOut, getPath, readAdapterConfig } from '../runFiles';
import { cliArgsBackend, withCli } from './cli';
import { pickAdapterFolder, pickBaseModel } from './pickers';

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

export async function mergeAdapter(ctx: LoraContext, arg?: unknown): Promise<void> {
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
  const done = await withCli(ctx, `Merging ${path.basename(adapter)} into ${path.basename(base)}`, 'merge', [base, '--adapter', adapter, '--out', out, ...cliArgsBackend()]);
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

/** The metrics of an eval result, in the order the trainer prints them for either task. */
const EVAL_METRICS = ['loss', 'perplexity', 'num_tokens', 'accuracy', 'f1', 'num_examples'] as const;

export async function evaluateAdapter(ctx: LoraContext): Promise<void> {
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
  const result = await withCli(ctx, `Evaluating ${path.basename(adapter)}`, 'eval', [base, '--adapter', adapter, '--data', data, ...task, ...cliArgsBackend()]);
  if (!result) return;
  const summary = EVAL_METRICS.flatMap((k) => {
    const v = result[k];
    return typeof v === 'number' ? [`${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`] : [];
  }).join(' · ');
  const show = await vscode.window.showInformationMessage(`Evaluation of ${path.basename(adapter)}: ${summary || JSON.stringify(result)}`, 'Show Details');
  if (show) await showDocument(`# Evaluation\n\n- model: ${base}\n- adapter: ${adapter}\n- data: ${data}\n\n\`\`\`json\n${JSON.stringify(result, null, 2)}\n\`\`\`\n`);
}

export async function tryAdapter(ctx: LoraContext): Promise<void> {
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
  const title = `Running ${path.basename(adapter)}`;
  let body: string;
  if (classify) {
    const result = await withCli(ctx, title, 'classify', [base, '--adapter', adapter, '--text', prompt, ...cliArgsBackend()]);
    if (!result) return;
    const probs = Object.entries(result.probabilities).map(([k, p]) => `| ${k} | ${p.toFixed(4)} |`).join('\n');
    body = `**Text**\n\n> ${prompt}\n\n**Label:** ${result.label}\n\n| label | probability |\n|---|---|\n${probs}\n`;
  } else {
    const result = await withCli(ctx, title, 'generate', [base, '--adapter', adapter, '--prompt', prompt, '--max-new-tokens', '40', ...cliArgsBackend()]);
    if (!result) return;
    body = `**Prompt**\n\n> ${prompt}\n\n**Output**\n\n${prompt}${result.completion}\n`;
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
