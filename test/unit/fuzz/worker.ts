/**
 * The fuzz worker: runs inputs through a reader, one at a time, inside a worker thread with a heap limit. Before each
 * input it posts `start` (the heartbeat the parent's watchdog waits on), after it `result` with the outcome and the
 * memory the input left behind. The parent restarts a worker that hangs or dies, from the next input.
 *
 * Inputs are a pure function of (seed, reader, index), so any input can be rebuilt from those three numbers.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import { LoraStudioError } from '../../../trainer/errors';
import type { Rng } from '../../../trainer/util/rng';
import { inputRng } from './worker_rng';
import { CASES } from './cases';
import { mutate } from './mutate';
import { readerByName, type ReaderSeed } from './readers';
import { kindOf, type SeedLibrary } from './seeds';
import type { CaseResult, FromWorker, WorkerJob } from './protocol';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const job = workerData as WorkerJob;
const post = (m: FromWorker) => parentPort!.postMessage(m);
let current = -1;

process.on('unhandledRejection', (e) => {
  post({ type: 'stray', pos: current, name: (e as Error)?.name ?? typeof e, message: String((e as Error)?.message ?? e), stack: String((e as Error)?.stack ?? '') });
});

function pickSeed(seeds: ReaderSeed[], rng: Rng): ReaderSeed {
  const total = seeds.reduce((s, x) => s + (x.weight ?? 1), 0);
  let r = rng.next() * total;
  for (const s of seeds) if ((r -= s.weight ?? 1) < 0) return s;
  return seeds[seeds.length - 1];
}

const MB = 1024 * 1024;

/** The first line (cut) and the `at` lines of a stack: a message can be megabytes long (a value echoed whole). */
function stackFrames(stack: unknown): string {
  const lines = String(stack ?? '').split('\n');
  return [lines[0].slice(0, 300), ...lines.filter((l) => /^\s+at /.test(l)).slice(0, 30).map((l) => l.slice(0, 300))].join('\n');
}

type Outcome = Omit<CaseResult, 'pos' | 'reader' | 'index' | 'desc' | 'target' | 'caseDir'>;

async function runOne(run: () => Promise<unknown>): Promise<Outcome> {
  // a full collection costs tens of ms with tfjs loaded: only when a previous input left much behind
  if (process.memoryUsage().arrayBuffers > 64 * MB) gc();
  const before = process.memoryUsage();
  const t0 = performance.now();
  let out: Outcome;
  try {
    await run();
    out = { status: 'ok', ms: 0 };
  } catch (e) {
    if (e instanceof LoraStudioError) {
      const describe = e.describe();
      const base = { name: e.name, message: e.message.slice(0, 2000), stack: stackFrames(e.stack), file: e.file, field: e.field, describe: describe.slice(0, 4000) };
      if (!e.file) out = { status: 'finding', kind: 'LoraStudioError without a file', ...base, ms: 0 };
      else if (describe.length > 4000) out = { status: 'finding', kind: 'LoraStudioError message over 4,000 characters', ...base, message: `${describe.length} characters: ${describe.slice(0, 300)}…`, describe: describe.slice(0, 300) + '…', ms: 0 };
      else out = { status: 'lse', ...base, ms: 0 };
    } else {
      const err = e as Error;
      out = { status: 'finding', kind: 'exception', name: err?.name ?? typeof e, message: String(err?.message ?? e).slice(0, 2000), stack: stackFrames(err?.stack), ms: 0 };
    }
  }
  out.ms = performance.now() - t0;
  const after = process.memoryUsage();
  out.arrayBuffersMb = (after.arrayBuffers - before.arrayBuffers) / MB;
  out.rssMb = (after.rss - before.rss) / MB;
  if (out.status !== 'finding' && (out.arrayBuffersMb > 256 || out.rssMb > 256)) {
    out = { ...out, status: 'finding', kind: 'large allocation caused by a size field', message: `the input left ${out.arrayBuffersMb.toFixed(0)} MB of ArrayBuffers and ${out.rssMb.toFixed(0)} MB of RSS allocated` };
  }
  return out;
}

async function fuzz(lib: SeedLibrary): Promise<void> {
  const plan = job.plan!;
  for (let pos = job.from; pos < plan.length; pos++) {
    current = pos;
    const { index } = plan[pos];
    const reader = readerByName(plan[pos].reader);
    const seeds = reader.seeds(lib);
    const rng = inputRng(job.seed, reader.name, index);
    const seed = index < 0 ? seeds[-index - 1] : pickSeed(seeds, rng);
    const target = seed.targets[rng.int(seed.targets.length)];
    const caseDir = path.join(job.caseRoot, `input-${pos}`);
    fs.rmSync(caseDir, { recursive: true, force: true });
    fs.cpSync(seed.dir, caseDir, { recursive: true });
    let desc = `the seed ${path.basename(seed.dir)} itself, unmutated`;
    if (index >= 0) {
      const original = fs.readFileSync(path.join(seed.dir, target));
      const m = mutate(original, kindOf(target), rng);
      const file = path.join(caseDir, target);
      fs.rmSync(file, { force: true });
      fs.writeFileSync(file, m.bytes);
      desc = `${path.basename(seed.dir)}/${target}: ${m.desc}`;
    }
    const scratchOut = path.join(job.caseRoot, `out-${pos}`);
    post({ type: 'start', pos, reader: reader.name, index, caseDir, desc, target });
    const r = await runOne(async () => reader.run(caseDir, { lib, scratchOut, index: Math.max(0, index), info: seed.info ?? {} }));
    fs.rmSync(scratchOut, { recursive: true, force: true });
    if (r.status !== 'finding') fs.rmSync(caseDir, { recursive: true, force: true });
    post({ type: 'result', result: { pos, reader: reader.name, index, desc, target, caseDir, ...r } });
  }
}

async function cases(lib: SeedLibrary): Promise<void> {
  const names = job.cases!;
  for (let index = job.from; index < names.length; index++) {
    current = index;
    const c = CASES.find((x) => x.name === names[index])!;
    const caseDir = path.join(job.caseRoot, `case-${index}`);
    fs.rmSync(caseDir, { recursive: true, force: true });
    const reader = readerByName(c.reader);
    fs.cpSync(c.seed(lib), caseDir, { recursive: true });
    c.build(caseDir, lib);
    const scratchOut = path.join(job.caseRoot, `out-${index}`);
    post({ type: 'start', pos: index, reader: c.reader, index, caseDir, desc: c.name, target: c.file });
    let value: unknown;
    const r = await runOne(async () => {
      value = await reader.run(caseDir, { lib, scratchOut, index: c.index ?? 1, info: c.info ?? {} });
    });
    const problem = r.status === 'ok' && c.check ? c.check(value) : null;
    if (problem) Object.assign(r, { status: 'finding', kind: 'wrong result', name: 'Check', message: problem });
    fs.rmSync(scratchOut, { recursive: true, force: true });
    post({ type: 'result', result: { pos: index, reader: c.reader, index, desc: c.name, target: c.file, caseDir, ...r } });
  }
}

(async () => {
  const lib = job.lib;
  post({ type: 'ready' });
  if (job.mode === 'fuzz') await fuzz(lib);
  else await cases(lib);
  post({ type: 'end' });
})().catch((e: Error) => post({ type: 'fatal', message: String(e?.stack ?? e) }));
