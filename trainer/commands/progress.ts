/**
 * Human output for a training run: the backend, PEFT's trainable-params line, a progress bar with the
 * numbers of the `step` events (redrawn in place on a terminal, every ~5% otherwise), eval results,
 * checkpoints, and the summary. Reads the same events as `--json` prints.
 */
import type { TrainEvent } from '../protocol';
import { backendLine } from '../backend_line';
import { peftLine } from '../lora/peft_line';

const BAR = 24;

function clock(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.round(s % 60)).padStart(2, '0')}`;
}

export function progressPrinter(stream: NodeJS.WriteStream = process.stdout): (e: TrainEvent) => void {
  const tty = !!stream.isTTY;
  let total = 0;
  let open = false;
  const line = (s: string) => {
    if (open) stream.write('\n');
    open = false;
    stream.write(s + '\n');
  };
  return (e) => {
    switch (e.event) {
      case 'start':
        total = e.total_steps;
        line(backendLine(e));
        line(peftLine(e.trainable_params, e.all_params));
        line(`training ${e.task} on ${e.model}: ${e.total_steps} steps${e.global_step ? `, resuming at step ${e.global_step}` : ''} → ${e.output_dir}`);
        break;
      case 'step': {
        const done = Math.round((e.step / Math.max(total, 1)) * BAR);
        const text = `[${'#'.repeat(done)}${'.'.repeat(BAR - done)}] step ${e.step}/${total} epoch ${e.epoch.toFixed(2)} loss ${e.loss.toFixed(4)} lr ${e.learning_rate.toExponential(2)} ${e.tokens_per_second.toFixed(0)} tok/s ${e.rss_mb} MB ETA ${clock(e.eta_s)}`;
        if (tty) {
          stream.write(`\r${text}\x1b[K`);
          open = true;
        } else if (e.step === total || e.step % Math.max(1, Math.ceil(total / 20)) === 0) {
          line(text);
        }
        break;
      }
      case 'eval':
        line(`eval @ step ${e.step} (epoch ${e.epoch.toFixed(2)}): ${Object.entries(e.metrics).filter(([k]) => !/runtime|per_second/.test(k)).map(([k, v]) => `${k} ${v.toFixed(4)}`).join('  ')}`);
        break;
      case 'checkpoint':
        line(`saved ${e.path}`);
        break;
      case 'done':
        line(e.stopped ? `stopped at step ${e.global_step}; a checkpoint was saved in ${e.output_dir}` : `done: ${e.global_step} steps; adapter in ${e.output_dir}${e.best ? ` (best: ${e.best}, ${e.best_metric})` : ''}`);
        break;
      case 'error':
        line(`error: ${e.message}`);
        break;
      case 'log':
        line(e.message);
        break;
    }
  };
}
