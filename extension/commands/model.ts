/**
 * Open Model… (a folder, a hub id, the demo model; the run config's "model" follows) and the Modules view's
 * regex filter.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LoraContext } from '../context';
import { regexFromList } from '../modules/treeModel';
import type { ModelRef } from '../modules/view';
import { looksLikeHubId, modelFieldFor, resolveModel } from '../runFiles';

const PICK_FOLDER = '$(folder-opened) Choose a model folder…';
const PICK_HUB = '$(cloud-download) Enter a Hugging Face hub id…';

export async function openModel(ctx: LoraContext, arg: unknown): Promise<void> {
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

// ---- the Modules view's regex filter ----

export async function filterRegex(ctx: LoraContext): Promise<void> {
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
