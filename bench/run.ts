/**
 * `npm run bench`: our trainer vs a PyTorch reference on identical shapes, side by side in one run (GPT-2 small
 * with random weights, LoRA r=8 on c_attn and attn.c_proj, batch 4 × 128, causal-lm and seq-cls; the two
 * alternate, `REPEATS` times, and medians are reported), plus the CLI's merge time and peak RSS beside `cp` of the
 * same weights (bench/merge_bench.ts), and the latency from a trainer step to its metrics event reaching a
 * client of the real IPC child (dist/trainer/main.js, forked as the extension forks it). Prints one table and
 * writes the same numbers to bench/results.json. Installs python3-torch with apt when it is missing.
 * Our side runs as the trainer ships: bench/ours.ts and the gradient worker are bundled like the trainer
 * (dist/bench/, beside copies of the wasm binaries) and run by plain node, so neither its time nor its RSS
 * includes tsx compiling TypeScript in every thread.
 *
 * `npm run bench -- --backend webgpu` (or any backend name) measures that backend instead: causal-lm (BENCH_TASKS
 * to change) at 4×128, 16×512 and 32×512 (BENCH_SHAPES, e.g. `4x128`), BENCH_STEPS timed steps after one warm-up,
 * tokens/s and, on webgpu, the adapter and GPU memory as tfjs counts it (see bench/ours.ts); PyTorch (CPU) runs at
 * the same shapes beside it unless BENCH_TORCH=0. The merge and IPC timings are left out (they do not depend on
 * the backend). Writes bench/results-<backend>.json.
 */
import { execFileSync, fork, spawnSync } from 'node:child_process';
import * as esbuild from 'esbuild';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeRandomGPT2 } from '../trainer/models/gpt2/random_init';
import { METRICS_FILE } from '../trainer/train/metrics';
import type { ChildMessage, ParentMessage } from '../trainer/protocol';
import { writeJsonAtomic } from '../trainer/io/atomic';
import { R } from './setup';
import { bundleLlama, llamaMemory, llamaSpeed } from './llama_bench';
import { mergeBench, mergeRows } from './merge_bench';

const REPO = path.resolve(__dirname, '..');
const PYTHON = '/usr/bin/python3';
const B = 4;
const T = 128;
const STEPS = Number(process.env.BENCH_STEPS ?? 3);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 2);

interface RunResult {
  tokens_per_s: number;
  peak_rss_mb: number;
  step_s: number[];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function ensureTorch(): void {
  if (spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) return;
  console.error('bench: installing python3-torch and libopenblas0-pthread with apt-get …');
  execFileSync('apt-get', ['install', '-y', '-q', 'python3-torch', 'libopenblas0-pthread'], { stdio: 'inherit' });
}

function runJson(cmd: string, args: string[]): RunResult {
  const r = spawnSync(cmd, args, { cwd: REPO, encoding: 'utf8', maxBuffer: 1 << 24 });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  if (r.status !== 0 || !line.startsWith('{')) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(line) as RunResult;
}

/** Builds the trainer (dist/trainer) when it is missing. */
function ensureBuilt(): void {
  if (!fs.existsSync(path.join(REPO, 'dist', 'trainer', 'main.js'))) execFileSync('npm', ['run', 'build'], { cwd: REPO, stdio: 'ignore' });
}

/** bench/ours.ts bundled as the build bundles the trainer, with the wasm binaries beside it; returns its path. */
async function bundleOurs(): Promise<string> {
  const out = path.join(REPO, 'dist', 'bench');
  await esbuild.build({
    absWorkingDir: REPO, entryPoints: { ours: 'bench/ours.ts', parallel_worker: 'trainer/parallel/worker.ts' }, outdir: out,
    bundle: true, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'warning',
    external: ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'wabt', 'webgpu'],
  });
  const trainer = path.join(REPO, 'dist', 'trainer');
  for (const f of fs.readdirSync(trainer).filter((n) => n.endsWith('.wasm'))) fs.copyFileSync(path.join(trainer, f), path.join(out, f));
  return path.join(out, 'ours.js');
}

