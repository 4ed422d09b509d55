/**
 * The merge case of `npm run bench` (issue 13, "merge at the speed of the disk"): the real CLI's `merge` in a child
 * process (trainer/cli.ts bundled as the build bundles it, started by a launcher that also reports the child's peak
 * RSS), beside `cp` of the same weights file, on random GPT-2-small folders in F32, BF16 and F16, a
 * SmolLM2-135M-shaped Llama folder in BF16, each with a random r=8 adapter: 36 modules for GPT-2 (attn.c_attn,
 * attn.c_proj, mlp.c_fc in each of 12 blocks), q_proj/v_proj/down_proj in each of 30 blocks for the Llama (90);
 * and a user-sized one, a Qwen2.5-0.5B-shaped BF16 folder (988 MB) with r=8 on all seven linear layers of its 24
 * blocks (168 modules, 357 M adapted weights).
 * Goal: merge ≤ 3× cp, peak RSS ≤ the largest tensor + 300 MB. `cli_start_s` is the same CLI's `--version`, the
 * fixed cost of starting Node and loading the bundle, which the merge time includes.
 * `cp_sync_s` is `cp` followed by `sync` of the copies (fsync of each file): what the merge must do too, so that a
 * crash cannot leave an empty file behind the rename. Plain `cp` stops when the bytes are in the page cache, which
 * is not the speed of the disk.
 * BENCH_MERGE_REPEATS (default 3) alternating runs; medians. BENCH_MERGE_BASELINE_CLI: another bundled CLI (say
 * dist/trainer/cli.js built from an earlier commit) run in turn with this one, for before/after on the same load.
 * `node_cp_s` is the floor of any Node CLI: starting Node and fs.copyFileSync of the same files (no fsync, no
 * arithmetic), which on this machine is already ~3× plain `cp`.
 * The load average at the start and the end is recorded: on a shared machine the timings move with it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as esbuild from 'esbuild';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeRandomGPT2 } from '../trainer/models/gpt2/random_init';
import { gpt2WeightShapes } from '../trainer/models/gpt2/weights';
import { llamaWeightShapes } from '../trainer/models/llama/weights';
import type { LlamaConfig } from '../trainer/models/llama/config';
import { adapterConfigJson, saveAdapter } from '../trainer/lora/adapter_io';
import { LORA_DEFAULTS } from '../trainer/lora/config';
import { readSafetensorsLayout, type HostTensor } from '../trainer/io/safetensors';
import type { Task } from '../trainer/task';
import { Rng } from '../trainer/util/rng';
import { assembleRankUpdate, RANK_UPDATE_WASM } from '../trainer/ops/rank_update';
import { writeLlamaFolder } from '../test/util/llama_folder';
import { QWEN25_05B, SMOLLM2_135M } from '../test/util/llama_configs';
import { smallConfig } from './setup';

const REPO = path.resolve(__dirname, '..');
const REPEATS = Number(process.env.BENCH_MERGE_REPEATS ?? 3);
const R = 8;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export interface MergeCase {
  merge_s: number;
  cp_s: number;
  ratio: number;
  /** cp, then sync of the copied files */
  cp_sync_s: number;
  ratio_cp_sync: number;
  /** `node -e` fs.copyFileSync of the same files: Node's start-up plus the in-kernel copy */
  node_cp_s: number;
  peak_rss_mb: number;
  largest_tensor_mb: number;
  weights_mb: number;
  modules: number;
  merge_runs: number[];
  cp_runs: number[];
  cp_sync_runs: number[];
  node_cp_runs: number[];
  /** with BENCH_MERGE_BASELINE_CLI */
  baseline_merge_s?: number;
  baseline_merge_runs?: number[];
}

export interface MergeBench {
  cli_start_s: number;
  /** with BENCH_MERGE_BASELINE_CLI: that CLI's --version */
  baseline_cli_start_s?: number;
  baseline_cli?: string;
  /** os.loadavg() (1, 5, 15 min) when the merge cases started and ended */
  load_start: number[];
  load_end: number[];
  cases: Record<string, MergeCase>;
}

