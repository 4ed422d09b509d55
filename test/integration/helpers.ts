/**
 * Shared pieces of the integration suite, which runs inside a real extension host (code-server's here, a desktop
 * VS Code's through @vscode/test-cli): the extension's context (what activate() returns under a test run), waits
 * on its events, the fixture's paths, and process and file checks. Nothing here is mocked: the tests drive the
 * commands, the real trainer child process and the real file system.
 */
import * as vscode from 'vscode';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LoraContext } from '../../extension/context';
import type { ModuleNode } from '../../extension/modules/treeModel';
import type { TrainEvent } from '../../trainer/protocol';
import { alive } from '../util/process';
import { hashDir } from '../util/files';
export { alive, hashDir };

type RunStatus = ReturnType<LoraContext['runs']['status']>;

export const EXTENSION_ID = 'lora-studio.lora-studio';

/** The fixture workspace (test/vscode/fixture.ts wrote it before the editor started). */
export function fixture(): { workspace: string; modelDir: string; shortConfig: string; longConfig: string } {
  const folder = vscode.workspace.workspaceFolders?.[0];
  assert.ok(folder, 'the integration suite needs the fixture workspace open (test/vscode/fixture.ts)');
  const workspace = folder.uri.fsPath;
  const f = { workspace, modelDir: path.join(workspace, 'model'), shortConfig: path.join(workspace, 'lora-run.json'), longConfig: path.join(workspace, 'long.lora-run.json') };
  assert.ok(fs.existsSync(path.join(f.modelDir, 'config.json')), `no tiny model in ${f.modelDir}: the workspace is not the fixture`);
  return f;
}

export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The extension, activated by its own activation event (the workspace holds lora-run.json), and its context. */
export async function loraContext(): Promise<{ extension: vscode.Extension<LoraContext | undefined>; ctx: LoraContext }> {
  const extension = vscode.extensions.getExtension<LoraContext | undefined>(EXTENSION_ID);
  assert.ok(extension, `${EXTENSION_ID} is not installed in this editor`);
  await waitFor('the extension to activate (workspaceContains:**/lora-run.json)', () => extension.isActive, 60_000);
  const ctx = extension.exports;
  assert.ok(ctx, 'activate() returned no context: the extension is not running as an extension under test (ExtensionMode.Test)');
  return { extension, ctx };
}

/** Resolves with the first trainer event (of the live run) that `match` accepts. */
export function nextEvent<E extends TrainEvent>(ctx: LoraContext, match: (e: TrainEvent) => e is E, what: string, timeoutMs = 60_000): Promise<E> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.dispose();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const sub = ctx.runs.onDidReceiveEvent((e) => {
      if (!match(e)) return;
      clearTimeout(timer);
      sub.dispose();
      resolve(e);
    });
  });
}

/** Records every trainer event of the live run until `dispose()`. */
export function recordEvents(ctx: LoraContext): { events: TrainEvent[]; dispose(): void } {
  const events: TrainEvent[] = [];
  const sub = ctx.runs.onDidReceiveEvent((e) => events.push(e));
  return { events, dispose: () => sub.dispose() };
}

export function waitForState(ctx: LoraContext, states: RunStatus['state'][], timeoutMs = 120_000): Promise<RunStatus> {
  return waitFor(`the run to be ${states.join(' or ')} (it is ${ctx.runs.status().state})`, () => {
    const s = ctx.runs.status();
    return states.includes(s.state) ? s : undefined;
  }, timeoutMs);
}

/** Makes `file` the active run config, as a user does by opening it in an editor. */
export async function activateRunConfig(ctx: LoraContext, file: string): Promise<void> {
  await vscode.window.showTextDocument(vscode.Uri.file(file), { preview: false });
  await waitFor(`${path.basename(file)} to become the active run config`, () => ctx.store.uri?.fsPath === file);
}

/**
 * Opens the notification center for a moment, so that the session runner, which reads the workbench, sees
 * every notification shown so far (under an extension test run the workbench shows no toasts). Each suite
 * calls it in its teardown, and clearNotifications() before it clears.
 */
export async function revealNotifications(): Promise<void> {
  await vscode.commands.executeCommand('notifications.showList');
  await new Promise((r) => setTimeout(r, 700));
}

/**
 * Dismisses every notification (after revealing them). Commands that end with a notification offering buttons
 * (Merge, the Restricted Mode warning) wait for an answer; closing the notification answers "none".
 */
export async function clearNotifications(): Promise<void> {
  await revealNotifications();
  await vscode.commands.executeCommand('notifications.clearAll');
}

/**
 * Asks the session runner (test/vscode) to check, after the session, that a notification matching `pattern` was
 * shown in the workbench: the extension host cannot read notifications, the browser that shows them can.
 * Without a runner that watches (a desktop VS Code), this only logs.
 */
