/**
 * Helpers for tests that run the real trainer: scratch folders, tiny model folders with data and a run
 * config, and the `lora-studio` CLI as a real child process (the esbuild output: run `npm run build` first;
 * `npm test` does).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeRandomGPT2, type RandomModelOptions } from '../../trainer/models/gpt2/random_init';
import type { TrainEvent } from '../../trainer/protocol';
import * as net from 'node:net';
import { Rng } from '../../trainer/util/rng';
import type { HostTensor } from '../../trainer/io/safetensors';
import { configNumLabels, readConfig } from '../../trainer/models/gpt2/config';
import { namedModules } from '../../trainer/models/gpt2/modules';
import { LORA_DEFAULTS, type LoraConfig } from '../../trainer/lora/config';
import type { Task } from '../../trainer/task';
import type { AdapterWeights } from '../../trainer/lora/types';
import { adapterConfigJson, saveAdapter } from '../../trainer/lora/adapter_io';
import { alive } from '../util/process';
import { hashDir } from '../util/files';
export { alive, hashDir };

export const REPO = path.resolve(__dirname, '..', '..');
export const BIN = path.join(REPO, 'bin', 'lora-studio.js');
export const DIST_MAIN = path.join(REPO, 'dist', 'trainer', 'main.js');

export function scratch(prefix = 'lora-trainer-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function writeJsonl(file: string, rows: unknown[]): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

/** A learnable seq-cls set: label 1 iff the text contains "yes". */
export function yesNoRows(n: number, offset = 0): Array<{ text: string; label: number }> {
  const words = ['red', 'blue', 'tall', 'small', 'cat', 'dog', 'sun', 'rain'];
  return Array.from({ length: n }, (_, i) => {
    const k = i + offset;
    const label = k % 2;
    const filler = [words[k % 8], words[(k * 3 + 1) % 8], words[(k * 5 + 2) % 8]];
    filler.splice(k % 3, 0, label ? 'yes' : 'no');
    return { text: filler.join(' '), label };
  });
}

export interface TinyRun {
  dir: string;
  modelDir: string;
  configFile: string;
  outputDir: string;
}

/** A tiny model folder, data, and a run config (PEFT/TrainingArguments names) in a scratch folder. */
export function tinyRun(opts: {
  task?: 'causal-lm' | 'seq-cls';
  model?: RandomModelOptions;
  training?: Record<string, unknown>;
  lora?: Record<string, unknown>;
  data?: Record<string, unknown>;
  rows?: unknown[];
  evalRows?: unknown[];
} = {}): TinyRun {
  const dir = scratch();
  const task = opts.task ?? 'seq-cls';
  const modelDir = path.join(dir, 'model');
  writeRandomGPT2(modelDir, { seed: 7, std: 0.1, ...opts.model, config: { n_embd: 16, n_head: 2, n_layer: 2, n_positions: 32, ...opts.model?.config } });
  const rows = opts.rows ?? (task === 'seq-cls' ? yesNoRows(32) : yesNoRows(32).map((r) => ({ text: r.text })));
  writeJsonl(path.join(dir, 'train.jsonl'), rows);
  const evalRows = opts.evalRows ?? (task === 'seq-cls' ? yesNoRows(8, 100) : yesNoRows(8, 100).map((r) => ({ text: r.text })));
  writeJsonl(path.join(dir, 'eval.jsonl'), evalRows);
  const outputDir = path.join(dir, 'out');
  const configFile = path.join(dir, 'lora-run.json');
  fs.writeFileSync(configFile, JSON.stringify({
    model: './model', task, ...(task === 'seq-cls' ? { num_labels: 2 } : {}),
    data: { train: 'train.jsonl', eval: 'eval.jsonl', max_length: 16, ...opts.data },
    lora: { r: 2, lora_alpha: 4, target_modules: ['c_attn', 'c_proj'], ...opts.lora },
    training: {
      output_dir: 'out', num_train_epochs: 2, per_device_train_batch_size: 8, per_device_eval_batch_size: 8, learning_rate: 1e-2,
      logging_steps: 1, eval_strategy: 'epoch', save_strategy: 'epoch', seed: 3, ...opts.training,
    },
  }, null, 2));
  return { dir, modelDir, configFile, outputDir };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON Lines (lines that are not JSON are skipped) */
  events: Array<TrainEvent & Record<string, unknown>>;
}

