/**
 * The parent side of the fuzzer: runs a worker thread (TypeScript via tsx, a 512 MB heap limit) over a range of
 * inputs, watches its heartbeat, and turns hangs, out-of-memory deaths and crashes into findings: the input is kept
 * under test-results/fuzz/, and a fresh worker continues from the next input.
 *
 * Settings (environment): LORA_FUZZ_SEED (default 20261204), LORA_FUZZ_COUNT (inputs per reader, default 100),
 * LORA_FUZZ_ONLY ("<reader slug>:<index>" replays one input), LORA_FUZZ_HANG_MS (default 5000).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { CaseResult, FromWorker, WorkerJob } from './protocol';
import { buildSeeds, type SeedLibrary } from './seeds';

export const REPO = path.resolve(__dirname, '..', '..', '..');
export const RESULTS = path.join(REPO, 'test-results', 'fuzz');
export const SEED = Number(process.env.LORA_FUZZ_SEED ?? 20261204) >>> 0;
export const COUNT = Math.max(1, Number(process.env.LORA_FUZZ_COUNT ?? 100) | 0);
export const HANG_MS = Number(process.env.LORA_FUZZ_HANG_MS ?? 5000);
export const HEAP_MB = 512;
const WORKER_FILE = path.join(__dirname, 'worker.ts');

export const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

let library: { lib: SeedLibrary; scratch: string } | null = null;
/** The seed library, built once per process in a scratch folder (removed by cleanup()). */
export function seedLibrary(): SeedLibrary {
  if (!library) {
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-fuzz-'));
    library = { lib: buildSeeds(path.join(scratch, 'seeds')), scratch };
  }
  return library.lib;
}
export function scratchDir(): string {
  seedLibrary();
  return library!.scratch;
}
export function cleanup(): void {
  if (library) fs.rmSync(library.scratch, { recursive: true, force: true });
  library = null;
}

/** Unblocks a worker stuck in open()/read() of a FIFO in the case folder: open its other end and close it. */
function unblockFifos(dir: string): void {
  try {
    for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
      if (!e.isFIFO()) continue;
      const p = path.join(e.parentPath ?? dir, e.name);
      try {
        fs.closeSync(fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
      } catch {
        /* no reader on it */
      }
    }
  } catch {
    /* gone */
  }
}

function saveInput(r: CaseResult, mode: WorkerJob['mode']): void {
  const tag = slug(r.reader);
  const dest = path.join(RESULTS, mode === 'cases' ? `regression-${slug(r.desc)}` : `${tag}-seed${SEED}-input${r.index}`);
  fs.rmSync(dest, { recursive: true, force: true });
  fs.mkdirSync(dest, { recursive: true });
  try {
    if (fs.existsSync(r.caseDir)) {
      for (const e of fs.readdirSync(r.caseDir, { withFileTypes: true })) {
        if (e.isFIFO()) continue; // described in finding.txt; cp cannot copy it
        fs.cpSync(path.join(r.caseDir, e.name), path.join(dest, e.name), { recursive: true });
      }
    }
  } catch {
    /* keep what was copied */
  }
  const text = [
    `reader: ${tag}`, `seed: ${SEED}`, `input: ${r.index}`, `mutation: ${r.desc}`, `finding: ${r.kind}`,
    `exception: ${r.name ?? ''}: ${r.message ?? ''}`, r.describe ? `describe(): ${r.describe}` : '', `time: ${r.ms.toFixed(0)} ms`,
    mode === 'cases'
      ? `replay: node --import tsx --test --test-name-pattern=${JSON.stringify(r.desc)} test/unit/fuzz/regressions.test.ts`
      : `replay: LORA_FUZZ_SEED=${SEED} LORA_FUZZ_ONLY=${tag}:${r.index} node --import tsx --test test/unit/fuzz/fuzz.test.ts`,
    '', r.stack ?? '',
  ].filter((l) => l !== '').join('\n');
  fs.writeFileSync(path.join(dest, 'finding.txt'), text + '\n');
  r.savedAt = path.relative(REPO, dest);
}

/**
 * Runs a job to its end, restarting the worker after a hang or a death (from the next input). Returns one result per
 * input, in order.
 */
export async function runJob(job: Omit<WorkerJob, 'lib' | 'caseRoot' | 'from'>): Promise<CaseResult[]> {
  const lib = seedLibrary();
  const caseRoot = fs.mkdtempSync(path.join(scratchDir(), `${job.mode}-`));
  const results: CaseResult[] = [];
  const end = job.mode === 'fuzz' ? job.plan!.length : job.cases!.length;
  let from = 0;
  while (from < end) {
    const r = await oneWorker({ ...job, lib, caseRoot, from });
    results.push(...r.results);
    if (r.next === null) break;
    from = r.next;
  }
  fs.rmSync(caseRoot, { recursive: true, force: true });
  return results;
}

