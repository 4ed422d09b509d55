/**
 * What the dashboard panel needs from the rest of the extension. The extension's context implements it;
 * the panel (extension/dashboard/panel.ts) only talks to this interface, never to the trainer client directly.
 */
import type * as vscode from 'vscode';
import type { TrainEvent } from '../../trainer/protocol';

/** Where the current run stands, for the panel's header and buttons. */
export interface RunStatus {
  state: 'idle' | 'starting' | 'running' | 'stopping' | 'done' | 'failed';
  /** the run config file the panel edits (lora-run.json), if any */
  configFile?: string;
  /** the run's output_dir, when known (metrics.jsonl lives there) */
  outputDir?: string;
  /** the latest checkpoint folder, when one exists (enables "Resume from checkpoint") */
  latestCheckpoint?: string;
}

export interface DashboardHost {
  status(): RunStatus;
  /** fires on every status change */
  readonly onDidChangeStatus: vscode.Event<RunStatus>;
  /** every TrainEvent of the live run, as the trainer child sends it */
  readonly onDidReceiveEvent: vscode.Event<TrainEvent>;
  /** the events of the current or last run so far, read back from output_dir/metrics.jsonl (for replay after a reload) */
  history(): Promise<TrainEvent[]>;
  /** the parsed run config (raw JSON object as in the file), or undefined when there is none */
  readRunConfig(): Promise<Record<string, unknown> | undefined>;
  /** sets fields of the run config file; `path` is a dotted field path such as `lora.r` or `training.learning_rate` */
  updateRunConfig(edits: Array<{ path: string; value: unknown }>): Promise<void>;
  /** fires when the run config file changes on disk or through updateRunConfig */
  readonly onDidChangeRunConfig: vscode.Event<void>;
  startTraining(): Promise<void>;
  stopTraining(): Promise<void>;
  resumeTraining(): Promise<void>;
  /** the extension's log channel */
  readonly log: vscode.LogOutputChannel;
}
