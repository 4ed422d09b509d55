/**
 * Reads and validates a run config file (lora-run.json): strict JSON, every problem collected and reported
 * together (one line each, naming the field and what is allowed), transformers' derived defaults filled in,
 * and relative paths resolved against the config file's folder.
 */
import { parseHubId } from '../data/hub';
import { hasDataExtension } from '../data/format';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { z } from 'zod';
import { LoraStudioError, closestNames, preview } from '../errors';
import { isPlainObject, readJsonFile } from '../io/json';
import { regexSyntaxError } from '../util/regex';
import { KNOWN_FIELDS, LoraSchema, RunConfigSchema, TrainingSchema, type RunConfig, type RunConfigInput } from './schema';

export { RunConfigSchema, type RunConfig, type RunConfigInput } from './schema';

/** Values that replace the file's (CLI flags, the extension's request); paths in them are relative to `cwd`. */
export interface RunConfigOverrides {
  model?: string;
  task?: RunConfigInput['task'];
  num_labels?: number;
  data?: Partial<RunConfigInput['data']>;
  lora?: Partial<NonNullable<RunConfigInput['lora']>>;
  training?: Partial<NonNullable<RunConfigInput['training']>>;
}

export interface ParseOptions {
  /** resolve relative paths against the config file's folder (default true) */
  resolvePaths?: boolean;
}

interface Problem {
  field: string;
  message: string;
}

const isObject = isPlainObject;

/** Problems listed in one error; a list of 100,000 wrong items is reported by its first few. */
const MAX_PROBLEMS = 20;

/** A run config is a few kB; 1 MiB leaves room for long comments-as-fields and still refuses a data file passed by mistake. */
export const MAX_RUN_CONFIG_BYTES = 1024 * 1024;

/** Reads, parses, validates and completes a run config. `overrides` win over the file. */
export function loadRunConfig(file: string, overrides?: RunConfigOverrides, cwd = process.cwd()): RunConfig {
  const raw = readJsonFile(file, { maxBytes: MAX_RUN_CONFIG_BYTES });
  const merged = overrides ? applyOverrides(raw, overrides, cwd) : raw;
  return parseRunConfig(merged, file);
}

/** Validates an already-parsed config; `file` names it in errors and anchors its relative paths. */
export function parseRunConfig(raw: unknown, file: string, options: ParseOptions = {}): RunConfig {
  const problems: Problem[] = [];
  const result = RunConfigSchema.safeParse(raw);
  if (!result.success) for (const issue of result.error.issues) problems.push(...describeIssue(issue, raw));
  problems.push(...crossFieldProblems(raw));
  if (problems.length > 0 || !result.success) {
    const lines = problems.slice(0, MAX_PROBLEMS).map((p) => `${p.field}: ${p.message}`);
    if (problems.length > MAX_PROBLEMS) lines.push(`… and ${problems.length - MAX_PROBLEMS} more problem(s)`);
    throw new LoraStudioError(lines.join('\n'), file, problems[0]?.field);
  }
  const cfg = completeDefaults(result.data);
  keepPatternKeys(cfg, raw);
  return options.resolvePaths === false ? cfg : resolvePaths(cfg, path.dirname(path.resolve(file)));
}

// ---- overrides ----

const PATH_FIELDS: Record<string, string[]> = { data: ['train', 'eval'], training: ['output_dir', 'resume_from_checkpoint'] };

function applyOverrides(raw: unknown, overrides: RunConfigOverrides, cwd: string): unknown {
  if (!isObject(raw)) return raw;
  const out: Record<string, unknown> = { ...raw };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    if (key === 'model' && typeof value === 'string') {
      out.model = looksLikePath(value, cwd) ? path.resolve(cwd, value) : value;
    } else if (isObject(value) && (key === 'data' || key === 'lora' || key === 'training')) {
      const section: Record<string, unknown> = isObject(out[key]) ? { ...(out[key] as Record<string, unknown>) } : {};
      for (const [k, v] of Object.entries(value)) {
        if (v === undefined) continue;
        if (key === 'data' && typeof v === 'string' && PATH_FIELDS.data.includes(k)) section[k] = resolveDataValue(v, cwd);
        else section[k] = PATH_FIELDS[key]?.includes(k) && typeof v === 'string' ? path.resolve(cwd, v) : v;
      }
      out[key] = section;
    } else {
      out[key] = value;
    }
  }
  return out;
}

// ---- issues → lines ----

