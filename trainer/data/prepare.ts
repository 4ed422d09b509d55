/**
 * The data pipeline: resolve data.train / data.eval, read the rows, check them (bad rows are counted and
 * reported with line numbers, and too many of them is an error), map labels to ids, tokenize, truncate
 * or pack, and hold out an evaluation split when no eval file is given.
 */
import { closestNames, LoraStudioError, preview } from '../errors';
import type { Task } from '../task';
import type { TextTokenizer } from '../tokenizer/tokenizer';
import { encodeChatRows, loadChatTemplate, MESSAGES_COLUMN, type ChatTemplate } from './chat';
import type { Example } from './collate';
import { detectFormat } from './format';
import { allIntLike, checkLabel, hasKey, intLabelMaps, stringLabelMaps, type LabelMaps, type RawLabel } from './labels';
import { MAX_LABELS } from '../task';
import { packBlocks } from './packing';
import { readRows, readTextDocument } from './read_rows';
import { resolveSource } from './sources';
import { evalCount, splitTrainEval } from './split';
import type { DataFormat, DataReport, DataSpec, FileReport, PreparedData } from './types';

export type { DataFormat, DataReport, DataSpec, FileReport, PreparedData } from './types';

export const DEFAULT_MAX_BAD_ROWS_RATIO = 0.1;
/** bad rows quoted in the "too many bad rows" error */
const QUOTED_BAD_ROWS = 5;

export interface PrepareOptions {
  /** picks the evaluation split */
  seed: number;
  /** the run config: relative data paths resolve against its folder, and config errors name it */
  configFile?: string;
  /** joins documents when packing */
  eos_token_id: number;
  /** seq-cls: integer labels must be below it; string labels must not outnumber it */
  num_labels?: number;
  /** environment for Hub access (HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE, HF_HUB_CACHE, HF_HOME); default process.env */
  env?: NodeJS.ProcessEnv;
  /** progress lines (Hub downloads) */
  log?: (message: string) => void;
  /** the model folder: causal-lm files with a `messages` column are rendered with its chat template (chat.ts) */
  modelDir?: string;
}

type Field = 'data.train' | 'data.eval';

interface Item {
  line: number;
  ids: number[];
  label?: RawLabel;
  /** chat data: the assistant mask, aligned with ids */
  mask?: number[];
}

interface LoadedFile {
  report: FileReport;
  format: DataFormat;
  items: Item[];
  labelNames?: Record<string, string[]>;
}

export async function prepareData(spec: DataSpec, task: Task, tokenizer: TextTokenizer, opts: PrepareOptions): Promise<PreparedData> {
  checkSpec(spec, task, opts);
  const warnings: string[] = [];
  const hubOpts = { env: opts.env, configFile: opts.configFile, log: opts.log };
  const trainSrc = await resolveSource(spec.train, 'data.train', hubOpts);
  const evalSrc = spec.eval ? await resolveSource(spec.eval, 'data.eval', hubOpts) : null;
  warnings.push(...trainSrc.warnings, ...(evalSrc?.warnings ?? []));

  let template: ChatTemplate | undefined;
  const chat = (file: string, field: Field): ChatTemplate => {
    if (opts.modelDir === undefined) throw new LoraStudioError(`has a "${MESSAGES_COLUMN}" column, and no model folder was given for its chat template`, file, field);
    return (template ??= loadChatTemplate(opts.modelDir));
  };
  const load = async (files: string[], field: Field, hub: boolean): Promise<LoadedFile[]> => {
    const out: LoadedFile[] = [];
    for (const file of files) out.push(await loadFile(file, field, hub ? 'parquet' : spec.format, spec, task, tokenizer, warnings, chat));
    return out;
  };
  const trainFiles = await load(trainSrc.files, 'data.train', trainSrc.hub !== undefined);
  const evalFiles = evalSrc ? await load(evalSrc.files, 'data.eval', evalSrc.hub !== undefined) : [];

  let maps: LabelMaps | undefined;
  if (task === 'seq-cls') maps = encodeLabels(spec, trainFiles, evalFiles, opts, warnings);
  else for (const f of [...trainFiles, ...evalFiles]) checkBadRows(f, spec, f.report.field);

  const toExamples = (files: LoadedFile[], field: Field): Example[] => {
    if (spec.packing) {
      const items = files.flatMap((f) => f.items);
      const masks = items.some((it) => it.mask) ? items.map((it) => it.mask ?? it.ids.map(() => 1)) : undefined;
      const packed = packBlocks(items.map((it) => it.ids), spec.max_length, opts.eos_token_id, masks);
      if (packed.dropped_tokens > 0) {
        warnings.push(`${field}: packing into blocks of ${spec.max_length} tokens dropped the last ${packed.dropped_tokens} of ${packed.total_tokens} tokens`);
      } else if (packed.blocks.length === 1 && packed.total_tokens < spec.max_length) {
        warnings.push(`${field}: only ${packed.total_tokens} tokens, fewer than one block of ${spec.max_length}; using one short block`);
      }
      return packed.blocks.map((input_ids, i) => (packed.masks ? { input_ids, assistant_masks: packed.masks[i] } : { input_ids }));
    }
    const examples: Example[] = [];
    let noAssistant = 0;
    for (const f of files) {
      for (const it of f.items) {
        let ids = it.ids;
        if (ids.length > spec.max_length) {
          ids = ids.slice(0, spec.max_length);
          f.report.truncated++;
        }
        if (it.mask) {
          const assistant_masks = it.mask.slice(0, ids.length);
          if (!assistant_masks.includes(1)) noAssistant++;
          examples.push({ input_ids: ids, assistant_masks });
        } else examples.push(it.label === undefined ? { input_ids: ids } : { input_ids: ids, label: labelId(it.label, maps!) });
      }
    }
    if (noAssistant) warnings.push(`${field}: ${noAssistant} conversation(s) have no assistant token within max_length (${spec.max_length}); they add nothing to the loss`);
    return examples;
  };

  let train = toExamples(trainFiles, 'data.train');
  let evalExamples: Example[] = evalSrc ? toExamples(evalFiles, 'data.eval') : [];
  if (!evalSrc && spec.eval_split > 0) {
    const nEval = evalCount(train.length, spec.eval_split);
    if (train.length - nEval < 1) {
      throw new LoraStudioError(
        `holding out ${nEval} of ${train.length} training example(s) for evaluation would leave none to train on; lower data.eval_split, set it to 0, or give data.eval`,
        opts.configFile,
        'data.eval_split',
      );
    }
    ({ train, eval: evalExamples } = splitTrainEval(train, spec.eval_split, opts.seed));
  }
  const report: DataReport = { files: [...trainFiles, ...evalFiles].map((f) => f.report), warnings };
  return maps ? { train, eval: evalExamples, id2label: maps.id2label, label2id: maps.label2id, report } : { train, eval: evalExamples, report };
}

