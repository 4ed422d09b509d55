/**
 * `output_dir/metrics.jsonl`: every TrainEvent of a run, one JSON object a line, appended as it happens
 * (a resumed run appends to the same file), so the dashboard can replay a run after a reload (the extension
 * reads it back: extension/runFiles.ts).
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
