/**
 * The training loop: AdamW over the LoRA parameters, LR schedule, gradient accumulation and clipping,
 * evaluation and checkpoints by strategy, best-model tracking, resume, and a clean stop.
 * It reports only through `onEvent`; it knows nothing about who listens (CLI, metrics file, extension).
 *
 * Determinism: the data order of epoch e comes from Rng(seed, e), and each micro-batch's dropout seed
 * from (seed, global_step, micro-batch), so a resumed run replays exactly what the uninterrupted run does.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { DoneEvent, TrainEvent } from '../protocol';
import type { RunConfig } from '../config/run_config';
import { LoraStudioError, markReported } from '../errors';
import { collate, type Example } from '../data/collate';
import { Rng } from '../util/rng';
import { AdamW, decayParameterNames } from '../train/optimizer';
import { learningRateAt, warmupSteps } from './schedule';
import { clipByGlobalNorm } from './clip';
import { evaluate } from '../eval';
import { type TrainerState, checkpointDir, cleanOutputDir, listCheckpoints, loadCheckpoint, pruneCheckpoints, saveCheckpoint } from './checkpoint';
import { openTrainingSession, type TrainingSession } from './session';
import { loadAdapter, saveAdapter } from '../lora/adapter_io';
import { fsFailure, writeJsonAtomic } from '../io/atomic';
import { MAX_STEPS } from '../config/schema';
import { metricsAppender } from './metrics';
import { DataParallel, plannedWorkers } from '../parallel/pool';
import { existingRunMessage } from './existing_run';

export interface TrainOptions {
  onEvent: (e: TrainEvent) => void;
  /** aborting stops after the current optimizer step, saves a checkpoint, and resolves with stopped: true */
  signal?: AbortSignal;
  /** overrides the config's training.backend */
  backend?: string;
  /** the run config file, named in errors */
  configFile?: string;
}

/** Seeds from (seed, a, b) that stay in int32 range; one formula for data order and dropout. */
export function mixSeed(seed: number, a: number, b = 0): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const v of [a, b]) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
  }
  return h & 0x7fffffff;
}

export function epochOrder(n: number, seed: number, epoch: number): number[] {
  return new Rng(mixSeed(seed, 1_000_003, epoch)).shuffle(Array.from({ length: n }, (_, i) => i));
}

export async function train(cfg: RunConfig, opts: TrainOptions): Promise<DoneEvent> {
  const t = cfg.training;
  const outputDir = t.output_dir;
  let append: ((e: TrainEvent) => void) | null = null;
  let appendFailed = false;
  const emit = (e: TrainEvent) => {
    try {
      append?.(e);
    } catch (err) {
      // metrics.jsonl is a copy of the event stream: losing it must not lose the run (a full disk is reported by the checkpoint write)
      if (!appendFailed) opts.onEvent({ event: 'log', level: 'warning', message: `cannot append to ${path.join(outputDir, 'metrics.jsonl')}: ${(err as Error).message}` });
      appendFailed = true;
    }
    opts.onEvent(e);
  };
  try {
    prepareOutputDir(outputDir);
    append = metricsAppender(outputDir);
    for (const line of cleanOutputDir(outputDir)) emit({ event: 'log', level: 'info', message: line });
    const done = await trainInner(cfg, { ...opts, onEvent: emit });
    emit(done);
    return done;
  } catch (e) {
    const err = e instanceof LoraStudioError ? e : null;
    emit({ event: 'error', message: err ? err.message : (e as Error)?.message ?? String(e), file: err?.file, field: err?.field });
    markReported(e);
    throw e;
  }
}

/**
 * output_dir exists as a folder we may write to, or is created; otherwise a LoraStudioError naming it and
 * training.output_dir (a file in its place, a read-only folder, a full disk), before anything else is done.
 */
export function prepareOutputDir(outputDir: string): void {
  const where = { field: 'training.output_dir' };
  try {
    if (fs.existsSync(outputDir) && !fs.statSync(outputDir).isDirectory()) {
      throw new LoraStudioError('exists and is a file, not a folder; remove it or choose another output_dir', outputDir, where.field);
    }
    fs.mkdirSync(outputDir, { recursive: true });
    fs.accessSync(outputDir, fs.constants.W_OK);
  } catch (e) {
    throw fsFailure(e, outputDir, where);
  }
}

