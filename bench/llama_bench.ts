/**
 * `npm run bench`'s llama cases (issue 13's Bench and Memory checks):
 * - `llama`: SmolLM2-135M's shapes, random weights, LoRA r=8 on q_proj and v_proj, causal-lm at the GPT-2 bench's
 *   4 × 128: ours on wasm (bench/ours_llama.ts, bundled) against a plain-torch Llama (bench/torch_llama.py), the two
 *   alternating BENCH_REPEATS times, medians of tokens/s and peak RSS. Our weights are stored as SmolLM2-135M is
 *   published, in BF16 (BENCH_LLAMA_DTYPE=F32 for float32), and stay so in memory; PyTorch holds float32.
 * - `llama-memory`: a Qwen2.5-0.5B-shaped folder (random weights, BF16 on disk, the test builder's tiny qwen2
 *   tokenizer) trained for a few steps at 1 × 256 on wasm through the real CLI (`lora-studio train` with a run
 *   config), bundled from source; its peak RSS is the CLI process's own (VmHWM, reported at exit).
 * Our side is bundled into dist/bench/ as the trainer ships (gradient worker, wasm binaries beside it), from the
 * current source, so a stale dist/trainer never decides a number.
 *
 * Alone: node --import tsx bench/llama_bench.ts [llama] [llama-memory]   (both when none is named)
 */
import { spawnSync } from 'node:child_process';
import * as esbuild from 'esbuild';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeJsonAtomic } from '../trainer/io/atomic';
import { QWEN25_05B } from '../test/util/llama_configs';

const REPO = path.resolve(__dirname, '..');
const OUT = path.join(REPO, 'dist', 'bench');
const PYTHON = '/usr/bin/python3';
const B = 4;
const T = 128;
const STEPS = Number(process.env.BENCH_STEPS ?? 3);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 2);
/** the memory run: 1 × 256, this many optimizer steps */
const MEMORY_STEPS = Number(process.env.BENCH_MEMORY_STEPS ?? 3);
const MEMORY_T = 256;

interface RunResult {
  tokens_per_s: number;
  peak_rss_mb: number;
  step_s: number[];
  [key: string]: unknown;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** bench/ours_llama.ts, the gradient worker and the CLI bundled into dist/bench/, with the wasm binaries beside them. */
export async function bundleLlama(): Promise<void> {
  await esbuild.build({
    absWorkingDir: REPO, entryPoints: { ours_llama: 'bench/ours_llama.ts', parallel_worker: 'trainer/parallel/worker.ts', cli: 'trainer/cli.ts' }, outdir: OUT,
    bundle: true, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'warning',
    external: ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'wabt', 'webgpu'],
  });
  const wasmDist = path.dirname(createRequire(__filename).resolve('@tensorflow/tfjs-backend-wasm'));
  for (const f of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm']) fs.copyFileSync(path.join(wasmDist, f), path.join(OUT, f));
  const gemm = spawnSync(process.execPath, ['--import', 'tsx', 'trainer/ops/wasm_build.ts', OUT], { cwd: REPO, encoding: 'utf8' });
  if (gemm.status !== 0) throw new Error(`wasm_build failed: ${gemm.stderr}`);
}

function runJson(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): RunResult {
  const r = spawnSync(cmd, args, { cwd: REPO, encoding: 'utf8', maxBuffer: 1 << 24, env });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  if (r.status !== 0 || !line.startsWith('{')) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(line) as RunResult;
}

/** The `llama` case: ours (wasm) and PyTorch alternating, REPEATS times each. */
export function llamaSpeed() {
  const ours: RunResult[] = [];
  const torch: RunResult[] = [];
  const args = ['causal-lm', String(B), String(T), String(STEPS)];
  for (let i = 0; i < REPEATS; i++) {
    ours.push(runJson(process.execPath, [path.join(OUT, 'ours_llama.js'), ...args, 'wasm']));
    torch.push(runJson(PYTHON, ['bench/torch_llama.py', ...args]));
  }
  const o = median(ours.map((r) => r.tokens_per_s));
  const t = median(torch.map((r) => r.tokens_per_s));
  return {
    ours_tokens_per_s: o, torch_tokens_per_s: t, ratio: o / t,
    ours_peak_rss_mb: median(ours.map((r) => r.peak_rss_mb)), torch_peak_rss_mb: median(torch.map((r) => r.peak_rss_mb)),
    ours_runs: ours.map((r) => r.tokens_per_s), torch_runs: torch.map((r) => r.tokens_per_s),
    ours_rss_runs: ours.map((r) => r.peak_rss_mb), torch_rss_runs: torch.map((r) => r.peak_rss_mb),
    threads: ours.at(-1)?.threads, torch_sdpa: torch.at(-1)?.sdpa, torch_version: torch.at(-1)?.torch,
    // how our side's weights are stored (bench/llama_setup.ts): BF16 ones stay in 16 bits; PyTorch holds float32
    ours_weights: ours.at(-1)?.weights_dtype,
  };
}

/**
 * A Qwen2.5-0.5B-shaped folder in `dir`: config.json (the published one, with the tiny tokenizer's special token
 * ids), model.safetensors in BF16 (random, std 0.02), and test/util/llama_folder.ts's qwen2 tokenizer files.
 */
export async function writeQwenFolder(dir: string): Promise<void> {
  // loaded here, not at the top: the builder is test code that only this step needs
  const { writeLlamaFolder } = await import('../test/util/llama_folder');
  const dims = Object.fromEntries(
    ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'max_position_embeddings', 'rms_norm_eps', 'rope_theta', 'vocab_size', 'sliding_window', 'use_sliding_window', 'max_window_layers', 'initializer_range']
      .map((k) => [k, QWEN25_05B[k as keyof typeof QWEN25_05B]]),
  );
  writeLlamaFolder(dir, { model_type: 'qwen2', dtype: 'BF16', tied: true, std: 0.02, seed: 1, config: dims });
  // the tiny tokenizer's model_max_length is its own 64; the published one is 131072
  const tc = path.join(dir, 'tokenizer_config.json');
  fs.writeFileSync(tc, JSON.stringify({ ...JSON.parse(fs.readFileSync(tc, 'utf8')), model_max_length: 131072 }, null, 2));
}

