/**
 * The one-shot trainer CLI commands (merge, eval, generate, classify, analyze) behind a progress notification
 * with Cancel. The notification ends when the command does: VS Code keeps a progress notification up for at
 * least 800 ms after it appeared (workbench progressService), so a command that finishes sooner waits out that
 * time before its result is shown; otherwise the finished task's "Merging …  Cancel" stays on screen beside
 * "Merged model written to …".
 */
import * as vscode from 'vscode';
import { CliError, runCli } from '../cli';
import type { CliCommand, CliResults } from '../cliResults';
import type { LoraContext } from '../context';
import { showTrainerError } from '../run';

/** VS Code's least time on screen for a progress notification, plus a frame to close it */
export const PROGRESS_MIN_VISIBLE_MS = 900;

export function cliArgsBackend(): string[] {
  const b = vscode.workspace.getConfiguration('loraStudio').get<string>('backend', 'auto');
  return b && b !== 'auto' ? ['--backend', b] : [];
}

/** "file: field: message" for a CLI error, as the CLI names what is wrong. */
export function cliErrorText(e: unknown): string {
  const where = e instanceof CliError ? [e.file, e.field].filter(Boolean).join(': ') : '';
  const message = e instanceof Error ? e.message : String(e);
  return where ? `${where}: ${message}` : message;
}

/**
 * Runs `lora-studio <command> <args> --json` behind a cancellable progress notification that is gone when this
 * resolves. Resolves with the checked result, or undefined when the user cancelled; rejects with the CliError.
 */
export async function runCliWithProgress<C extends CliCommand>(ctx: LoraContext, title: string, command: C, args: string[]): Promise<CliResults[C] | undefined> {
  ctx.log.info(`lora-studio ${command} ${args.join(' ')} --json`);
  const started = Date.now();
  const settle = () => new Promise((r) => setTimeout(r, Math.max(0, started + PROGRESS_MIN_VISIBLE_MS - Date.now())));
  try {
    const json = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, (progress, token) => {
      const abort = new AbortController();
      const sub = token.onCancellationRequested(() => abort.abort());
      return runCli(ctx.distPath('trainer', 'cli.js'), command, args, {
        nativeDir: ctx.nativeDir,
        signal: abort.signal,
        onStderr: (line) => {
          ctx.log.info(`[cli] ${line}`);
          if (line.trim() && !abort.signal.aborted) progress.report({ message: line.trim().slice(0, 120) });
        },
      }).finally(() => sub.dispose());
    });
    ctx.log.info(`result: ${JSON.stringify(json).slice(0, 2000)}`);
    await settle();
    return json;
  } catch (e) {
    await settle();
    if (e instanceof CliError && e.message === 'cancelled') return undefined;
    if (e instanceof CliError && e.stderrTail) ctx.log.error(e.stderrTail);
    throw e;
  }
}

/** runCliWithProgress, with a failure shown as an error notification (file: field: message) and undefined. */
export async function withCli<C extends CliCommand>(ctx: LoraContext, title: string, command: C, args: string[]): Promise<CliResults[C] | undefined> {
  try {
    return await runCliWithProgress(ctx, title, command, args);
  } catch (e) {
    await showTrainerError(title, new Error(cliErrorText(e)), ctx.log);
    return undefined;
  }
}