async function trainInner(cfg: RunConfig, opts: TrainOptions): Promise<DoneEvent> {
  const t = cfg.training;
  const outputDir = t.output_dir;
  const emit = opts.onEvent;
  const resumeDir = resolveResume(cfg);
  if (!resumeDir && listCheckpoints(outputDir).length > 0) {
    throw new LoraStudioError(existingRunMessage(outputDir), outputDir, 'training.output_dir');
  }
  const s = await openTrainingSession(cfg, {
    configFile: opts.configFile, backend: opts.backend,
    onWarning: (message: string) => emit({ event: 'log', level: 'warning', message }),
    onInfo: (message: string) => emit({ event: 'log', level: 'info', message }),
  });
  try {
    return await runLoop(cfg, s, resumeDir, opts);
  } finally {
    await closeDataParallel(s);
    s.model.dispose();
  }
}

function resolveResume(cfg: RunConfig): string | null {
  const r = cfg.training.resume_from_checkpoint;
  if (r === null || r === false || r === undefined) return null;
  if (r === true) {
    const all = listCheckpoints(cfg.training.output_dir);
    if (all.length === 0) throw new LoraStudioError('resume_from_checkpoint is true but output_dir holds no checkpoint', cfg.training.output_dir, 'training.resume_from_checkpoint');
    return all[all.length - 1].dir;
  }
  if (!fs.existsSync(path.join(r, 'trainer_state.json'))) throw new LoraStudioError('not a checkpoint folder (no trainer_state.json)', r, 'training.resume_from_checkpoint');
  return r;
}

