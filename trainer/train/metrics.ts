/**
 * `output_dir/metrics.jsonl`: every TrainEvent of a run, one JSON object a line, appended as it happens
 * (a resumed run appends to the same file), so the dashboard can replay a run after a reload.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TrainEvent } from '../protocol';

export const METRICS_FILE = 'metrics.jsonl';

export function metricsAppender(outputDir: string): (e: TrainEvent) => void {
  const file = path.join(outputDir, METRICS_FILE);
  let ready = false;
  return (e) => {
    if (!ready) {
      fs.mkdirSync(outputDir, { recursive: true });
      ready = true;
    }
    fs.appendFileSync(file, JSON.stringify(e) + '\n');
  };
}

/** Reads the events back; a torn last line (a crash mid-append) is skipped. */
export function readMetrics(outputDir: string): TrainEvent[] {
  const file = path.join(outputDir, METRICS_FILE);
  if (!fs.existsSync(file)) return [];
  const out: TrainEvent[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as TrainEvent);
    } catch {
      // an incomplete final line
    }
  }
  return out;
}
