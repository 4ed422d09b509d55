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
import { LoraStudioError, closestNames } from '../errors';
import { KNOWN_FIELDS, RunConfigSchema, TrainingSchema, type RunConfig, type RunConfigInput } from './schema';

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

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** Reads, parses, validates and completes a run config. `overrides` win over the file. */
export function loadRunConfig(file: string, overrides?: RunConfigOverrides, cwd = process.cwd()): RunConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new LoraStudioError(`cannot read the run config: ${(e as Error).message}`, file);
  }
  const raw = parseJson(text, file);
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
    throw new LoraStudioError(problems.map((p) => `${p.field}: ${p.message}`).join('\n'), file, problems[0]?.field);
  }
  const cfg = completeDefaults(result.data);
  return options.resolvePaths === false ? cfg : resolvePaths(cfg, path.dirname(path.resolve(file)));
}

// ---- JSON ----

function parseJson(text: string, file: string): unknown {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  try {
    return JSON.parse(body);
  } catch (e) {
    const msg = (e as Error).message;
    const m = /position (\d+)/.exec(msg);
    const pos = m ? Number(m[1]) : body.length;
    const before = body.slice(0, pos);
    const line = before.split('\n').length;
    const column = pos - before.lastIndexOf('\n');
    const reason = msg.replace(/\s*\(line \d+ column \d+\)/, '').replace(/ in JSON at position \d+$/, '');
    throw new LoraStudioError(`not valid JSON at line ${line}, column ${column} (position ${pos}): ${reason}`, file);
  }
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

function preview(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s.length > 60 ? s.slice(0, 57) + '…' : s;
}

function valueAt(root: unknown, p: PropertyKey[]): unknown {
  let cur = root;
  for (const k of p) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[k as string];
  }
  return cur;
}

function fieldPath(p: PropertyKey[]): string {
  let s = '';
  for (const k of p) s += typeof k === 'number' ? `[${k}]` : s ? `.${String(k)}` : String(k);
  return s;
}

function describeIssue(issue: z.core.$ZodIssue, raw: unknown): Problem[] {
  const where = fieldPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const known = KNOWN_FIELDS[where] ?? [];
    return issue.keys.map((key) => {
      const near = closestNames(key, known, 1);
      const hint = near.length ? `did you mean "${near[0]}"?` : `allowed: ${known.join(', ')}`;
      return { field: where ? `${where}.${key}` : key, message: `unknown field; ${hint}` };
    });
  }
  const value = valueAt(raw, issue.path);
  if (value === undefined) return [{ field: where, message: `required; ${issue.message}` }];
  let message = `${issue.message} (got ${preview(value)})`;
  if (issue.code === 'invalid_value' && typeof value === 'string') {
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
        const err = regexError(v);
        if (err) problems.push({ field: `lora.${key}`, message: `not a valid regular expression: ${err}` });
      }
    }
    for (const key of ['rank_pattern', 'alpha_pattern'] as const) {
      const v = raw.lora[key];
      if (!isObject(v)) continue;
      for (const pattern of Object.keys(v)) {
        const err = regexError(pattern);
        if (err) problems.push({ field: `lora.${key}`, message: `key ${JSON.stringify(pattern)} is not a valid regular expression: ${err}` });
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

function regexError(pattern: string): string | null {
  try {
    new RegExp(pattern);
    return null;
  } catch (e) {
    return (e as Error).message;
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

function resolvePaths(cfg: RunConfig, base: string): RunConfig {
  if (looksLikePath(cfg.model, base)) cfg.model = path.resolve(base, cfg.model);
  cfg.data.train = resolveDataValue(cfg.data.train, base);
  if (cfg.data.eval !== null) cfg.data.eval = resolveDataValue(cfg.data.eval, base);
  cfg.training.output_dir = path.resolve(base, cfg.training.output_dir);
  if (typeof cfg.training.resume_from_checkpoint === 'string') {
    cfg.training.resume_from_checkpoint = path.resolve(base, cfg.training.resume_from_checkpoint);
  }
  return cfg;
}