async function runLoop(cfg: RunConfig, s: TrainingSession, resumeDir: string | null, opts: TrainOptions): Promise<DoneEvent> {
  const t = cfg.training;
  const emit = (e: TrainEvent) => opts.onEvent(e);
  const train = s.data.train;
  const bs = t.per_device_train_batch_size;
  const gas = t.gradient_accumulation_steps;
  const numBatches = t.dataloader_drop_last ? Math.floor(train.length / bs) : Math.ceil(train.length / bs);
  if (numBatches === 0) throw new LoraStudioError(`the training set has ${train.length} examples, fewer than one batch of ${bs}`, cfg.data.train, 'training.per_device_train_batch_size');
  const stepsPerEpoch = Math.ceil(numBatches / gas);
  const totalSteps = t.max_steps > 0 ? t.max_steps : Math.ceil(stepsPerEpoch * t.num_train_epochs);
  if (totalSteps > MAX_STEPS) {
    throw new LoraStudioError(`gives ${totalSteps} optimizer steps (${stepsPerEpoch} per epoch), more than ${MAX_STEPS}; lower num_train_epochs or set max_steps`, opts.configFile, 'training.num_train_epochs');
  }
  if (t.eval_on_start && s.data.eval.length === 0) {
    throw new LoraStudioError('needs evaluation data: set data.eval or data.eval_split', opts.configFile, 'training.eval_on_start');
  }
  const numWarmup = warmupSteps(t.warmup_ratio, t.warmup_steps ?? 0, totalSteps);
  const lrAt = (step: number) => learningRateAt(step, { type: t.lr_scheduler_type, learning_rate: t.learning_rate, num_training_steps: totalSteps, num_warmup_steps: numWarmup });
  const evalSteps = t.eval_strategy === 'steps' ? t.eval_steps ?? t.logging_steps : null;
  const saveSteps = t.save_strategy === 'steps' ? t.save_steps : null;
  const bestKey = t.metric_for_best_model ? (t.metric_for_best_model.startsWith('eval_') ? t.metric_for_best_model : `eval_${t.metric_for_best_model}`) : null;
  const greaterIsBetter = t.greater_is_better ?? !(bestKey ?? 'loss').endsWith('loss');

  const names = [...s.model.trainable.keys()];
  const optimizer = new AdamW(s.model.trainable, {
    beta1: t.adam_beta1, beta2: t.adam_beta2, eps: t.adam_epsilon, weight_decay: t.weight_decay, decay: decayParameterNames(names),
  });

  const state: TrainerState = {
    global_step: 0, epoch: 0, max_steps: totalSteps, num_train_epochs: Math.ceil(totalSteps / stepsPerEpoch),
    logging_steps: t.logging_steps, eval_steps: evalSteps, save_steps: saveSteps, train_batch_size: bs,
    best_metric: null, best_model_checkpoint: null, log_history: [], num_input_tokens_seen: 0, total_flos: 0,
    is_local_process_zero: true, is_world_process_zero: true, is_hyper_param_search: false, trial_name: null, trial_params: null,
  };
  if (resumeDir) {
    const ck = loadCheckpoint(resumeDir, t.output_dir);
    if (ck.state.global_step > totalSteps) {
      throw new LoraStudioError(
        `is ${ck.state.global_step}, beyond this run's ${totalSteps} steps: the checkpoint is past the end; raise num_train_epochs or max_steps, or resume another checkpoint`,
        path.join(resumeDir, 'trainer_state.json'), 'global_step');
    }
    s.model.loadAdapter(ck.adapter);
    optimizer.importState(ck.optimizer.tensors, ck.optimizer.metadata, path.join(resumeDir, 'optimizer.safetensors'));
    // the fields resume continues from, one by one (never the file's other keys)
    const { global_step, epoch, best_metric, best_model_checkpoint, log_history, num_input_tokens_seen, total_flos } = ck.state;
    Object.assign(state, { global_step, epoch, best_metric, best_model_checkpoint, log_history, num_input_tokens_seen, total_flos });
    if (ck.rng.seed !== t.seed) emit({ event: 'log', level: 'warning', message: `resuming with seed ${t.seed}, but the checkpoint was made with seed ${ck.rng.seed}: the data order will differ` });
    emit({ event: 'log', level: 'info', message: `resumed from ${resumeDir} at step ${state.global_step}` });
  }

  emit({
    event: 'start', backend: s.backend.backend, gpu: s.backend.gpu, ...(s.backend.adapter ? { adapter: s.backend.adapter } : {}), task: cfg.task, model: cfg.model, output_dir: t.output_dir,
    trainable_params: s.counts.trainable_params, all_params: s.counts.all_params, total_steps: totalSteps,
    num_train_epochs: state.num_train_epochs, global_step: state.global_step,
  });

  const epochOf = (step: number) => step / stepsPerEpoch;
  const runEval = async () => {
    const started = Date.now();
    const m = await evaluate(s.model, s.data.eval, { batch_size: t.per_device_eval_batch_size, pad_token_id: s.pad_token_id });
    const metrics: Record<string, number> = {};
    for (const [k, v] of Object.entries(m)) if (typeof v === 'number' && !k.startsWith('num_')) metrics[`eval_${k}`] = v;
    const runtime = (Date.now() - started) / 1000;
    metrics.eval_runtime = runtime;
    metrics.eval_samples_per_second = s.data.eval.length / Math.max(runtime, 1e-9);
    const epoch = epochOf(state.global_step);
    state.log_history.push({ ...metrics, epoch, step: state.global_step });
    emit({ event: 'eval', step: state.global_step, epoch, metrics });
    return metrics;
  };
  const save = async (metrics: Record<string, number> | null) => {
    const dir = checkpointDir(t.output_dir, state.global_step);
    if (metrics && bestKey && bestKey in metrics) {
      const v = metrics[bestKey];
      if (state.best_metric === null || (greaterIsBetter ? v > state.best_metric : v < state.best_metric)) {
        state.best_metric = v;
        state.best_model_checkpoint = dir;
      }
    }
    state.epoch = epochOf(state.global_step);
    saveCheckpoint(t.output_dir, {
      adapter: await s.exportAdapter(dir),
      optimizer: await optimizer.exportState(),
      rng: { seed: t.seed, global_step: state.global_step, epoch: state.epoch, backend: s.backend.backend },
      state,
    }, cfg);
    emit({ event: 'checkpoint', step: state.global_step, path: dir });
    pruneCheckpoints(t.output_dir, t.save_total_limit, state.best_model_checkpoint);
  };

  const trainStarted = Date.now();
  let stepTimes = 0;
  let stepsTimed = 0;
  let lossSinceLog = 0;
  let stepsSinceLog = 0;
  let lastEval: Record<string, number> | null = null;
  let lastEvalStep = -1;
  let stopped = false;
  const startStep = state.global_step;
  let sessionLoss = 0;
  const logLoss = (lr: number, gradNorm: number) => {
    if (stepsSinceLog === 0) return;
    state.log_history.push({ epoch: epochOf(state.global_step), grad_norm: gradNorm, learning_rate: lr, loss: lossSinceLog / stepsSinceLog, step: state.global_step });
    lossSinceLog = 0;
    stepsSinceLog = 0;
  };
  // transformers' eval_on_start: one evaluation before the first step (logged at the step it starts from)
  if (t.eval_on_start) await runEval();

  outer: for (let epoch = Math.floor(state.global_step / stepsPerEpoch); state.global_step < totalSteps; epoch++) {
    const order = epochOrder(train.length, t.seed, epoch);
    const firstUpdate = state.global_step - epoch * stepsPerEpoch;
    for (let u = firstUpdate; u < stepsPerEpoch && state.global_step < totalSteps; u++) {
      // a monotonic clock with sub-millisecond resolution: steps of small models take a few milliseconds, and
      // Date.now()'s whole milliseconds made tokens/s jump by a factor of 2–3 from one step to the next
      const started = performance.now();
      const micro: Example[][] = [];
      for (let b = u * gas; b < Math.min((u + 1) * gas, numBatches); b++) micro.push(order.slice(b * bs, (b + 1) * bs).map((i) => train[i]));
      const lr = lrAt(state.global_step);
      const { loss, tokens } = await accumulateGradients(s, micro, t.seed, state.global_step, optimizer, t.max_grad_norm, lr);
      state.global_step++;
      state.num_input_tokens_seen += tokens;
      const dt = Math.max((performance.now() - started) / 1000, 1e-6);
      stepTimes += dt;
      stepsTimed++;
      lossSinceLog += loss.value;
      stepsSinceLog++;
      sessionLoss += loss.value;
      const samples = micro.reduce((a, m) => a + m.length, 0);
      emit({
        event: 'step', step: state.global_step, epoch: epochOf(state.global_step), loss: loss.value, learning_rate: lr,
        grad_norm: loss.grad_norm, tokens_per_second: tokens / dt, samples_per_second: samples / dt,
        rss_mb: Math.round(process.memoryUsage().rss / 2 ** 20), eta_s: (stepTimes / stepsTimed) * (totalSteps - state.global_step),
      });
      const endOfEpoch = u === stepsPerEpoch - 1;
      // logging_strategy, as transformers: "steps" every logging_steps, "epoch" at each epoch's end, "no" never
      if ((t.logging_strategy === 'steps' && state.global_step % t.logging_steps === 0) || (t.logging_strategy === 'epoch' && endOfEpoch)) logLoss(lr, loss.grad_norm);
      lastEval = null;
      if ((evalSteps && state.global_step % evalSteps === 0) || (t.eval_strategy === 'epoch' && endOfEpoch)) {
        lastEval = await runEval();
        lastEvalStep = state.global_step;
      }
      const saved = (saveSteps && state.global_step % saveSteps === 0) || (t.save_strategy === 'epoch' && endOfEpoch);
      if (saved) await save(lastEval);
      // Let signal handlers and IPC messages run between steps.
      await new Promise((r) => setImmediate(r));
      if (opts.signal?.aborted && state.global_step < totalSteps) {
        if (!saved) await save(lastEval);
        stopped = true;
        break outer;
      }
    }
  }

  if (!stopped) {
    // A run that ends between evaluations gets a final one, so the last numbers are on record.
    if (t.eval_strategy !== 'no' && lastEvalStep !== state.global_step) await runEval();
    const runtime = (Date.now() - trainStarted) / 1000;
    const done = state.global_step - startStep;
    state.log_history.push({
      epoch: epochOf(state.global_step), step: state.global_step, total_flos: 0, train_runtime: runtime,
      train_loss: meanTrainLoss(state.log_history, done > 0 ? sessionLoss / done : NaN), train_samples_per_second: (done * bs * gas) / Math.max(runtime, 1e-9),
      train_steps_per_second: done / Math.max(runtime, 1e-9),
    });
    state.epoch = epochOf(state.global_step);
    // The final (or best) adapter goes in output_dir itself.
    const best = t.load_best_model_at_end ? state.best_model_checkpoint : null;
    if (best && fs.existsSync(best)) {
      s.model.loadAdapter(loadAdapter(best)); // the adapter only: the optimizer state is not needed
      emit({ event: 'log', level: 'info', message: `loaded the best model from ${best} (${bestKey} = ${state.best_metric})` });
    }
    saveAdapter(t.output_dir, await s.exportAdapter());
    writeJsonAtomic(path.join(t.output_dir, 'trainer_state.json'), state);
  }
  return {
    event: 'done', best: state.best_model_checkpoint, best_metric: state.best_metric, output_dir: t.output_dir,
    global_step: state.global_step, stopped,
  };
}

