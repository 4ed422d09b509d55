/**
 * Activation only: the context owns everything (see context.ts), the command table registers in one loop
 * (see commands.ts). deactivate() waits for the trainer child to stop, so no run outlives the editor.
 * Under an extension test run (ExtensionMode.Test) activate() returns the context, so the integration tests
 * (test/integration) can watch the run, the trainer child and the Modules view; otherwise it returns nothing.
 */
import * as vscode from 'vscode';
import { registerCommands } from './commands';
import { LoraContext } from './context';

let ctx: LoraContext | undefined;

export function activate(extension: vscode.ExtensionContext): LoraContext | undefined {
  ctx = new LoraContext(extension);
  extension.subscriptions.push(ctx, ...registerCommands(ctx));
  return extension.extensionMode === vscode.ExtensionMode.Test ? ctx : undefined;
}

export async function deactivate(): Promise<void> {
  const c = ctx;
  ctx = undefined;
  await c?.shutdown();
}
