/**
 * What to tell someone who starts `train` on an output_dir that already holds checkpoints: this run's (or a
 * finished one), how to continue it, and how to start afresh. Nothing is ever overwritten.
 */
import * as path from 'node:path';
import { readJsonFile } from '../io/json';
import { listCheckpoints } from './checkpoint';

export function existingRunMessage(outputDir: string): string {
  const all = listCheckpoints(outputDir);
  const last = all[all.length - 1];
  let progress = '';
  if (last) {
    let state: unknown;
    try {
      state = readJsonFile(path.join(last.dir, 'trainer_state.json'));
    } catch {
      state = undefined; // a damaged state file: say only where the checkpoints are
    }
    const s = (state ?? {}) as { global_step?: unknown; max_steps?: unknown };
    const step = typeof s.global_step === 'number' ? s.global_step : last.step;
    const max = typeof s.max_steps === 'number' ? s.max_steps : undefined;
    progress = max !== undefined && step >= max
      ? ` The run has finished (step ${step} of ${max}).`
      : ` The latest is ${path.basename(last.dir)} (step ${step}${max !== undefined ? ` of ${max}` : ''}).`;
  }
  return `output_dir already holds checkpoints of this run (or of a finished one).${progress} ` +
    'To continue it, pass --resume (or set training.resume_from_checkpoint: true); to train afresh, choose a new output_dir. Nothing is overwritten.';
}
