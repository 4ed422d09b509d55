/**
 * Save Adapter As… (the run's final adapter or a checkpoint, copied to a folder) and Load Adapter… (opens its
 * base model if none is open, and checks its target modules in the Modules view).
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LoraContext } from '../context';
import type { ModelRef } from '../modules/view';
import { adapterDirOf, copyAdapter, readAdapterConfig } from '../runFiles';
import { pickAdapterFolder } from './pickers';

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

export async function saveAdapterAs(ctx: LoraContext): Promise<void> {
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

export async function loadAdapter(ctx: LoraContext, arg: unknown): Promise<void> {
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