/**
 * Runs the bundled CLI named by LORA_BENCH_CLI with this process's argv (as bin/lora-studio.js does) and, at exit,
 * writes the peak RSS in bytes to LORA_BENCH_RSS: /proc/self/status's VmHWM, which belongs to this program alone.
 * (getrusage's maxrss is not: on Linux a child spawned by a large parent starts from the parent's RSS, which made
 * the first version of this bench report ~960 MB for a ~110 MB merge.)
 */
const LAUNCHER = `const fs = require('node:fs');
process.on('exit', () => {
  let kb = process.resourceUsage().maxRSS;
  try { kb = Number(/VmHWM:\\s*(\\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]); } catch {}
  fs.writeFileSync(process.env.LORA_BENCH_RSS, String(kb * 1024));
});
require(process.env.LORA_BENCH_CLI).main(process.argv);
`;

/**
 * trainer/cli.ts bundled into dist/bench/cli.js (the code as it is now, whatever dist/trainer holds) with the
 * rank-update kernel's binary beside it (as the build puts it beside dist/trainer/cli.js), and its launcher.
 */
async function bundleCli(): Promise<{ cli: string; launcher: string }> {
  const out = path.join(REPO, 'dist', 'bench');
  await esbuild.build({
    absWorkingDir: REPO, entryPoints: { cli: 'trainer/cli.ts' }, outdir: out, bundle: true, minifyWhitespace: true, platform: 'node', format: 'cjs',
    target: 'node20', logLevel: 'warning', external: ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'wabt', 'webgpu'],
  });
  fs.writeFileSync(path.join(out, RANK_UPDATE_WASM), await assembleRankUpdate());
  fs.writeFileSync(path.join(out, 'merge_launcher.cjs'), LAUNCHER);
  return { cli: path.join(out, 'cli.js'), launcher: path.join(out, 'merge_launcher.cjs') };
}

/** A random r=8 adapter on `modules` (weights [in, out] when conv1d, else [out, in]), saved at `dir`. */
function writeAdapter(dir: string, shapes: Map<string, number[]>, modules: string[], conv1d: boolean, task: Task): void {
  const rng = new Rng(5);
  const rand = (shape: number[]): HostTensor => {
    const data = new Float32Array(shape[0] * shape[1]);
    for (let i = 0; i < data.length; i++) data[i] = 0.02 * rng.normal();
    return { shape, data, dtype: 'F32' };
  };
  const lora = new Map<string, { A: HostTensor; B: HostTensor }>();
  for (const m of modules) {
    const w = shapes.get(`${m}.weight`)!;
    const [inF, outF] = conv1d ? w : [w[1], w[0]];
    lora.set(m, { A: rand([R, inF]), B: rand([outF, R]) });
  }
  const targets = [...new Set(modules.map((m) => m.split('.').slice(-2).join('.')))];
  saveAdapter(dir, { config: adapterConfigJson({ ...LORA_DEFAULTS, r: R, lora_alpha: 16, target_modules: targets, fan_in_fan_out: conv1d }, task, 'bench-base'), lora, extra: new Map() });
}

/** `node -e NODE_CP <dir> <files…>`: copies each file into dir with fs.copyFileSync. */
const NODE_CP = "const fs = require('node:fs'), path = require('node:path'); const [dir, ...files] = process.argv.slice(1); for (const f of files) fs.copyFileSync(f, path.join(dir, path.basename(f)));";

function timeS(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return (performance.now() - t0) / 1000;
}

/** One merge through `launcher` running the bundle `cli`: seconds, and the peak RSS in MiB. */
function timeMerge(work: string, cli: string, launcher: string, modelDir: string, adapterDir: string): { s: number; rss_mb: number } {
  const rssFile = path.join(work, 'rss');
  const out = path.join(work, 'merged');
  let r: ReturnType<typeof spawnSync> | undefined;
  const s = timeS(() => {
    r = spawnSync(process.execPath, [launcher, 'merge', modelDir, '--adapter', adapterDir, '--out', out, '--json'], {
      env: { ...process.env, LORA_BENCH_CLI: cli, LORA_BENCH_RSS: rssFile }, encoding: 'utf8',
    });
  });
  if (r!.status !== 0) throw new Error(`merge (${cli}) failed (${r!.status}): ${String(r!.stderr).slice(-2000)}`);
  const rss_mb = Number(fs.readFileSync(rssFile, 'utf8')) / 2 ** 20;
  fs.rmSync(out, { recursive: true });
  return { s, rss_mb };
}