export function expectNotification(pattern: RegExp, why: string): void {
  const dir = process.env.LORA_TEST_RESULTS;
  console.log(`expect a notification /${pattern.source}/ (${why})${dir ? '' : ': not checked, no session runner watches this editor'}`);
  if (!dir) return;
  fs.mkdirSync(dir, { recursive: true });
  fs.appendFileSync(path.join(dir, 'expected-notifications.jsonl'), JSON.stringify({ pattern: pattern.source, flags: pattern.flags, why }) + '\n');
}

/**
 * Wraps the extension's log channel to keep its error lines (the trainer's stderr and every error the extension
 * reports). Returns undefined when the channel object cannot be wrapped.
 */
export function captureErrorLog(ctx: LoraContext): { lines: string[]; dispose(): void } | undefined {
  const log = ctx.log as unknown as { error: (message: string | Error, ...args: unknown[]) => void };
  const original = log.error;
  const lines: string[] = [];
  try {
    log.error = function (this: unknown, message: string | Error, ...args: unknown[]) {
      lines.push(String(message instanceof Error ? message.message : message));
      return original.call(this, message, ...args);
    };
  } catch {
    return undefined;
  }
  if (log.error === original) return undefined;
  return { lines, dispose: () => void (log.error = original) };
}

// ---- the Modules view ----

/**
 * The Modules view's TreeDataProvider, plus the two things a person sees or does that the API does not expose
 * to another extension: the TreeView's message (the PEFT line) and the checkbox handler VS Code calls when a
 * box is clicked (onDidChangeCheckboxState). They are private members of ModulesView; if they are renamed,
 * this says so rather than failing obscurely.
 */
export function modulesView(ctx: LoraContext): {
  roots(): ModuleNode[];
  children(n: ModuleNode): ModuleNode[];
  item(n: ModuleNode): vscode.TreeItem;
  message(): string;
  description(): string;
  click(nodes: ModuleNode[], checked: boolean): void;
} {
  const m = ctx.modules as unknown as {
    view?: vscode.TreeView<ModuleNode>;
    onCheckboxes?: (e: vscode.TreeCheckboxChangeEvent<ModuleNode>) => void;
  };
  assert.ok(m.view && typeof m.view.message !== 'symbol', 'ModulesView has no `view` (its TreeView) any more: update test/integration/helpers.ts');
  assert.equal(typeof m.onCheckboxes, 'function', 'ModulesView has no `onCheckboxes` any more: update test/integration/helpers.ts');
  return {
    roots: () => ctx.modules.getChildren(),
    children: (n) => ctx.modules.getChildren(n),
    item: (n) => ctx.modules.getTreeItem(n),
    message: () => m.view!.message ?? '',
    description: () => (typeof m.view!.description === 'string' ? m.view!.description : ''),
    click: (nodes, checked) => m.onCheckboxes!.call(ctx.modules, {
      items: nodes.map((n): [ModuleNode, vscode.TreeItemCheckboxState] => [n, checked ? vscode.TreeItemCheckboxState.Checked : vscode.TreeItemCheckboxState.Unchecked]),
    }),
  };
}

/** Every node under the view's roots, depth first. */
export function allNodes(view: ReturnType<typeof modulesView>): ModuleNode[] {
  const out: ModuleNode[] = [];
  const walk = (nodes: ModuleNode[]) => {
    for (const n of nodes) {
      out.push(n);
      walk(view.children(n));
    }
  };
  walk(view.roots());
  return out;
}

// ---- files and processes ----

export function readJson(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
}

/** The JSON header of a .safetensors file: tensor name → dtype/shape (and __metadata__). */
export function safetensorsHeader(file: string): Record<string, { dtype: string; shape: number[] } & Record<string, unknown>> {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  return JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
}

/** Processes (pid and command line) whose command line runs a script of this extension's dist/trainer. */
export function trainerProcesses(extensionPath: string): Array<{ pid: number; cmd: string }> {
  const marker = path.join(extensionPath, 'dist', 'trainer') + path.sep;
  if (!fs.existsSync('/proc/self/cmdline')) {
    // no procfs (macOS): ps lists the same
    return execFileSync('ps', ['-axo', 'pid=,args='], { encoding: 'utf8' }).split('\n')
      .map((l) => /^\s*(\d+)\s+(.*)$/.exec(l)).filter((m): m is RegExpExecArray => !!m && m[2].includes(marker))
      .map((m) => ({ pid: Number(m[1]), cmd: m[2] }));
  }
  const out: Array<{ pid: number; cmd: string }> = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let cmd: string;
    try {
      cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ').trim();
    } catch {
      continue; // gone meanwhile
    }
    if (cmd.includes(marker)) out.push({ pid: Number(name), cmd });
  }
  return out;
}