function checkSpec(spec: DataSpec, task: Task, opts: PrepareOptions): void {
  const fail = (field: string, msg: string): never => {
    throw new LoraStudioError(msg, opts.configFile, field);
  };
  if (!Number.isInteger(spec.max_length) || spec.max_length < 1) fail('data.max_length', `must be a whole number of tokens ≥ 1 (got ${spec.max_length})`);
  if (typeof spec.eval_split !== 'number' || !(spec.eval_split >= 0 && spec.eval_split < 1)) {
    fail('data.eval_split', `must be a fraction in [0, 1) (got ${spec.eval_split}); 0 means no evaluation split`);
  }
  const ratio = spec.max_bad_rows_ratio ?? DEFAULT_MAX_BAD_ROWS_RATIO;
  if (typeof ratio !== 'number' || !(ratio >= 0 && ratio <= 1)) fail('data.max_bad_rows_ratio', `must be a fraction in [0, 1] (got ${ratio})`);
  if (typeof spec.text_column !== 'string' || spec.text_column === '') fail('data.text_column', 'must name the column that holds the text');
  if (task === 'seq-cls') {
    if (typeof spec.label_column !== 'string' || spec.label_column === '') fail('data.label_column', 'must name the column that holds the label');
    if (spec.packing) fail('data.packing', 'packing is for causal-lm; seq-cls examples keep one text per label');
    if (spec.format === 'text') fail('data.format', 'plain text has no labels; for seq-cls use JSONL, JSON, CSV, TSV or Parquet with a label column');
    if (opts.num_labels !== undefined && (!Number.isInteger(opts.num_labels) || opts.num_labels < 1 || opts.num_labels > MAX_LABELS)) {
      fail('num_labels', `must be a whole number from 1 to ${MAX_LABELS} (got ${opts.num_labels})`);
    }
  }
  if (spec.packing && !Number.isInteger(opts.eos_token_id)) fail('data.packing', 'packing needs the tokenizer\'s eos token id, and it has none');
}

