/**
 * Checkpoints in transformers' layout: `output_dir/checkpoint-<step>/` with the adapter (PEFT format),
 * `optimizer.safetensors` (AdamW moments), `rng_state.json`, and `trainer_state.json`
 * (log_history, best_model_checkpoint…). A checkpoint is built in a temporary folder and renamed into
 * place, so a crash mid-write leaves the previous checkpoints whole; pruning happens only after that.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoraStudioError } from '../errors';
import { writeDirAtomic, writeJsonAtomic } from '../io/atomic';
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

export function saveCheckpoint(outputDir: string, c: CheckpointContents, runConfig: unknown): string {
  const dir = checkpointDir(outputDir, c.state.global_step);
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
    writeDirAtomic(dir, build);
    return dir;
  }
  // The same step saved again (a stop right after a save, or a resumed run): swap it in whole.
  const aside = `${dir}.old-${process.pid}`;
  const fresh = `${dir}.new-${process.pid}`;
  writeDirAtomic(fresh, build);
  fs.renameSync(dir, aside);
  fs.renameSync(fresh, dir);
  fs.rmSync(aside, { recursive: true, force: true });
  return dir;
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

export function loadCheckpoint(dir: string): CheckpointContents {
  const stateFile = path.join(dir, 'trainer_state.json');
  if (!fs.existsSync(stateFile)) throw new LoraStudioError('not a checkpoint: trainer_state.json is missing', dir, 'resume_from_checkpoint');
  const state = readJson(stateFile) as TrainerState;
  const rng = readJson(path.join(dir, 'rng_state.json')) as RngState;
  const st = readSafetensors(path.join(dir, 'optimizer.safetensors'));
  const tensors = new Map<string, HostTensor>();
  for (const name of st.entries.keys()) tensors.set(name, tensorToF32(st, name));
  return { adapter: loadAdapter(dir), optimizer: { tensors, metadata: st.metadata }, rng, state };
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new LoraStudioError(`cannot read checkpoint file: ${(e as Error).message}`, file);
  }
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
