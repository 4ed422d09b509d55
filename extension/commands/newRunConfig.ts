/**
 * New Run Config…: lora-run.json (or <name>.lora-run.json) from the open model, its task and the checked
 * modules, with "$schema" pointing at a copy of the trainer's JSON Schema.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LoraContext } from '../context';
import { modelFieldFor, runConfigTemplate } from '../runFiles';

export async function newRunConfig(ctx: LoraContext): Promise<void> {
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