function valueAt(root: unknown, p: PropertyKey[]): unknown {
  let cur = root;
  for (const k of p) {
    if (cur === null || typeof cur !== 'object') return undefined;
    if (!Object.prototype.hasOwnProperty.call(cur, k)) return undefined;
    cur = (cur as Record<string, unknown>)[k as string];
  }
  return cur;
}

function fieldPath(p: PropertyKey[]): string {
  let s = '';
  for (const k of p) s += typeof k === 'number' ? `[${k}]` : s ? `.${shortKey(k)}` : shortKey(k);
  return s;
}

/** A key of the user's file as it appears in a field path: cut, so a megabyte-long key cannot flood the message. */
function shortKey(k: PropertyKey): string {
  const s = String(k);
  return s.length > 60 ? `${s.slice(0, 59)}…` : s;
}

function describeIssue(issue: z.core.$ZodIssue, raw: unknown): Problem[] {
  const where = fieldPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const known = KNOWN_FIELDS[where] ?? [];
    return issue.keys.map((key) => {
      const near = key.length <= 100 ? closestNames(key, known, 1) : [];
      const hint = near.length ? `did you mean "${near[0]}"?` : `allowed: ${known.join(', ')}`;
      return { field: where ? `${where}.${shortKey(key)}` : shortKey(key), message: `unknown field; ${hint}` };
    });
  }
  const value = valueAt(raw, issue.path);
  if (value === undefined) return [{ field: where, message: `required; ${issue.message}` }];
  let message = `${issue.message} (got ${preview(value)})`;
  if (issue.code === 'invalid_value' && typeof value === 'string' && value.length <= 100) {
    const near = closestNames(value, issue.values.map(String), 1);
    if (near.length) message += `; did you mean "${near[0]}"?`;
  }
  return [{ field: where || '(top level)', message }];
}

// ---- rules between fields (checked on each field's own parse, so they are reported next to type errors) ----

type TrainingField = keyof typeof TrainingSchema.shape;

function crossFieldProblems(raw: unknown): Problem[] {
  if (!isObject(raw)) return [];
  const problems: Problem[] = [];

  const task = raw.task === undefined ? 'causal-lm' : raw.task;
  if (task === 'causal-lm' && raw.num_labels !== undefined) {
    problems.push({ field: 'num_labels', message: 'only used with task "seq-cls"; remove it or set "task": "seq-cls"' });
  }

  if (isObject(raw.lora)) {
    for (const key of ['target_modules', 'exclude_modules'] as const) {
      const v = raw.lora[key];
      if (typeof v === 'string' && v !== 'all-linear') {
        const err = regexReason(regexSyntaxError(v, 'full'));
        if (err) problems.push({ field: `lora.${key}`, message: `not a valid regular expression: ${err}` });
      }
    }
    for (const key of ['rank_pattern', 'alpha_pattern'] as const) {
      const v = raw.lora[key];
      if (!isObject(v)) continue;
      for (const pattern of Object.keys(v)) {
        // zod's record skips the key "__proto__"; it is an ordinary pattern here, so its value is checked here
        const leaf = (key === 'rank_pattern' ? LoraSchema.shape.rank_pattern : LoraSchema.shape.alpha_pattern).unwrap().valueType;
        if (pattern === '__proto__' && !leaf.safeParse(v[pattern]).success) {
          problems.push({ field: `lora.${key}.__proto__`, message: `${key === 'rank_pattern' ? 'must be an integer >= 1' : 'must be a number > 0'} (got ${preview(v[pattern])})` });
        }
        const err = regexReason(regexSyntaxError(pattern, 'suffix'));
        if (err) problems.push({ field: `lora.${key}`, message: `key ${preview(pattern)} is not a valid regular expression: ${err}` });
      }
    }
  }

  const rawTraining = raw.training === undefined ? {} : raw.training;
  if (!isObject(rawTraining)) return problems;
  const get = <K extends TrainingField>(k: K): z.output<(typeof TrainingSchema.shape)[K]> | undefined => {
    const r = TrainingSchema.shape[k].safeParse(rawTraining[k]);
    return r.success ? (r.data as z.output<(typeof TrainingSchema.shape)[K]>) : undefined;
  };
  const evalStrategy = get('eval_strategy');
  const saveStrategy = get('save_strategy');
  const saveSteps = get('save_steps');
  const evalSteps = get('eval_steps') ?? get('logging_steps');
  if (saveStrategy === 'steps' && rawTraining.save_steps === null) {
    problems.push({ field: 'training.save_steps', message: 'required when save_strategy is "steps"; must be an integer >= 1' });
  }
  if (get('load_best_model_at_end') === true && evalStrategy !== undefined && saveStrategy !== undefined) {
    if (evalStrategy !== saveStrategy) {
      problems.push({
        field: 'training.load_best_model_at_end',
        message: `needs save_strategy to equal eval_strategy, but eval_strategy is "${evalStrategy}" and save_strategy is "${saveStrategy}"`,
      });
    } else if (evalStrategy === 'no') {
      problems.push({
        field: 'training.load_best_model_at_end',
        message: 'needs evaluations and checkpoints, but eval_strategy and save_strategy are both "no"',
      });
    } else if (evalStrategy === 'steps' && saveSteps && evalSteps && saveSteps % evalSteps !== 0) {
      problems.push({
        field: 'training.save_steps',
        message: `with load_best_model_at_end, save_steps must be a multiple of eval_steps, but ${saveSteps} is not a multiple of ${evalSteps}`,
      });
    }
  }
  return problems;
}