async function loadFile(
  file: string,
  field: Field,
  formatOverride: DataFormat | null | undefined,
  spec: DataSpec,
  task: Task,
  tokenizer: TextTokenizer,
  warnings: string[],
  chat: (file: string, field: Field) => ChatTemplate,
): Promise<LoadedFile> {
  const format = detectFormat(file, field, formatOverride);
  const report: FileReport = { file, field, rows: 0, bad: [], truncated: 0 };
  if (format === 'text' && task === 'seq-cls') {
    throw new LoraStudioError('plain text has no labels; for seq-cls use JSONL, JSON, CSV, TSV or Parquet with a label column', file, field);
  }
  if (format === 'text' && spec.packing) {
    // Packing a plain text file: the whole file is one document, its newlines kept.
    const doc = readTextDocument(file, field);
    report.rows = doc.rows;
    report.bad = doc.bad;
    if (doc.text.trim() === '') throw new LoraStudioError('has no text', file, field);
    return { report, format, items: [{ line: 1, ids: tokenizer.encode(doc.text) }] };
  }

  const textCol = spec.text_column;
  const labelCol = task === 'seq-cls' ? spec.label_column : undefined;
  const read = await readRows(file, { format, field, textColumn: textCol, columns: labelCol ? [textCol, labelCol] : [textCol, MESSAGES_COLUMN] });
  for (const w of read.warnings ?? []) warnings.push(w);
  report.rows = read.rows.length + read.bad.length;
  report.bad = [...read.bad];
  if (report.rows === 0) throw new LoraStudioError('has no rows', file, field);
  // causal-lm rows with a `messages` column are conversations (TRL's rule); the text column is not read then
  if (!labelCol && format !== 'text' && read.rows.some((r) => hasKey(r.record, MESSAGES_COLUMN))) {
    const encoded = encodeChatRows(read.rows, file, chat(file, field), tokenizer);
    report.bad.push(...encoded.bad);
    report.bad.sort((a, b) => a.line - b.line);
    return { report, format, items: encoded.items };
  }

  const seen = read.columns ?? [...new Set(read.rows.slice(0, 1000).flatMap((r) => Object.keys(r.record)))];
  for (const [col, key] of [[textCol, 'data.text_column'], [labelCol, 'data.label_column']] as const) {
    if (col === undefined || read.rows.length === 0 || read.rows.some((r) => hasKey(r.record, col))) continue;
    const near = closestNames(col, seen);
    throw new LoraStudioError(
      `no row has the column "${col}" (${key}); columns found: ${seen.join(', ') || '(none)'}${near.length ? `; did you mean "${near[0]}"?` : ''}`,
      file,
      field,
    );
  }
  // CSV/TSV cells are strings; a label column of whole numbers holds class ids.
  if (labelCol && (format === 'csv' || format === 'tsv')) {
    const values = read.rows.map((r) => cell(r.record, labelCol)).filter((v) => v !== undefined && v !== '');
    if (allIntLike(values)) for (const r of read.rows) if (typeof cell(r.record, labelCol) === 'string' && r.record[labelCol] !== '') r.record[labelCol] = Number(r.record[labelCol]);
  }

  const items: Item[] = [];
  for (const { line, record } of read.rows) {
    const text = cell(record, textCol);
    let reason: string | undefined;
    let label: RawLabel | undefined;
    if (text === undefined) reason = `missing column "${textCol}"`;
    else if (typeof text !== 'string') reason = `column "${textCol}" is ${text === null ? 'null' : `a ${Array.isArray(text) ? 'array' : typeof text}`}, not a string`;
    else if (text.trim() === '') reason = `column "${textCol}" is empty`;
    else if (labelCol !== undefined) {
      if (cell(record, labelCol) === undefined) reason = `missing column "${labelCol}"`;
      else {
        const checked = checkLabel(cell(record, labelCol), labelCol);
        if ('reason' in checked) reason = checked.reason;
        else label = checked.label;
      }
    }
    if (reason !== undefined) {
      report.bad.push({ line, reason });
      continue;
    }
    const ids = tokenizer.encode(text as string);
    if (ids.length === 0) report.bad.push({ line, reason: `column "${textCol}" gives no tokens` });
    else items.push(label === undefined ? { line, ids } : { line, ids, label });
  }
  report.bad.sort((a, b) => a.line - b.line);
  return { report, format, items, labelNames: read.labelNames };
}

/** A row's value in a column: its own key only (a column named "toString" is not Object.prototype's). */
function cell(record: Record<string, unknown>, column: string): unknown {
  return hasKey(record, column) ? record[column] : undefined;
}

/** Too many bad rows in one file, or none good, is an error naming the file and the first bad lines. */
function checkBadRows(f: LoadedFile, spec: DataSpec, field: Field): void {
  const ratio = spec.max_bad_rows_ratio ?? DEFAULT_MAX_BAD_ROWS_RATIO;
  const { bad, rows, file } = f.report;
  if (bad.length === 0) return;
  const tooMany = bad.length > ratio * rows;
  if (!tooMany && f.items.length > 0) return;
  const quoted = bad.slice(0, QUOTED_BAD_ROWS).map((b) => `line ${b.line}: ${b.reason}`).join('; ');
  const more = bad.length > QUOTED_BAD_ROWS ? `; and ${bad.length - QUOTED_BAD_ROWS} more` : '';
  const why = tooMany ? `more than data.max_bad_rows_ratio (${ratio}) allows` : 'none is usable';
  throw new LoraStudioError(`${bad.length} of ${rows} rows are bad, ${why}: ${quoted}${more}`, file, field);
}