function throughput(task: string, oursJs: string, b = B, t_ = T, backend?: string, torchToo = true) {
  const ours: RunResult[] = [];
  const torch: RunResult[] = [];
  for (let i = 0; i < REPEATS; i++) {
    ours.push(runJson(process.execPath, [oursJs, task, String(b), String(t_), String(STEPS), ...(backend ? [backend] : [])]));
    if (torchToo) torch.push(runJson(PYTHON, ['bench/torch_ref.py', task, String(b), String(t_), String(STEPS)]));
  }
  const o = median(ours.map((r) => r.tokens_per_s));
  const t = torchToo ? median(torch.map((r) => r.tokens_per_s)) : NaN;
  return {
    ours_tokens_per_s: o, torch_tokens_per_s: t, ratio: o / t,
    ours_peak_rss_mb: median(ours.map((r) => r.peak_rss_mb)), torch_peak_rss_mb: median(torch.map((r) => r.peak_rss_mb)),
    ours_runs: ours.map((r) => r.tokens_per_s), torch_runs: torch.map((r) => r.tokens_per_s),
    ours_last: ours.at(-1)!,
  };
}

/** `--backend NAME`: our side on that backend at BENCH_SHAPES (default 4x128,16x512,32x512), PyTorch beside it. */
async function backendBench(backend: string): Promise<void> {
  const shapes = (process.env.BENCH_SHAPES ?? '4x128,16x512,32x512').split(',').map((s) => {
    const m = /^(\d+)x(\d+)$/.exec(s.trim());
    if (!m) throw new Error(`BENCH_SHAPES: "${s}" is not BATCHxSEQ (e.g. 4x128)`);
    return [Number(m[1]), Number(m[2])] as const;
  });
  const tasks = (process.env.BENCH_TASKS ?? 'causal-lm').split(',');
  const torchToo = process.env.BENCH_TORCH !== '0';
  if (torchToo) ensureTorch();
  ensureBuilt();
  const oursJs = await bundleOurs();
  const rows = [['', `ours (${backend}) tok/s`, 'PyTorch (CPU) tok/s', 'GPU peak MB (tfjs pool)', 'tensors MB', 'peak RSS MB']];
  const results: Record<string, unknown> = {};
  let adapter = '';
  for (const task of tasks) {
    for (const [b, t] of shapes) {
      const r = throughput(task, oursJs, b, t, backend, torchToo);
      const last = r.ours_last as RunResult & { gpu_peak_mb?: number; tensors_mb?: number; adapter?: { vendor: string; architecture: string; device: string; description: string; software: boolean } };
      if (last.adapter) adapter = `${[last.adapter.vendor, last.adapter.architecture, last.adapter.device].filter(Boolean).join(' ')} (${last.adapter.description})${last.adapter.software ? ', SOFTWARE' : ''}`;
      results[`${task} ${b}x${t}`] = r;
      const f = (x: number | undefined, d = 1) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));
      rows.push([`${task} ${b}×${t}`, f(r.ours_tokens_per_s), f(r.torch_tokens_per_s), f(last.gpu_peak_mb, 0), f(last.tensors_mb, 0), f(r.ours_peak_rss_mb, 0)]);
    }
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i])).join(' | '));
  if (adapter) console.log(`adapter: ${adapter}`);
  writeJsonAtomic(path.join(REPO, 'bench', `results-${backend}.json`), { machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model }, backend, adapter, steps: STEPS, repeats: REPEATS, results });
}

