/** Messages between the fuzz harness (parent) and its worker thread. */
import type { SeedLibrary } from './seeds';

export interface WorkerJob {
  mode: 'fuzz' | 'cases';
  lib: SeedLibrary;
  /** where the worker puts its case folders */
  caseRoot: string;
  seed: number;
  /** position in `plan` (fuzz) or `cases` to start at */
  from: number;
  /** fuzz: the inputs to run, in order; index < 0 is seed number -index-1 itself, unmutated */
  plan?: Array<{ reader: string; index: number }>;
  /** cases: the case names, in order */
  cases?: string[];
}

export interface CaseResult {
  /** position in the job's plan or case list */
  pos: number;
  reader: string;
  index: number;
  desc: string;
  target: string;
  caseDir: string;
  status: 'ok' | 'lse' | 'finding';
  /** for findings: exception | hang | out of memory | worker crash | … */
  kind?: string;
  name?: string;
  message?: string;
  stack?: string;
  file?: string;
  field?: string;
  describe?: string;
  ms: number;
  arrayBuffersMb?: number;
  rssMb?: number;
  /** set by the parent when the input was kept under test-results/fuzz/ */
  savedAt?: string;
}

export type FromWorker =
  | { type: 'ready' }
  | { type: 'start'; pos: number; reader: string; index: number; caseDir: string; desc: string; target: string }
  | { type: 'result'; result: CaseResult }
  | { type: 'stray'; pos: number; name: string; message: string; stack: string }
  | { type: 'fatal'; message: string }
  | { type: 'end' };
