/**
 * What every command writes through, and the name errors about the command line carry. Kept apart from run.ts
 * (which imports the models, the trainer and TensorFlow.js) so that cli.ts can load each command's code lazily.
 */
export interface Output {
  json: boolean;
  /** human output (stdout), suppressed with --json */
  info(line: string): void;
  /** warnings (stderr) */
  warn(line: string): void;
  /** the one JSON object (or JSON Lines event) on stdout with --json */
  result(obj: unknown): void;
}

export const CLI = '<command line>';
