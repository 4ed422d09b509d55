/**
 * Learning-rate schedules with transformers' get_scheduler semantics (LambdaLR convention):
 * the rate used for optimizer step k (0-based) is learning_rate · lambda(k).
 */

import type { LrSchedulerType } from '../config/schema';

export type { LrSchedulerType };

export interface ScheduleOptions {
  type: LrSchedulerType;
  learning_rate: number;
  /** total optimizer steps of the run */
  num_training_steps: number;
  num_warmup_steps: number;
}

/** TrainingArguments.get_warmup_steps: warmup_steps > 0 wins, else ceil(warmup_ratio · total). */
export function warmupSteps(warmup_ratio: number, warmup_steps: number, total: number): number {
  return warmup_steps > 0 ? warmup_steps : Math.ceil(warmup_ratio * total);
}

/** The multiplier lambda(step) of the schedule. */
export function lrLambda(step: number, opts: Omit<ScheduleOptions, 'learning_rate'>): number {
  const { type, num_training_steps: total, num_warmup_steps: warmup } = opts;
  switch (type) {
    case 'constant':
      return 1;
    case 'constant_with_warmup':
      return step < warmup ? step / Math.max(1, warmup) : 1;
    case 'linear':
      if (step < warmup) return step / Math.max(1, warmup);
      return Math.max(0, (total - step) / Math.max(1, total - warmup));
    case 'cosine': {
      if (step < warmup) return step / Math.max(1, warmup);
      const progress = (step - warmup) / Math.max(1, total - warmup);
      const numCycles = 0.5;
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
    }
    default: {
      const never: never = type;
      throw new Error(`unknown lr_scheduler_type ${String(never)}`);
    }
  }
}

/** The learning rate for optimizer step `step` (0-based). */
export function learningRateAt(step: number, opts: ScheduleOptions): number {
  return opts.learning_rate * lrLambda(step, opts);
}
