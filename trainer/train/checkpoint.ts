/**
 * Checkpoints in transformers' layout: `output_dir/checkpoint-<step>/` with the adapter (PEFT format),
 * `optimizer.safetensors` (AdamW moments), `rng_state.json`, and `trainer_state.json`
 * (log_history, best_model_checkpoint…). A checkpoint is built in a temporary folder and renamed into
 * place, so a crash mid-write leaves the previous checkpoints whole; pruning happens only after that.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { LoraStudioError, preview } from '../errors';
import { MAX_STEPS } from '../config/schema';
import { readJsonFile } from '../io/json';
import { removeStaleTemps, writeDirAtomic, writeJsonAtomic } from '../io/atomic';
import { type HostTensor, readSafetensors, tensorToF32, writeSafetensors } from '../io/safetensors';
import { loadAdapter, saveAdapter } from '../lora/adapter_io';
import type { AdapterWeights } from '../lora/types';

export const CHECKPOINT_PREFIX = 'checkpoint-';

/** transformers' TrainerState, as written to trainer_state.json */
export interface TrainerState {
  global_step: number;
  epoch: number;
  max_steps: number;
  num_train_epochs: number;
  logging_steps: number;
  eval_steps: number | null;
  save_steps: number | null;
  train_batch_size: number;
  best_metric: number | null;
  best_model_checkpoint: string | null;
  log_history: Array<Record<string, number>>;
  num_input_tokens_seen: number;
  total_flos: number;
  is_local_process_zero: true;
  is_world_process_zero: true;
  is_hyper_param_search: false;
  trial_name: null;
  trial_params: null;
}

export interface RngState {
  /** the run's seed; data order and dropout masks derive from (seed, epoch, step) */
  seed: number;
  global_step: number;
  epoch: number;
  backend: string;
}

export interface CheckpointContents {
  adapter: AdapterWeights;
  optimizer: { tensors: Map<string, HostTensor>; metadata: Record<string, string> };
  rng: RngState;
  state: TrainerState;
}

export function checkpointDir(outputDir: string, step: number): string {
  return path.join(outputDir, `${CHECKPOINT_PREFIX}${step}`);
}