/** V8's message repeats the whole (anchored) pattern; the reason alone is kept, the pattern is shown by preview(). */
function regexReason(err: string | null): string | null {
  return err === null ? null : err.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '');
}

/**
 * zod's record drops the key "__proto__"; in rank_pattern / alpha_pattern it is an ordinary pattern (its value is
 * checked in crossFieldProblems), so it is put back as an own property.
 */
function keepPatternKeys(cfg: RunConfig, raw: unknown): void {
  const lora = isObject(raw) && isObject(raw.lora) ? raw.lora : {};
  for (const key of ['rank_pattern', 'alpha_pattern'] as const) {
    const src = lora[key];
    if (!isObject(src) || !Object.prototype.hasOwnProperty.call(src, '__proto__')) continue;
    Object.defineProperty(cfg.lora[key], '__proto__', { value: src['__proto__'], enumerable: true, writable: true, configurable: true });
  }
}

// ---- transformers' derived defaults ----

function completeDefaults(parsed: RunConfig): RunConfig {
  const cfg: RunConfig = structuredClone(parsed);
  if (cfg.task === 'seq-cls' && cfg.num_labels === undefined) cfg.num_labels = 2;
  const t = cfg.training;
  if (t.eval_strategy === 'steps' && t.eval_steps === null) t.eval_steps = t.logging_steps;
  if (t.load_best_model_at_end && t.metric_for_best_model === null) t.metric_for_best_model = 'loss';
  if (t.metric_for_best_model !== null && t.greater_is_better === null) t.greater_is_better = !t.metric_for_best_model.endsWith('loss');
  if (t.resume_from_checkpoint === false) t.resume_from_checkpoint = null;
  return cfg;
}

// ---- paths ----

/** An explicit path (absolute, ./ or ../), or a name that exists as a file/folder relative to `base`. */
function looksLikePath(p: string, base: string): boolean {
  return path.isAbsolute(p) || /^\.\.?([\\/]|$)/.test(p) || fs.existsSync(path.resolve(base, p));
}

/** A data file resolves against `base`; a Hugging Face Hub dataset id (`owner/name[:split]`) stays as it is. */
function resolveDataValue(v: string, base: string): string {
  return parseHubId(v) && !looksLikePath(v, base) && !hasDataExtension(v) ? v : path.resolve(base, v);
}

/** `model` as the config file wrote it, before resolvePaths made a relative folder absolute. */
const modelAsWritten = new WeakMap<RunConfig, string>();
export const modelAsGiven = (cfg: RunConfig): string => modelAsWritten.get(cfg) ?? cfg.model;

function resolvePaths(cfg: RunConfig, base: string): RunConfig {
  modelAsWritten.set(cfg, cfg.model);
  if (looksLikePath(cfg.model, base)) cfg.model = path.resolve(base, cfg.model);
  cfg.data.train = resolveDataValue(cfg.data.train, base);
  if (cfg.data.eval !== null) cfg.data.eval = resolveDataValue(cfg.data.eval, base);
  cfg.training.output_dir = path.resolve(base, cfg.training.output_dir);
  if (typeof cfg.training.resume_from_checkpoint === 'string') {
    cfg.training.resume_from_checkpoint = path.resolve(base, cfg.training.resume_from_checkpoint);
  }
  return cfg;
}