/** The label's name: itself for a string, id2label's entry for an id (undefined when it has none). Own keys only. */
function labelKey(label: RawLabel, maps: LabelMaps): string | undefined {
  if (typeof label !== 'number') return label;
  const k = String(label);
  return hasKey(maps.id2label, k) ? maps.id2label[k] : undefined;
}

/** The class id of a label that encodeLabels accepted. */
function labelId(label: RawLabel, maps: LabelMaps): number {
  const key = labelKey(label, maps);
  if (key === undefined || !hasKey(maps.label2id, key)) throw new Error(`labelId: label ${describeLabel(label)} was not checked`);
  return maps.label2id[key];
}

function describeLabel(label: RawLabel): string {
  return typeof label === 'number' ? String(label) : preview(label);
}

/** At most `max` names of a (possibly huge) list, for a message. */
function someOf(names: string[], max = 20): string {
  const shown = names.slice(0, max).map((n) => (n.length > 40 ? `${n.slice(0, 39)}…` : n));
  return names.length > max ? `${shown.join(', ')}, … (${names.length} in all)` : shown.join(', ');
}

/**
 * Decides integer ids vs. string names from the first training label, turns labels of the other kind
 * (and ids out of range) into bad rows, checks the bad-row limits, then builds the maps. Evaluation
 * labels that the training data lacks are an error.
 */
function encodeLabels(spec: DataSpec, trainFiles: LoadedFile[], evalFiles: LoadedFile[], opts: PrepareOptions, warnings: string[]): LabelMaps {
  const first = trainFiles.flatMap((f) => f.items).find((it) => it.label !== undefined)?.label;
  const kind: 'number' | 'string' = typeof first === 'string' ? 'string' : 'number';
  const kindName = kind === 'number' ? 'integers' : 'strings';
  const n = opts.num_labels;
  for (const f of [...trainFiles, ...evalFiles]) {
    f.items = f.items.filter((it) => {
      let reason: string | undefined;
      if (typeof it.label !== kind) reason = `label ${describeLabel(it.label!)} is ${kind === 'number' ? 'a string' : 'an integer'}, but the training labels are ${kindName}`;
      else if (kind === 'number' && n !== undefined && (it.label as number) >= n) reason = `label ${it.label} is out of range: num_labels is ${n} (ids 0..${n - 1})`;
      if (reason === undefined) return true;
      f.report.bad.push({ line: it.line, reason });
      return false;
    });
    f.report.bad.sort((a, b) => a.line - b.line);
    checkBadRows(f, spec, f.report.field);
  }
  const trainLabels = trainFiles.flatMap((f) => f.items.map((it) => it.label!));
  let maps: LabelMaps;
  if (kind === 'string') {
    maps = stringLabelMaps(trainLabels as string[]);
    const count = Object.keys(maps.label2id).length;
    if (n !== undefined && count > n) {
      throw new LoraStudioError(`the training data has ${count} distinct labels but num_labels is ${n}: ${someOf(Object.keys(maps.label2id))}`, trainFiles[0].report.file, 'data.train');
    }
    if (count > MAX_LABELS) {
      throw new LoraStudioError(`the training data has ${count} distinct labels, more than ${MAX_LABELS}; is data.label_column the label column?`, trainFiles[0].report.file, 'data.train');
    }
    if (n !== undefined && count < n) warnings.push(`data.train: ${count} distinct labels, fewer than num_labels (${n})`);
  } else {
    // a loop, not Math.max(...labels): spreading 130k+ labels into a call overflows the stack
    let maxId = 0;
    for (const l of trainLabels as number[]) if (l > maxId) maxId = l;
    const names = trainFiles.find((f) => f.labelNames?.[spec.label_column])?.labelNames?.[spec.label_column];
    maps = intLabelMaps(maxId, n, names);
    const used = new Set(trainLabels as number[]);
    const unused = Object.keys(maps.id2label).filter((k) => !used.has(Number(k)));
    if (unused.length) warnings.push(`data.train: label id(s) ${someOf(unused)} never occur in the training data`);
  }
  for (const f of evalFiles) {
    for (const it of f.items) {
      const key = labelKey(it.label!, maps);
      if (key === undefined || !hasKey(maps.label2id, key)) {
        throw new LoraStudioError(
          `line ${it.line}: label ${describeLabel(it.label!)} does not occur in the training data (${
            kind === 'string' ? `labels there: ${someOf(Object.keys(maps.label2id))}` : `ids there: 0..${Object.keys(maps.id2label).length - 1}`
          })`,
          f.report.file,
          'data.eval',
        );
      }
    }
  }
  return maps;
}
