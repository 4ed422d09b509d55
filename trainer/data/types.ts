/**
 * The shapes the data pipeline takes and returns: the `data` section of a run config (DataSpec), rows as
 * read from a file (with their line numbers), bad rows, and the report the caller prints.
 */
import type { Example } from './collate';

export type DataFormat = 'jsonl' | 'json' | 'csv' | 'tsv' | 'text' | 'parquet';

export interface DataSpec {
  /** a local file (relative to the run config's folder) or a Hub dataset id `owner/name[:config][:split]` */
  train: string;
  /** same as train; when absent, `eval_split` of the training rows is held out */
  eval?: string | null;
  text_column: string;
  /** seq-cls only */
  label_column: string;
  /** examples longer than this (in tokens) are truncated; with packing, the block size */
  max_length: number;
  /** fraction of the training rows held out for evaluation when `eval` is not given; 0 = no evaluation */
  eval_split: number;
  /** overrides the format implied by the file extension; null = from the extension */
  format?: DataFormat | null;
  /** causal-lm: concatenate all texts (eos between documents) and cut into blocks of max_length */
  packing?: boolean;
  /** a file with more bad rows than this fraction of its rows is an error; default 0.1 */
  max_bad_rows_ratio?: number;
}

export interface BadRow {
  /** file line for line-based formats (jsonl, csv, tsv, text); 1-based row index for json and parquet */
  line: number;
  reason: string;
}

export interface Row {
  line: number;
  record: Record<string, unknown>;
}

export interface RowsRead {
  format: DataFormat;
  rows: Row[];
  bad: BadRow[];
  /** parquet written by `datasets`: ClassLabel names per column, from the file's `huggingface` metadata */
  labelNames?: Record<string, string[]>;
  /** every column name the file has (parquet: from its schema), for "did you mean" messages */
  columns?: string[];
  warnings?: string[];
}

export interface FileReport {
  file: string;
  /** which config field the file came from */
  field: 'data.train' | 'data.eval';
  /** rows read, good and bad */
  rows: number;
  bad: BadRow[];
  /** examples cut to max_length */
  truncated: number;
}

export interface DataReport {
  files: FileReport[];
  warnings: string[];
}

export interface PreparedData {
  train: Example[];
  eval: Example[];
  /** seq-cls: keys are stringified ids, as transformers writes them in config.json */
  id2label?: Record<string, string>;
  label2id?: Record<string, number>;
  report: DataReport;
}
