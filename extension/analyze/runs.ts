/**
 * Run folders for "Compare Runs", without vscode: a run folder is one that holds metrics.jsonl (the trainer
 * appends every event there). From it come the train-loss and eval curves (a resumed run's later part replaces
 * what followed its checkpoint, as the dashboard draws it), and the run config: the one the trainer recorded in
 * the latest checkpoint (checkpoint-N/run_config.json, fields resolved and defaults filled in), else a
 * lora-run.json whose training.output_dir is that folder. diffConfigs lists the fields whose values differ.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TrainEvent } from '../../trainer/protocol';
import type { CompareRun, ConfigDiffRow, XY } from '../../webview/protocol';
import { outputDirOf, parseConfigText, readMetrics, type Json } from '../runFiles';

/** eval metrics that are timings, not quality (as the dashboard leaves them out) */
const EVAL_TIMINGS = new Set(['eval_runtime', 'eval_samples_per_second', 'eval_steps_per_second']);
/** fields that say nothing about the run */
const IGNORED_FIELDS = new Set(['$schema']);

export function isRunFolder(dir: string): boolean {
  try {
    return fs.statSync(path.join(dir, 'metrics.jsonl')).isFile();
  } catch {
    return false;
  }
}

class Curve {
  readonly x: number[] = [];
  readonly y: number[] = [];
  add(x: number, y: number): void {
    if (!Number.isFinite(x) || !Number.isFinite(y)) return;
    // a later point at or before the last one (a resumed run re-doing steps) replaces what came after
    while (this.x.length && this.x[this.x.length - 1] >= x) {
      this.x.pop();
      this.y.pop();
    }
    this.x.push(x);
    this.y.push(y);
  }
  truncateAfter(step: number): void {
    while (this.x.length && this.x[this.x.length - 1] > step) {
      this.x.pop();
      this.y.pop();
    }
  }
  get xy(): XY {
    return [this.x, this.y];
  }
}

/** The loss and eval curves of a run's events, in step order. */
export function runCurves(events: readonly TrainEvent[]): { loss: XY; evals: Record<string, XY> } {
  const loss = new Curve();
  const evals = new Map<string, Curve>();
  for (const e of events) {
    if (e.event === 'start' && e.global_step > 0) {
      loss.truncateAfter(e.global_step);
      for (const c of evals.values()) c.truncateAfter(e.global_step);
    } else if (e.event === 'start') {
      loss.truncateAfter(0);
      for (const c of evals.values()) c.truncateAfter(0);
    } else if (e.event === 'step') {
      loss.add(e.step, e.loss);
    } else if (e.event === 'eval' && e.metrics && typeof e.metrics === 'object') {
      for (const [k, v] of Object.entries(e.metrics)) {
        if (EVAL_TIMINGS.has(k) || typeof v !== 'number') continue;
        if (!evals.has(k)) evals.set(k, new Curve());
        evals.get(k)!.add(e.step, v);
      }
    }
  }
  return { loss: loss.xy, evals: Object.fromEntries([...evals].filter(([, c]) => c.x.length > 0).map(([k, c]) => [k, c.xy])) };
}

/** Names for the legend: the folder's name, with as much of its parent path as it takes to tell them apart. */
export function runNames(dirs: readonly string[]): string[] {
  const parts = dirs.map((d) => path.resolve(d).split(path.sep).filter(Boolean));
  for (let depth = 1; ; depth++) {
    const names = parts.map((p) => p.slice(-depth).join('/'));
    if (new Set(names).size === names.length || parts.every((p) => depth >= p.length)) return names;
  }
}

export function readRun(dir: string, name = path.basename(dir)): CompareRun {
  return { name, dir, ...runCurves(readMetrics(dir)) };
}

function readJsonObject(file: string): Json | undefined {
  try {
    return parseConfigText(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/** checkpoint-N/run_config.json of the latest checkpoint that has one. */
export function recordedRunConfig(dir: string): { file: string; config: Json } | undefined {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => /^checkpoint-\d+$/.test(n));
  } catch {
    return undefined;
  }
  names.sort((a, b) => Number(b.slice(11)) - Number(a.slice(11)));
  for (const n of names) {
    const file = path.join(dir, n, 'run_config.json');
    const config = readJsonObject(file);
    if (config) return { file, config };
  }
  return undefined;
}

/** The run config of a run folder: the recorded one, else the first of `configFiles` whose output_dir it is. */
export function runConfigOf(dir: string, configFiles: readonly string[]): { file: string; config: Json } | undefined {
  const recorded = recordedRunConfig(dir);
  if (recorded) return recorded;
  const target = path.resolve(dir);
  for (const file of configFiles) {
    const config = readJsonObject(file);
    if (config && outputDirOf(file, config) === target) return { file, config };
  }
  return undefined;
}

/** Dotted paths to the JSON of each leaf (arrays are leaves: target_modules is one value). */
export function flattenConfig(obj: Json, prefix = '', out = new Map<string, string>()): Map<string, string> {
  for (const [k, v] of Object.entries(obj)) {
    const p = prefix ? `${prefix}.${k}` : k;
    if (IGNORED_FIELDS.has(p)) continue;
    if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) flattenConfig(v as Json, p, out);
    else out.set(p, JSON.stringify(v));
  }
  return out;
}

/**
 * The fields whose values are not the same in every config (a field missing in one counts as different), in
 * the order they first appear. A run with no config (undefined) has null everywhere and is left out of the
 * comparison; with fewer than two configs nothing differs.
 */
export function diffConfigs(configs: ReadonlyArray<Json | undefined>): ConfigDiffRow[] {
  const flat = configs.map((c) => (c ? flattenConfig(c) : undefined));
  const known = flat.filter((f): f is Map<string, string> => f !== undefined);
  if (known.length < 2) return [];
  const paths: string[] = [];
  const seen = new Set<string>();
  for (const f of known) {
    for (const p of f.keys()) {
      if (seen.has(p)) continue;
      seen.add(p);
      paths.push(p);
    }
  }
  const rows: ConfigDiffRow[] = [];
  for (const p of paths) {
    const values = flat.map((f) => (f ? f.get(p) ?? null : null));
    const ofKnown = flat.map((f, i) => (f ? values[i] : undefined)).filter((v) => v !== undefined);
    if (new Set(ofKnown).size > 1) rows.push({ path: p, values });
  }
  return rows;
}