const BASELINE_CLI = process.env.BENCH_MERGE_BASELINE_CLI ? path.resolve(process.env.BENCH_MERGE_BASELINE_CLI) : undefined;

function runCase(work: string, { cli, launcher }: { cli: string; launcher: string }, modelDir: string, adapterDir: string, modules: number): MergeCase {
  const weightFiles = fs.readdirSync(modelDir).filter((f) => f.endsWith('.safetensors')).map((f) => path.join(modelDir, f));
  let largest = 0;
  for (const f of weightFiles) for (const e of readSafetensorsLayout(f).entries.values()) largest = Math.max(largest, e.end - e.begin);
  const cps: number[] = [];
  const cpSyncs: number[] = [];
  const nodeCps: number[] = [];
  const merges: number[] = [];
  const baselines: number[] = [];
  const rss: number[] = [];
  const copies = path.join(work, 'copy');
  const copied = weightFiles.map((f) => path.join(copies, path.basename(f)));
  // the folder was just written: its pages go to disk now, not during the first timings
  execFileSync('sync', weightFiles);
  for (let i = 0; i < REPEATS; i++) {
    fs.mkdirSync(copies);
    cps.push(timeS(() => execFileSync('cp', [...weightFiles, copies])));
    fs.rmSync(copies, { recursive: true });
    fs.mkdirSync(copies);
    // coreutils `sync FILE…` fsyncs each file (as the merge fsyncs each file it writes)
    cpSyncs.push(timeS(() => {
      execFileSync('cp', [...weightFiles, copies]);
      execFileSync('sync', copied);
    }));
    fs.rmSync(copies, { recursive: true });
    fs.mkdirSync(copies);
    nodeCps.push(timeS(() => execFileSync(process.execPath, ['-e', NODE_CP, copies, ...weightFiles])));
    fs.rmSync(copies, { recursive: true });
    // with a baseline, the two CLIs take turns going first
    const order = BASELINE_CLI && i % 2 === 1 ? ['baseline', 'ours'] : ['ours', 'baseline'];
    for (const who of order) {
      if (who === 'ours') {
        const m = timeMerge(work, cli, launcher, modelDir, adapterDir);
        merges.push(m.s);
        rss.push(m.rss_mb);
      } else if (BASELINE_CLI) {
        baselines.push(timeMerge(work, BASELINE_CLI, launcher, modelDir, adapterDir).s);
      }
    }
  }
  const weightsBytes = weightFiles.reduce((s, f) => s + fs.statSync(f).size, 0);
  return {
    merge_s: median(merges), cp_s: median(cps), ratio: median(merges) / median(cps),
    cp_sync_s: median(cpSyncs), ratio_cp_sync: median(merges) / median(cpSyncs), node_cp_s: median(nodeCps), peak_rss_mb: median(rss),
    largest_tensor_mb: largest / 2 ** 20, weights_mb: weightsBytes / 2 ** 20, modules, merge_runs: merges, cp_runs: cps, cp_sync_runs: cpSyncs, node_cp_runs: nodeCps,
    ...(BASELINE_CLI ? { baseline_merge_s: median(baselines), baseline_merge_runs: baselines } : {}),
  };
}

