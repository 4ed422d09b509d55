/**
 * The pickers that Save/Load/Merge/Evaluate/Try share: an adapter folder (the last one used, the run's, or one
 * chosen, checked to be a PEFT folder) and a base model (the open one, or a folder).
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LoraContext } from '../context';
import { adapterDirOf, readAdapterConfig } from '../runFiles';

export async function pickAdapterFolder(ctx: LoraContext, title: string): Promise<string | undefined> {
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

export async function pickBaseModel(ctx: LoraContext, title: string): Promise<string | undefined> {
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

