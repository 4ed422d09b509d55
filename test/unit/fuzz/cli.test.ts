/**
 * The process-level part of the fuzz suite: ~20 mutated inputs through the real CLI (dist/trainer/cli.js, built by
 * `npm run build`): inspect (config.json, lora-run.json), train --json (max_steps 1), eval and merge. Each run must
 * exit 0, 1 or 2 within 20 s, never on a signal (SIGABRT is V8 out of memory); a failure must print
 * `lora-studio: error:` on stderr and no stack trace.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mutate } from './mutate';
import { REPO, RESULTS, SEED, cleanup, scratchDir, seedLibrary } from './harness';
import { inputRng } from './worker_rng';
import { kindOf } from './seeds';

const CLI = path.join(REPO, 'dist', 'trainer', 'cli.js');
const TIMEOUT_MS = 20_000;
const PARALLEL = 2;

interface CliCase {
  name: string;
  seed: string;
  target: string;
  args: (dir: string, out: string) => string[];
}

const PLAN: Array<[CliCase, number]> = [
  [{ name: 'inspect <model>', seed: 'model-seqcls', target: 'config.json', args: (d) => ['inspect', d, '--json'] }, 4],
  [{ name: 'inspect --config', seed: 'run-seqcls', target: 'lora-run.json', args: (d) => ['inspect', '--config', path.join(d, 'lora-run.json'), '--json'] }, 4],
  [{ name: 'train --config (lora-run.json)', seed: 'run-seqcls', target: 'lora-run.json', args: (d) => ['train', '--config', path.join(d, 'lora-run.json'), '--json'] }, 3],
  [{ name: 'train --config (train.jsonl)', seed: 'run-seqcls', target: 'train.jsonl', args: (d) => ['train', '--config', path.join(d, 'lora-run.json'), '--json'] }, 2],
  [{ name: 'eval --data', seed: 'model-seqcls', target: 'tokenizer.json', args: (d) => ['eval', d, '--data', path.join(seedLibrary().dirs['data'], 'train.jsonl'), '--backend', 'cpu', '--json'] }, 2],
  [{ name: 'merge --adapter', seed: 'adapter-seqcls', target: 'adapter_model.safetensors', args: (d, out) => ['merge', seedLibrary().dirs['model-seqcls'], '--adapter', d, '--out', out, '--json'] }, 3],
  [{ name: 'merge --adapter (config)', seed: 'adapter-causal', target: 'adapter_config.json', args: (d, out) => ['merge', seedLibrary().dirs['model-causal'], '--adapter', d, '--out', out, '--json'] }, 2],
];

interface Run {
  label: string;
  desc: string;
  dir: string;
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  stderr: string;
  ms: number;
}

function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<Omit<Run, 'label' | 'desc' | 'dir'>> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20000)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal: timedOut ? null : signal, timedOut, stderr, ms: Date.now() - t0 });
    });
  });
}

function problems(r: Run): string[] {
  const p: string[] = [];
  if (r.timedOut) p.push(`no exit within ${TIMEOUT_MS / 1000} s`);
  else if (r.signal) p.push(`killed by ${r.signal}`);
  else if (![0, 1, 2].includes(r.code!)) p.push(`exit code ${r.code}`);
  if (!r.timedOut && r.code !== 0) {
    if (!r.stderr.includes('lora-studio: error:')) p.push('stderr has no "lora-studio: error:" line');
    const trace = r.stderr.split('\n').filter((l) => /^\s+at /.test(l));
    if (trace.length) p.push(`a stack trace on stderr (${trace[0].trim()})`);
  }
  return p;
}

describe(`fuzz: mutated inputs through the real CLI, seed ${SEED}`, () => {
  const runs: Run[] = [];
  after(cleanup);
  before(async () => {
    if (!fs.existsSync(CLI)) throw new Error(`${path.relative(REPO, CLI)} is missing: run \`npm run build\` first (npm test does)`);
    const lib = seedLibrary();
    const root = fs.mkdtempSync(path.join(scratchDir(), 'cli-'));
    const env = { HF_HUB_OFFLINE: '1', HF_HOME: path.join(root, 'hf'), LORA_STUDIO_WORKERS: '1', LORA_STUDIO_DEBUG: '' };
    const jobs: Array<() => Promise<void>> = [];
    let n = 0;
    for (const [c, count] of PLAN) {
      for (let i = 0; i < count; i++) {
        const k = n++;
        const rng = inputRng(SEED, `cli ${c.name}`, i);
        const dir = path.join(root, `input-${k}`);
        fs.cpSync(lib.dirs[c.seed], dir, { recursive: true });
        const file = path.join(dir, c.target);
        const m = mutate(fs.readFileSync(file), kindOf(c.target), rng);
        fs.rmSync(file);
        fs.writeFileSync(file, m.bytes);
        const args = c.args(dir, path.join(root, `merged-${k}`));
        jobs.push(async () => {
          const r = await runCli(args, env);
          runs.push({ label: `${c.name} #${i}`, desc: `${c.target}: ${m.desc}`, dir, ...r });
        });
      }
    }
    const queue = [...jobs];
    await Promise.all(Array.from({ length: PARALLEL }, async () => {
      while (queue.length) await queue.shift()!();
    }));
  });
  it('every run exits 0, 1 or 2 within 20 s, with `lora-studio: error:` and no stack trace on failure', () => {
    const bad = runs.filter((r) => problems(r).length > 0);
    const lines = bad.map((r) => {
      const keep = path.join(RESULTS, `cli-seed${SEED}-${r.label.replace(/[^A-Za-z0-9]+/g, '-')}`);
      fs.rmSync(keep, { recursive: true, force: true });
      fs.cpSync(r.dir, keep, { recursive: true });
      fs.writeFileSync(path.join(keep, 'finding.txt'), `${r.label}\nmutation: ${r.desc}\n${problems(r).join('\n')}\n\nstderr:\n${r.stderr}`);
      const firstErr = r.stderr.split('\n').find((l) => l.trim()) ?? '';
      return `  ● ${r.label}: ${problems(r).join('; ')}\n      mutation: ${r.desc.slice(0, 200)}\n      stderr: ${firstErr.slice(0, 300)}\n      kept in ${path.relative(REPO, keep)}/`;
    });
    const codes = runs.map((r) => r.code).join(' ');
    console.log(`${runs.length} CLI runs, exit codes: ${codes}; slowest ${Math.max(...runs.map((r) => r.ms))} ms`);
    if (bad.length) assert.fail(`${bad.length} of ${runs.length} CLI runs broke the promise:\n${lines.join('\n')}`);
  });
});