export async function mergeBench(): Promise<MergeBench> {
  const cli = await bundleCli();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-bench-merge-'));
  const load_start = os.loadavg();
  try {
    const version = (bundle: string) => timeS(() => execFileSync(process.execPath, [cli.launcher, '--version'], { env: { ...process.env, LORA_BENCH_CLI: bundle, LORA_BENCH_RSS: path.join(work, 'rss') } }));
    const startRuns: number[] = [];
    const baselineStartRuns: number[] = [];
    for (let i = 0; i < 5; i++) {
      startRuns.push(version(cli.cli));
      if (BASELINE_CLI) baselineStartRuns.push(version(BASELINE_CLI));
    }
    const cases: Record<string, MergeCase> = {};
    const c = smallConfig();
    const gptModules = Array.from({ length: c.n_layer }, (_, i) => ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc'].map((m) => `transformer.h.${i}.${m}`)).flat();
    const gptAdapter = path.join(work, 'adapter-gpt2');
    writeAdapter(gptAdapter, gpt2WeightShapes(c, 'causal-lm'), gptModules, true, 'causal-lm');
    for (const dtype of ['F32', 'BF16', 'F16'] as const) {
      const modelDir = path.join(work, `gpt2-${dtype}`);
      writeRandomGPT2(modelDir, { config: c, std: 0.02, dtype });
      cases[`GPT-2 small ${dtype}`] = runCase(work, cli, modelDir, gptAdapter, gptModules.length);
      fs.rmSync(modelDir, { recursive: true });
    }
    const llamaDir = path.join(work, 'smollm2');
    const { config } = writeLlamaFolder(llamaDir, { config: SMOLLM2_135M as unknown as Partial<LlamaConfig>, dtype: 'BF16', sharded: 2, std: 0.02, tokenizer: false });
    const llamaModules = Array.from({ length: SMOLLM2_135M.num_hidden_layers }, (_, i) => ['self_attn.q_proj', 'self_attn.v_proj', 'mlp.down_proj'].map((m) => `model.layers.${i}.${m}`)).flat();
    const llamaAdapter = path.join(work, 'adapter-llama');
    writeAdapter(llamaAdapter, llamaWeightShapes(config, 'causal-lm', 2), llamaModules, false, 'causal-lm');
    cases['SmolLM2-135M BF16, 2 shards'] = runCase(work, cli, llamaDir, llamaAdapter, llamaModules.length);
    fs.rmSync(llamaDir, { recursive: true });
    // a user-sized BF16 merge: Qwen2.5-0.5B's shapes (988 MB), LoRA on every linear layer (PEFT's all-linear)
    const qwenDir = path.join(work, 'qwen');
    const { model_type: _type, architectures: _arch, torch_dtype: _dtype, transformers_version: _tv, ...qwenDims } = QWEN25_05B;
    const qwen = writeLlamaFolder(qwenDir, { config: qwenDims as Partial<LlamaConfig>, model_type: 'qwen2', dtype: 'BF16', tied: true, std: 0.02, tokenizer: false }).config;
    const linear = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];
    const qwenModules = Array.from({ length: QWEN25_05B.num_hidden_layers }, (_, i) => linear.map((m) => `model.layers.${i}.${m}`)).flat();
    const qwenAdapter = path.join(work, 'adapter-qwen');
    writeAdapter(qwenAdapter, llamaWeightShapes(qwen, 'causal-lm', 2), qwenModules, false, 'causal-lm');
    cases['Qwen2.5-0.5B BF16, all-linear'] = runCase(work, cli, qwenDir, qwenAdapter, qwenModules.length);
    return {
      cli_start_s: median(startRuns), ...(BASELINE_CLI ? { baseline_cli_start_s: median(baselineStartRuns), baseline_cli: BASELINE_CLI } : {}),
      load_start, load_end: os.loadavg(), cases,
    };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** The bench table's rows for the merge cases. */
export function mergeRows(m: MergeBench): string[][] {
  const f = (x: number, d = 1) => x.toFixed(d);
  return Object.entries(m.cases).map(([name, c]) => [
    `merge ${name} + r=8 ×${c.modules}`, `${f(c.merge_s, 2)} s`, `cp ${f(c.cp_s, 2)} s`, `${f(c.ratio, 1)}× cp`,
    `${f(c.peak_rss_mb, 0)} (largest tensor ${f(c.largest_tensor_mb, 0)})`, `CLI start ${f(m.cli_start_s, 2)} s`,
    `cp+sync ${f(c.cp_sync_s, 2)} s: ${f(c.ratio_cp_sync, 1)}×`, `node copy ${f(c.node_cp_s, 2)} s (${f(c.node_cp_s / c.cp_s, 1)}× cp)`,
    ...(c.baseline_merge_s !== undefined ? [`baseline ${f(c.baseline_merge_s, 2)} s (start ${f(m.baseline_cli_start_s!, 2)} s)`] : []),
  ]);
}

if (require.main === module) {
  mergeBench().then((m) => {
    for (const r of mergeRows(m)) console.log(r.join(' | '));
    console.log(`load average ${m.load_start.map((x) => x.toFixed(2)).join(' ')} at the start, ${m.load_end.map((x) => x.toFixed(2)).join(' ')} at the end`);
    console.log(JSON.stringify(m));
  }).catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