/** Step → client latency through the real IPC child: arrival time minus the mtime of the metrics line written just before the send. */
async function ipcLatency() {
  const main = path.join(REPO, 'dist', 'trainer', 'main.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-bench-ipc-'));
  try {
    writeRandomGPT2(path.join(dir, 'model'), { seed: 7, std: 0.1, config: { n_embd: 32, n_head: 2, n_layer: 2, n_positions: 64 } });
    const rows = Array.from({ length: 64 }, (_, i) => JSON.stringify({ text: `example number ${i} is ${i % 2 ? 'good' : 'bad'}`, label: i % 2 })).join('\n');
    fs.writeFileSync(path.join(dir, 'train.jsonl'), rows + '\n');
    const configFile = path.join(dir, 'lora-run.json');
    fs.writeFileSync(configFile, JSON.stringify({
      model: './model', task: 'seq-cls', num_labels: 2, data: { train: 'train.jsonl', max_length: 32 },
      lora: { r: 2, lora_alpha: 4, target_modules: ['c_attn', 'c_proj'] },
      training: { output_dir: 'out', max_steps: 30, per_device_train_batch_size: 4, logging_steps: 1, eval_strategy: 'no', save_strategy: 'no', seed: 3 },
    }));
    const metrics = path.join(dir, 'out', METRICS_FILE);
    const latencies: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const child = fork(main, [], { silent: true, execArgv: [] });
      child.on('message', (m: ChildMessage) => {
        const arrived = Date.now();
        const msg = m as unknown as { kind: string; event?: { event: string } };
        if (msg.kind === 'notification' && msg.event?.event === 'step') latencies.push(arrived - fs.statSync(metrics).mtimeMs);
        if (msg.kind === 'response' || msg.kind === 'error') child.kill();
      });
      child.on('exit', () => resolve());
      child.on('error', reject);
      child.send({ kind: 'request', id: 1, method: 'train', params: { config_file: configFile, backend: 'wasm' } } satisfies ParentMessage);
    });
    return { median_ms: latencies.length ? median(latencies) : NaN, max_ms: Math.max(...latencies), steps: latencies.length };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--backend');
  if (at >= 0) return backendBench(process.argv[at + 1] ?? '');
  ensureTorch();
  ensureBuilt();
  const oursJs = await bundleOurs();
  const started = Date.now();
  const tasks: Record<string, ReturnType<typeof throughput>> = {};
  for (const task of ['causal-lm', 'seq-cls']) tasks[task] = throughput(task, oursJs);
  // issue 13: SmolLM2-135M-shaped causal-lm against a plain-torch Llama, and a Qwen2.5-0.5B-shaped run's peak RSS
  await bundleLlama();
  const llama = llamaSpeed();
  const llamaMem = llamaMemory();
  const merge = await mergeBench();
  const ipc = await ipcLatency();
  const results = { machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model }, shape: { batch: B, seq_len: T, r: R, steps: STEPS, repeats: REPEATS }, tasks, llama, llama_memory: llamaMem, merge, ipc, bench_s: (Date.now() - started) / 1000 };
  const f = (x: number, d = 1) => x.toFixed(d);
  const rows = [
    ['', 'ours tok/s', 'PyTorch tok/s', 'ratio', 'ours peak RSS MB', 'PyTorch peak RSS MB'],
    ...Object.entries(tasks).map(([t, r]) => [`${t} ${B}×${T}`, f(r.ours_tokens_per_s), f(r.torch_tokens_per_s), `${f(r.ratio, 2)}×`, f(r.ours_peak_rss_mb, 0), f(r.torch_peak_rss_mb, 0)]),
    ['llama SmolLM2-135M 4×128', f(llama.ours_tokens_per_s), f(llama.torch_tokens_per_s), `${f(llama.ratio, 2)}×`, f(llama.ours_peak_rss_mb, 0), f(llama.torch_peak_rss_mb, 0)],
    ['llama-memory Qwen2.5-0.5B 1×256', `${llamaMem.steps} steps`, '', '', f(llamaMem.peak_rss_mb, 0), ''],
    ...mergeRows(merge),
    ['step → client (IPC)', `${f(ipc.median_ms, 1)} ms median`, `max ${f(ipc.max_ms, 0)} ms`, `${ipc.steps} steps`, '', ''],
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i])).join(' | '));
  writeJsonAtomic(path.join(REPO, 'bench', 'results.json'), results);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