/** Random printable ASCII: the byte-level tokenizer without merges gives one token per byte. */
function randomText(n: number, seed: number): string {
  let s = seed;
  let out = '';
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    out += String.fromCharCode(97 + ((s >>> 16) % 26));
    if (i % 7 === 6) out += ' ';
  }
  return out;
}

/**
 * The `llama-memory` case: writes the folder (in a child process, so its 3 GB of host buffers are gone before the
 * run), then `lora-studio train` at 1 × MEMORY_T for MEMORY_STEPS steps on wasm; peak RSS is the CLI process's own.
 * `workers` sets LORA_STUDIO_WORKERS (undefined: the trainer's own plan).
 */
export function llamaMemory(workers?: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-bench-qwen-'));
  try {
    const model = path.join(dir, 'model');
    let t0 = performance.now();
    const w = spawnSync(process.execPath, ['--import', 'tsx', __filename, 'write-qwen', model], { cwd: REPO, encoding: 'utf8' });
    if (w.status !== 0) throw new Error(`writing the Qwen2.5-0.5B-shaped folder failed: ${w.stderr.slice(-2000)}`);
    const writeS = (performance.now() - t0) / 1000;
    const weightsMb = fs.statSync(path.join(model, 'model.safetensors')).size / 2 ** 20;
    const rows = Array.from({ length: 8 }, (_, i) => JSON.stringify({ text: randomText(MEMORY_T * 2, i + 1) })).join('\n');
    fs.writeFileSync(path.join(dir, 'train.jsonl'), rows + '\n');
    const config = path.join(dir, 'lora-run.json');
    fs.writeFileSync(config, JSON.stringify({
      model: './model', task: 'causal-lm', data: { train: 'train.jsonl', max_length: MEMORY_T, eval_split: 0 },
      lora: { r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: ['q_proj', 'v_proj'] },
      training: { output_dir: 'out', max_steps: MEMORY_STEPS, per_device_train_batch_size: 1, logging_steps: 1, eval_strategy: 'no', save_strategy: 'no', seed: 3 },
    }));
    // the CLI as bin/lora-studio.js runs it, with the process's peak RSS written at exit (VmHWM, worker threads
    // included; getrusage's maxRSS would start at this parent's RSS, inherited across fork + exec)
    const cli = path.join(OUT, 'cli.js');
    const code = `process.on('exit', () => { const m = /VmHWM:\\s+(\\d+) kB/.exec(require('fs').readFileSync('/proc/self/status', 'utf8')); ` +
      `process.stderr.write('\\nbench-maxrss-kb ' + (m ? m[1] : process.resourceUsage().maxRSS) + '\\n'); });` +
      `require(${JSON.stringify(cli)}).main(['node', 'lora-studio', 'train', '--config', ${JSON.stringify(config)}, '--backend', 'wasm', '--json']);`;
    const env = { ...process.env };
    if (workers !== undefined) env.LORA_STUDIO_WORKERS = String(workers);
    else delete env.LORA_STUDIO_WORKERS;
    t0 = performance.now();
    const r = spawnSync(process.execPath, ['-e', code], { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 26, env });
    const wallS = (performance.now() - t0) / 1000;
    const kb = /bench-maxrss-kb (\d+)/.exec(r.stderr);
    if (r.status !== 0 || !kb) throw new Error(`lora-studio train on the Qwen2.5-0.5B-shaped folder failed (${r.status}): ${(r.stderr + r.stdout).slice(-3000)}`);
    const events = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const steps = events.filter((e) => e.event === 'step');
    return {
      peak_rss_mb: Number(kb[1]) / 1024, weights_bf16_mb: weightsMb, steps: steps.length, wall_s: wallS, write_s: writeS,
      step_events: steps, start: events.find((e) => e.event === 'start'), workers: workers ?? 'auto', tokens_per_s: steps.map((e) => Number(e.tokens_per_second)),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (process.argv[2] === 'write-qwen') return writeQwenFolder(process.argv[3]);
  const cases = process.argv.slice(2).length ? process.argv.slice(2) : ['llama', 'llama-memory'];
  await bundleLlama();
  const results: Record<string, unknown> = {};
  for (const c of cases) {
    if (c === 'llama') results.llama = llamaSpeed();
    else if (c === 'llama-memory') results['llama-memory'] = llamaMemory(process.env.LORA_STUDIO_WORKERS ? Number(process.env.LORA_STUDIO_WORKERS) : undefined);
    else throw new Error(`unknown case "${c}" (llama, llama-memory)`);
    console.log(JSON.stringify({ [c]: results[c] }));
  }
  writeJsonAtomic(path.join(REPO, 'bench', 'results-llama.json'), { machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model }, shape: { batch: B, seq_len: T, steps: STEPS, repeats: REPEATS }, results });
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