function parseLines(stdout: string): CliResult['events'] {
  return stdout.split('\n').flatMap((l) => {
    try {
      return l.trim() ? [JSON.parse(l)] : [];
    } catch {
      return [];
    }
  });
}

/** Runs `lora-studio ARGS` to completion. `onLine` sees each stdout line as it arrives (it may kill the child). */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; onLine?: (line: string, child: ChildProcess) => void; onStderr?: (text: string, child: ChildProcess) => void } = {}): Promise<CliResult> {
  if (!fs.existsSync(path.join(REPO, 'dist', 'trainer', 'cli.js'))) throw new Error('dist/trainer/cli.js is missing: run `npm run build` first (npm test does)');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? REPO, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const l of lines) opts.onLine?.(l, child);
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
      opts.onStderr?.(d.toString(), child);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, events: parseLines(stdout) }));
  });
}

// ---- added for the CLI / IPC tests ----

/** Runs `lora-studio ARGS --json` and returns the one JSON object it printed last on stdout (throws if none). */
export async function runCliJson(args: string[], opts: Parameters<typeof runCli>[1] = {}): Promise<{ res: CliResult; json: Record<string, unknown> }> {
  const res = await runCli([...args, '--json'], opts);
  const last = res.events.at(-1) as Record<string, unknown> | undefined;
  if (!last) throw new Error(`no JSON on stdout (exit ${res.code}); stderr: ${res.stderr}`);
  return { res, json: last };
}

/**
 * A LoRA adapter with random (non-zero) A and B written in PEFT's format with saveAdapter: LoRA on every
 * Conv1D module whose name ends with one of `targets` (module table from the model's config.json), and for
 * seq-cls a random `score.weight` (modules_to_save). `modules` overrides the table with explicit
 * name → [in, out] (for adapters of another architecture).
 */
export function writeRandomAdapter(adapterDir: string, modelDir: string, opts: {
  task?: Task;
  targets?: string[];
  r?: number;
  lora_alpha?: number;
  seed?: number;
  std?: number;
  modules?: Record<string, [number, number]>;
} = {}): AdapterWeights {
  const task = opts.task ?? 'causal-lm';
  const r = opts.r ?? 2;
  const targets = opts.targets ?? ['c_attn', 'c_proj', 'c_fc'];
  const rng = new Rng(opts.seed ?? 11);
  const std = opts.std ?? 0.3;
  const rand = (shape: number[]): HostTensor => {
    const data = new Float32Array(shape[0] * shape[1]);
    for (let i = 0; i < data.length; i++) data[i] = std * rng.normal();
    return { shape, data, dtype: 'F32' };
  };
  const config = readConfig(modelDir);
  const numLabels = task === 'seq-cls' ? configNumLabels(config) : 2;
  const sizes: Array<[string, number, number]> = opts.modules
    ? Object.entries(opts.modules).map(([n, [i, o]]) => [n, i, o])
    : namedModules(config, task, numLabels)
      .filter((m) => m.type === 'Conv1D' && targets.some((t) => m.name === t || m.name.endsWith(`.${t}`)))
      .map((m) => [m.name, m.in_features!, m.out_features!]);
  const lora = new Map<string, { A: HostTensor; B: HostTensor }>();
  for (const [name, inF, outF] of sizes) lora.set(name, { A: rand([r, inF]), B: rand([outF, r]) });
  const extra = new Map<string, HostTensor>();
  if (task === 'seq-cls') extra.set('score.weight', rand([numLabels, config.n_embd]));
  const lcfg: LoraConfig = { ...LORA_DEFAULTS, r, lora_alpha: opts.lora_alpha ?? 2 * r, target_modules: targets, modules_to_save: task === 'seq-cls' ? ['score'] : null };
  const adapter: AdapterWeights = { config: adapterConfigJson({ ...lcfg, fan_in_fan_out: true }, task, modelDir), lora, extra };
  saveAdapter(adapterDir, adapter);
  return adapter;
}

/** A closed TCP port on 127.0.0.1 (bound, then released): connections to it are refused. */
export async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}


/** Kills `pid` (SIGKILL) if it is still running; never throws. */
export function killIfAlive(pid: number | undefined): void {
  if (pid === undefined || !alive(pid)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