/** Existing checkpoints of a run, oldest first (by step number, as transformers sorts them). */
export function listCheckpoints(outputDir: string): Array<{ step: number; dir: string }> {
  if (!fs.existsSync(outputDir)) return [];
  return fs
    .readdirSync(outputDir)
    .map((name) => /^checkpoint-(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null && fs.existsSync(path.join(outputDir, m[0], 'trainer_state.json')))
    .map((m) => ({ step: Number(m[1]), dir: path.join(outputDir, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

const OUTPUT_DIR = { field: 'training.output_dir' };

export function saveCheckpoint(outputDir: string, c: CheckpointContents, runConfig: unknown): string {
  const dir = checkpointDir(outputDir, c.state.global_step);
  try {
    return saveCheckpointIn(dir, c, runConfig);
  } catch (e) {
    if (e instanceof LoraStudioError && /ENOSPC|EDQUOT/.test(e.message)) {
      const prev = listCheckpoints(outputDir).filter((k) => k.dir !== dir).at(-1);
      throw new LoraStudioError(
        `cannot save ${path.basename(dir)}: the disk is full. ${prev ? `The previous checkpoint, ${prev.dir}, is intact` : 'No earlier checkpoint was lost'}` +
          '; free some space, then run again with --resume (training.resume_from_checkpoint: true) to continue from it',
        e.file ?? dir,
        'training.output_dir',
      );
    }
    throw e;
  }
}

function saveCheckpointIn(dir: string, c: CheckpointContents, runConfig: unknown): string {
  const build = (tmp: string) => {
    saveAdapter(tmp, c.adapter);
    faultInjectionPause(tmp);
    writeSafetensors(path.join(tmp, 'optimizer.safetensors'), c.optimizer.tensors, c.optimizer.metadata);
    writeJsonAtomic(path.join(tmp, 'rng_state.json'), c.rng);
    writeJsonAtomic(path.join(tmp, 'run_config.json'), runConfig);
    // last, so that a folder with trainer_state.json is complete
    writeJsonAtomic(path.join(tmp, 'trainer_state.json'), c.state);
  };
  if (!fs.existsSync(dir)) {
    writeDirAtomic(dir, build, OUTPUT_DIR);
    return dir;
  }
  // The same step saved again (a stop right after a save, or a resumed run): swap it in whole.
  const aside = `${dir}.old-${process.pid}`;
  const fresh = `${dir}.new-${process.pid}`;
  writeDirAtomic(fresh, build, OUTPUT_DIR);
  fs.renameSync(dir, aside);
  fs.renameSync(fresh, dir);
  fs.rmSync(aside, { recursive: true, force: true });
  return dir;
}

const SWAP_NAME = /^(checkpoint-\d+)\.(old|new)-(\d+)$/;

/**
 * Before a run uses `outputDir`: removes the temporary files and folders a killed run left (atomic.ts's
 * pattern), and finishes or undoes a checkpoint swap it was killed in the middle of (saveCheckpointIn's
 * `.old-PID` / `.new-PID`), so that no checkpoint is lost. Returns one line per thing done, for the log.
 */
export function cleanOutputDir(outputDir: string): string[] {
  const done = removeStaleTemps(outputDir).map((p) => `removed ${p}, left by a run that was killed while writing it`);
  let names: string[];
  try {
    names = fs.readdirSync(outputDir);
  } catch {
    return done;
  }
  for (const name of names) {
    const m = SWAP_NAME.exec(name);
    if (!m || Number(m[3]) === process.pid) continue;
    try {
      process.kill(Number(m[3]), 0);
      continue; // its writer is still running
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EPERM') continue;
    }
    const full = path.join(outputDir, name);
    const target = path.join(outputDir, m[1]);
    if (!fs.existsSync(target) && fs.existsSync(path.join(full, 'trainer_state.json'))) {
      fs.renameSync(full, target);
      done.push(`restored ${target} from ${full}, left by a run that was killed while replacing it`);
    } else {
      fs.rmSync(full, { recursive: true, force: true });
      done.push(`removed ${full}, left by a run that was killed while replacing ${target}`);
    }
  }
  return done;
}

/**
 * Tests only: with LORA_STUDIO_FAULT_CHECKPOINT_DELAY_MS set, a checkpoint write pauses half-way (the adapter
 * written, the rest not) and says so on stderr, so a test can SIGKILL the process mid-write.
 */
function faultInjectionPause(tmp: string): void {
  const ms = Number(process.env.LORA_STUDIO_FAULT_CHECKPOINT_DELAY_MS ?? 0);
  if (!(ms > 0)) return;
  process.stderr.write(`lora-studio: fault injection: checkpoint write paused in ${tmp}\n`);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// ---- what resume trusts, checked ----

const count = (max = MAX_STEPS) => z.number({ error: `must be an integer from 0 to ${max}` }).int({ error: `must be an integer from 0 to ${max}` }).min(0).max(max);
const finite = (what = 'a finite number >= 0') => z.number({ error: `must be ${what}` }).min(0, { error: `must be ${what}` }).refine(Number.isFinite, { error: `must be ${what}` });

/** trainer_state.json: the fields resume reads; others (transformers writes more) pass through. */
export const TrainerStateSchema = z.looseObject({
  global_step: count(),
  epoch: finite(),
  best_metric: z.number({ error: 'must be a number or null' }).nullable().default(null),
  best_model_checkpoint: z.string({ error: 'must be a checkpoint folder path or null' }).min(1, { error: 'must be a checkpoint folder path or null' }).nullable().default(null),
  log_history: z.array(z.record(z.string(), z.number({ error: 'must be a number' })), { error: 'must be a list of objects of numbers' }).max(10_000_000),
  num_input_tokens_seen: count(Number.MAX_SAFE_INTEGER).default(0),
  total_flos: finite().default(0),
});

export const RngStateSchema = z.looseObject({
  seed: count(2 ** 32 - 1),
  global_step: count(),
  epoch: finite(),
  backend: z.string({ error: 'must be a string' }),
});

/** A zod failure as a LoraStudioError naming the file and the JSON path of the first problem. */
export function zodFailure(error: z.ZodError, file: string, raw: unknown): LoraStudioError {
  const issue = error.issues[0];
  let field = '';
  let value: unknown = raw;
  for (const k of issue.path) {
    field += typeof k === 'number' ? `[${k}]` : field ? `.${String(k).slice(0, 60)}` : String(k).slice(0, 60);
    value = value !== null && typeof value === 'object' && Object.prototype.hasOwnProperty.call(value, k) ? (value as Record<PropertyKey, unknown>)[k] : undefined;
  }
  const got = value === undefined ? 'missing' : `got ${preview(value)}`;
  return new LoraStudioError(`${issue.message} (${got})`, file, field || '(top level)');
}

/** The checkpoint files' JSON, parsed and validated. */
function readValidated<T>(file: string, schema: z.ZodType<T>): T {
  const raw = readJsonFile(file, { maxBytes: 256 * 1024 ** 2 });
  const r = schema.safeParse(raw);
  if (!r.success) throw zodFailure(r.error, file, raw);
  return r.data;
}

/**
 * Reads a checkpoint for resuming. Every file is validated, and the state must agree with itself and with the
 * run: global_step the same in trainer_state.json and rng_state.json, and best_model_checkpoint a folder inside
 * `outputDir` (when given) or null.
 */
export function loadCheckpoint(dir: string, outputDir?: string): CheckpointContents {
  const stateFile = path.join(dir, 'trainer_state.json');
  if (!fs.existsSync(stateFile)) throw new LoraStudioError('not a checkpoint: trainer_state.json is missing', dir, 'resume_from_checkpoint');
  const parsed = readValidated(stateFile, TrainerStateSchema);
  const state = parsed as unknown as TrainerState;
  const rngFile = path.join(dir, 'rng_state.json');
  const rng = readValidated(rngFile, RngStateSchema) as RngState;
  if (rng.global_step !== state.global_step) {
    throw new LoraStudioError(`is ${rng.global_step}, but trainer_state.json says ${state.global_step}: the checkpoint's files disagree`, rngFile, 'global_step');
  }
  const best = state.best_model_checkpoint;
  if (best !== null && outputDir !== undefined) {
    // transformers writes it relative to its working directory; ours is absolute. Either way: output_dir/checkpoint-N.
    const name = path.basename(best);
    const outside = path.isAbsolute(best) && path.resolve(path.dirname(best)) !== path.resolve(outputDir);
    if (!/^checkpoint-\d+$/.test(name) || outside) {
      throw new LoraStudioError(`${preview(best)} is not a checkpoint folder inside output_dir (${outputDir})`, stateFile, 'best_model_checkpoint');
    }
    state.best_model_checkpoint = path.join(outputDir, name);
  }
  const st = readSafetensors(path.join(dir, 'optimizer.safetensors'));
  const tensors = new Map<string, HostTensor>();
  for (const name of st.entries.keys()) tensors.set(name, tensorToF32(st, name));
  return { adapter: loadAdapter(dir), optimizer: { tensors, metadata: st.metadata }, rng, state };
}

/**
 * Keeps at most `limit` checkpoints, deleting the oldest first but never the best one
 * (transformers' rotation). Called only after the newest checkpoint is complete.
 */
export function pruneCheckpoints(outputDir: string, limit: number | null, best: string | null): string[] {
  if (!limit || limit <= 0) return [];
  const all = listCheckpoints(outputDir);
  if (all.length === 0) return [];
  const isBest = (dir: string) => best !== null && path.resolve(dir) === path.resolve(best);
  // With a limit of 1, the best and the newest are both kept when they differ, as transformers does.
  const keep = limit === 1 && best !== null && !isBest(all[all.length - 1].dir) ? 2 : limit;
  const candidates = all.filter((c) => !isBest(c.dir));
  const removed: string[] = [];
  for (const c of candidates.slice(0, Math.max(0, all.length - keep))) {
    fs.rmSync(c.dir, { recursive: true, force: true });
    removed.push(c.dir);
  }
  return removed;
}