/** The mean of the logged losses; without any (logging_strategy "no"), the mean over this session's steps. */
function meanTrainLoss(history: Array<Record<string, number>>, unlogged: number): number {
  const losses = history.filter((h) => Object.prototype.hasOwnProperty.call(h, 'loss')).map((h) => h.loss);
  return losses.length ? losses.reduce((a, b) => a + b, 0) / losses.length : unlogged;
}

/** The data-parallel workers of a session, started on its first step (see trainer/parallel/pool.ts). */
const parallel = new WeakMap<TrainingSession, Promise<DataParallel | null>>();

/** `rows`: the rows of the session's micro-batches (per_device_train_batch_size), which caps the threads. */
function dataParallelOf(s: TrainingSession, rows: number): Promise<DataParallel | null> {
  let p = parallel.get(s);
  if (!p) {
    const threads = plannedWorkers(s.model, s.backend.backend, rows);
    p = threads > 1 ? DataParallel.start(s.model, s.backend.backend, threads) : Promise.resolve(null);
    parallel.set(s, p);
  }
  return p;
}

async function closeDataParallel(s: TrainingSession): Promise<void> {
  const p = parallel.get(s);
  if (!p) return;
  parallel.delete(s);
  const dp = await p.catch(() => null);
  await dp?.close();
}

