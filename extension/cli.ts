/**
 * Runs the trainer's command line (dist/trainer/cli.js) as a child process for the one-shot commands
 * (merge, eval, generate, classify, analyze, inspect): `node cli.js <command> … --json` prints one JSON object on
 * stdout, or an `{"event":"error"}` object and a non-zero exit. The result is checked against its command's
 * shape (cliResults.ts) before anyone reads it. No vscode import.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { checkCliResult, type CliCommand, type CliResults } from './cliResults';
import { RingBuffer } from './trainerClient';

export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderrTail: string,
    readonly file?: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export interface CliOptions {
  env?: NodeJS.ProcessEnv;
  nativeDir?: string;
  cwd?: string;
  signal?: AbortSignal;
  /** each stderr line (progress and warnings), for the log */
  onStderr?: (line: string) => void;
}

/** The last line of stdout that parses as a JSON object. */
export function lastJsonObject(stdout: string): Record<string, unknown> | undefined {
  const lines = stdout.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) {
    if (!lines[i].startsWith('{')) continue;
    try {
      const v = JSON.parse(lines[i]);
      if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch {
      // not JSON: a stray log line
    }
  }
  return undefined;
}

/**
 * Runs `node <cliScript> <command> <args…> --json` and resolves with its result, checked; a result of the wrong
 * shape rejects with a CliError that says which field is wrong.
 */
export function runCli<C extends CliCommand>(cliScript: string, command: C, args: string[], opts: CliOptions = {}): Promise<CliResults[C]> {
  if (!fs.existsSync(cliScript)) return Promise.reject(new CliError(`the trainer CLI is missing: ${cliScript} (run \`npm run build\`)`, null, ''));
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env, ELECTRON_RUN_AS_NODE: '1' };
  if (opts.nativeDir && fs.existsSync(opts.nativeDir)) env.LORA_STUDIO_NATIVE_DIR = opts.nativeDir;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliScript, command, ...args, '--json'], { env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], signal: opts.signal });
    let stdout = '';
    const tail = new RingBuffer(40, 6000);
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => {
      for (const l of tail.push(c.toString('utf8'))) opts.onStderr?.(l);
    });
    child.on('error', (e) => {
      if ((e as Error).name === 'AbortError') reject(new CliError('cancelled', null, tail.text()));
      else reject(new CliError(`could not run the trainer CLI: ${e.message}`, null, tail.text()));
    });
    child.on('close', (code, signal) => {
      const json = lastJsonObject(stdout);
      if (code === 0 && json && json.event !== 'error') {
        try {
          resolve(checkCliResult(command, json));
        } catch (e) {
          reject(new CliError((e as Error).message, code, tail.text()));
        }
        return;
      }
      if (json?.event === 'error' && typeof json.message === 'string') {
        reject(new CliError(json.message, code, tail.text(), typeof json.file === 'string' ? json.file : undefined, typeof json.field === 'string' ? json.field : undefined));
        return;
      }
      const last = tail.text().trim().split('\n').slice(-3).join(' | ');
      reject(new CliError(`the trainer CLI ${signal ? `was killed by ${signal}` : `exited with code ${code}`}${last ? `: ${last}` : ''}`, code, tail.text()));
    });
  });
}