function oneWorker(job: WorkerJob): Promise<{ results: CaseResult[]; next: number | null }> {
  return new Promise((resolve) => {
    const results: CaseResult[] = [];
    const worker = new Worker(`require('tsx/cjs'); require(${JSON.stringify(WORKER_FILE)});`, {
      eval: true, workerData: job, resourceLimits: { maxOldGenerationSizeMb: HEAP_MB }, stdout: true, stderr: true,
    });
    let stderr = '';
    worker.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    worker.stdout.on('data', () => {});
    let started: { pos: number; reader: string; index: number; caseDir: string; desc: string; target: string } | null = null;
    let beat = Date.now();
    let phase: 'starting' | 'running' = 'starting';
    let done = false;
    const finish = (next: number | null) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      resolve({ results, next });
    };
    const fail = (kind: string, name: string, message: string, stack = '', keptDir?: string) => {
      if (!started) {
        // died before its first input: report against the first input of the range
        const p = job.plan?.[job.from];
        started = { pos: job.from, reader: p?.reader ?? job.cases?.[job.from] ?? '', index: p?.index ?? job.from, caseDir: '', desc: '(before the first input)', target: '' };
      }
      const r: CaseResult = { pos: started.pos, reader: started.reader, index: started.index, desc: started.desc, target: started.target, caseDir: keptDir ?? started.caseDir, status: 'finding', kind, name, message, stack, ms: Date.now() - beat };
      saveInput(r, job.mode);
      results.push(r);
      fs.rmSync(started.caseDir || path.join(job.caseRoot, 'none'), { recursive: true, force: true });
      return started.pos + 1;
    };
    let killing = false;
    const timer = setInterval(() => {
      const limit = phase === 'starting' ? 120_000 : HANG_MS;
      if (killing || done || Date.now() - beat <= limit) return;
      killing = true;
      const caseDir = started?.caseDir ?? '';
      if (started) started = { ...started, caseDir: '' }; // kept until the worker is gone (a FIFO must stay to be unblocked)
      const next = fail('hang', 'Timeout', `no result within ${limit / 1000} s (worker terminated)`, '', caseDir);
      void (async () => {
        // A worker blocked in a system call (open() of a FIFO) cannot be terminated: open the FIFO's other end until
        // it lets go, for at most 10 s.
        let exited = false;
        const stop = worker.terminate().then(() => (exited = true));
        for (let i = 0; i < 40 && !exited; i++) {
          unblockFifos(caseDir);
          await Promise.race([stop, new Promise((r) => setTimeout(r, 250).unref())]);
        }
        if (!exited) worker.unref();
        fs.rmSync(caseDir || path.join(job.caseRoot, 'none'), { recursive: true, force: true });
        finish(next);
      })();
    }, 200);
    worker.on('message', (m: FromWorker) => {
      beat = Date.now();
      if (m.type === 'ready') phase = 'running';
      else if (m.type === 'start') started = m;
      else if (m.type === 'result') {
        const r = m.result;
        if (r.status === 'finding') {
          saveInput(r, job.mode);
          fs.rmSync(r.caseDir, { recursive: true, force: true });
        }
        results.push(r);
        started = null;
      } else if (m.type === 'stray') {
        const of = results.find((x) => x.pos === m.pos);
        const r: CaseResult = { pos: m.pos, reader: of?.reader ?? started?.reader ?? '', index: of?.index ?? started?.index ?? -1, desc: of?.desc ?? started?.desc ?? '', target: '', caseDir: '', status: 'finding', kind: 'unhandled rejection', name: m.name, message: m.message, stack: m.stack, ms: 0 };
        results.push(r);
      } else if (m.type === 'fatal') {
        fail('harness error', 'Error', m.message);
        finish(null);
      } else if (m.type === 'end') {
        finish(null);
        void worker.terminate();
      }
    });
    worker.on('error', (e: Error & { code?: string }) => {
      if (killing) return;
      const oom = e.code === 'ERR_WORKER_OUT_OF_MEMORY';
      finish(fail(oom ? 'out of memory' : 'worker crash', e.name, oom ? `the worker ran out of its ${HEAP_MB} MB heap: ${e.message}` : e.message, `${e.stack ?? ''}\n${stderr}`));
    });
    worker.on('exit', (code) => {
      if (!done && !killing) finish(fail('worker crash', 'Exit', `the worker exited with code ${code}`, stderr));
    });
  });
}

/** Groups findings by kind, exception and the first trainer/ frame of the stack, for a readable report. */
export function groupFindings(results: CaseResult[]): Map<string, CaseResult[]> {
  const groups = new Map<string, CaseResult[]>();
  for (const r of results) {
    if (r.status !== 'finding') continue;
    const atLine = (r.stack ?? '').split('\n').find((l) => /^\s+at .*\/trainer\//.test(l) && l.length < 400) ?? '';
    const frame = /([^\s(]*\/trainer\/[^\s():]+):(\d+)/.exec(atLine);
    const where = frame ? `${path.relative(REPO, frame[1]).replace(/^.*?(trainer\/)/, '$1')}:${frame[2]}` : '';
    const key = [r.kind, r.kind === 'exception' ? r.name : '', where || r.message?.replace(/\d+/g, 'N').slice(0, 60)].filter(Boolean).join(' | ');
    const g = groups.get(key) ?? [];
    g.push(r);
    groups.set(key, g);
  }
  return groups;
}

export function formatFindings(reader: string, results: CaseResult[]): string {
  const groups = groupFindings(results);
  const lines = [`${reader}: ${[...groups.values()].reduce((n, g) => n + g.length, 0)} finding(s) in ${results.length} inputs (seed ${SEED}), ${groups.size} distinct:`];
  for (const [key, g] of groups) {
    const first = g.reduce((a, b) => (a.desc.length <= b.desc.length ? a : b));
    lines.push(`  ● ${key}  ×${g.length}`);
    lines.push(`      input ${first.index}: ${first.desc.slice(0, 200)}`);
    lines.push(`      ${first.name ?? ''}: ${(first.message ?? '').split('\n')[0].slice(0, 300)}`);
    if (first.savedAt) lines.push(`      kept in ${first.savedAt}/ (finding.txt has the stack and the replay command)`);
    const stack = (first.stack ?? '').split('\n').filter((l) => /^\s+at /.test(l)).slice(0, 4);
    for (const l of stack) lines.push(`      ${l.trim()}`);
  }
  return lines.join('\n');
}