/**
 * One optimizer step: the mean of the micro-batches' gradients (each micro-batch loss is its own mean,
 * as transformers' Trainer does), clipped by global norm, then AdamW at learning rate `lr`.
 * With data-parallel workers, each micro-batch's gradient is computed in row shards across threads.
 */
async function accumulateGradients(
  s: TrainingSession, micro: Example[][], seed: number, step: number, optimizer: AdamW, maxGradNorm: number, lr: number,
): Promise<{ loss: { value: number; grad_norm: number }; tokens: number }> {
  const vars = [...s.model.trainable.values()];
  const keyOf = new Map([...s.model.trainable].map(([k, v]) => [v.name, k]));
  const dp = await dataParallelOf(s, Math.max(...micro.map((m) => m.length)));
  let sum: Map<string, tf.Tensor> | null = null;
  let lossSum = 0;
  let tokens = 0;
  for (let i = 0; i < micro.length; i++) {
    const batch = collate(micro[i], s.pad_token_id);
    tokens += batch.num_tokens;
    let grads: Map<string, tf.Tensor>;
    if (dp) {
      const r = await dp.lossAndGrads(batch, mixSeed(seed, step, i));
      lossSum += r.loss;
      grads = r.grads;
    } else {
      const r = tf.variableGrads(() => s.model.loss(batch, { training: true, seed: mixSeed(seed, step, i) }), vars);
      lossSum += (await r.value.data())[0];
      r.value.dispose();
      grads = new Map(Object.entries(r.grads).map(([name, g]) => [keyOf.get(name)!, g]));
    }
    const next = new Map<string, tf.Tensor>();
    for (const [key, g] of grads) {
      const prev = sum?.get(key);
      next.set(key, prev ? tf.tidy(() => tf.add(prev, g)) : g);
      if (prev) {
        prev.dispose();
        g.dispose();
      }
    }
    sum = next;
  }
  const n = micro.length;
  const mean = new Map<string, tf.Tensor>();
  for (const [k, g] of sum!) {
    mean.set(k, n === 1 ? g : tf.tidy(() => tf.div(g, n)));
    if (n !== 1) g.dispose();
  }
  const { grads, norm } = await clipByGlobalNorm(mean, maxGradNorm);
  optimizer.step(grads, lr);
  for (const g of grads.values()) g.dispose();
  for (const g of mean.values()) if (!g.isDisposed) g.dispose();
  return { loss: { value: lossSum / n, grad_norm: norm }, tokens };
}
