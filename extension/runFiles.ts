/**
 * The files around a run, without vscode: the run config (lora-run.json) as raw JSON with dotted-path edits,
 * where its model and output_dir resolve, metrics.jsonl read back as TrainEvents, the latest checkpoint,
 * the New Run Config template, and copying an adapter out under a temporary name, then renaming.
 * Field names are the trainer's (PEFT LoraConfig, transformers TrainingArguments).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { TrainEvent } from '../trainer/protocol';
import { isTrainEvent } from './trainerClient';

export const RUN_CONFIG_GLOB = '**/{lora-run.json,*.lora-run.json}';
export const SCHEMA_REF = './node_modules/lora-studio/trainer/config/lora-run.schema.json';
/** The trainer's default output_dir (TrainingArguments' is "trainer_output"). */
export const DEFAULT_OUTPUT_DIR = 'trainer_output';
export const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors'] as const;

export type Json = Record<string, unknown>;

export function isRunConfigFile(file: string): boolean {
  const b = path.basename(file);
  return b === 'lora-run.json' || b.endsWith('.lora-run.json');
}

/** Sets `a.b.c` in a copy of `obj`, creating objects on the way; `undefined` deletes the field. */
export function setPath(obj: Json, dotted: string, value: unknown): Json {
  const keys = dotted.split('.').filter(Boolean);
  if (keys.length === 0) throw new Error('empty field path');
  const out: Json = structuredClone(obj);
  let cur = out;
  for (const k of keys.slice(0, -1)) {
    const next = cur[k];
    if (!next || typeof next !== 'object' || Array.isArray(next)) cur[k] = {};
    cur = cur[k] as Json;
  }
  const last = keys[keys.length - 1];
  if (value === undefined) delete cur[last];
  else cur[last] = value;
  return out;
}

export function getPath(obj: Json | undefined, dotted: string): unknown {
  let cur: unknown = obj;
  for (const k of dotted.split('.').filter(Boolean)) {
    if (!cur || typeof cur !== 'object') return undefined;
    cur = (cur as Json)[k];
  }
  return cur;
}

/** The config text after edits: two-space JSON and a final newline, key order kept. */
export function applyEdits(text: string, edits: ReadonlyArray<{ path: string; value: unknown }>): string {
  let obj = parseConfigText(text);
  for (const e of edits) obj = setPath(obj, e.path, e.value);
  return JSON.stringify(obj, null, 2) + '\n';
}

export function parseConfigText(text: string): Json {
  const v: unknown = JSON.parse(text);
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('the run config must be a JSON object');
  return v as Json;
}

/** A hub id looks like `gpt2` or `owner/name` and is not an existing folder. */
export function looksLikeHubId(ref: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)?$/.test(ref) && !ref.endsWith('.json');
}

/** The run config's model: a folder relative to the config file when one exists there, else a hub id as written. */
export function resolveModel(configFile: string, model: string): { kind: 'folder' | 'hub'; ref: string } {
  const abs = path.resolve(path.dirname(configFile), model);
  if (fs.existsSync(abs)) return { kind: 'folder', ref: abs };
  if (looksLikeHubId(model)) return { kind: 'hub', ref: model };
  return { kind: 'folder', ref: abs };
}

/** How the run config names a model folder: relative to the config when it lies under the config's folder. */
export function modelFieldFor(configFile: string, modelRef: string): string {
  if (!path.isAbsolute(modelRef)) return modelRef;
  const rel = path.relative(path.dirname(configFile), modelRef);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel.split(path.sep).join('/') : modelRef;
}

export function outputDirOf(configFile: string, cfg: Json | undefined): string {
  const od = getPath(cfg, 'training.output_dir');
  return path.resolve(path.dirname(configFile), typeof od === 'string' && od ? od : DEFAULT_OUTPUT_DIR);
}

/** metrics.jsonl back into events; malformed or partial lines (a run killed mid-write) are skipped. */
export function parseMetrics(text: string): TrainEvent[] {
  const out: TrainEvent[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line.trim()) continue;
    try {
      const v: unknown = JSON.parse(line);
      if (isTrainEvent(v)) out.push(v);
    } catch {
      // skip
    }
  }
  return out;
}

export function readMetrics(outputDir: string): TrainEvent[] {
  const file = path.join(outputDir, 'metrics.jsonl');
  try {
    return parseMetrics(fs.readFileSync(file, 'utf8'));
  } catch {
    return [];
  }
}

/** The checkpoint-N folder with the largest N, as transformers' get_last_checkpoint picks it. */
export function latestCheckpoint(outputDir: string): string | undefined {
  let best: { n: number; dir: string } | undefined;
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(outputDir, { withFileTypes: true });
  } catch {
    return undefined;
  }
  for (const e of entries) {
    const m = /^checkpoint-(\d+)$/.exec(e.name);
    if (!m || !e.isDirectory()) continue;
    const n = Number(m[1]);
    if (!best || n > best.n) best = { n, dir: path.join(outputDir, e.name) };
  }
  return best?.dir;
}

/** A PEFT adapter folder: adapter_config.json with peft_type LORA. Returns the parsed config or a reason. */
export function readAdapterConfig(dir: string): { ok: true; config: Json } | { ok: false; reason: string } {
  const file = path.join(dir, 'adapter_config.json');
  let cfg: Json;
  try {
    cfg = parseConfigText(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    return { ok: false, reason: `${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found; this is not a PEFT adapter folder' : (e as Error).message}` };
  }
  if (cfg.peft_type !== undefined && cfg.peft_type !== 'LORA') return { ok: false, reason: `${file}: peft_type is ${JSON.stringify(cfg.peft_type)}, not "LORA"` };
  return { ok: true, config: cfg };
}

/** Where the trained adapter of a run is: output_dir itself, or (after load_best_model_at_end) the same. */
export function adapterDirOf(outputDir: string): string | undefined {
  return ADAPTER_FILES.every((f) => fs.existsSync(path.join(outputDir, f))) ? outputDir : undefined;
}

/**
 * Copies an adapter's files into `dest` (a new or existing folder): each under a temporary name in `dest`,
 * then renamed, so a reader never sees half a file. Refuses to copy a folder onto itself.
 */
export function copyAdapter(src: string, dest: string): string[] {
  if (path.resolve(src) === path.resolve(dest)) throw new Error('the destination is the adapter folder itself');
  const missing = ADAPTER_FILES.filter((f) => !fs.existsSync(path.join(src, f)));
  if (missing.length) throw new Error(`${src} has no ${missing.join(' or ')}: it holds no finished adapter yet`);
  fs.mkdirSync(dest, { recursive: true });
  const written: string[] = [];
  for (const f of ADAPTER_FILES) {
    const target = path.join(dest, f);
    const tmp = path.join(dest, `.${f}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      fs.copyFileSync(path.join(src, f), tmp);
      fs.renameSync(tmp, target);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    }
    written.push(target);
  }
  return written;
}

/** Merge must never write into (or over) the base model folder or the adapter. */
export function checkMergeOut(base: string, adapter: string, out: string): string | undefined {
  const o = path.resolve(out);
  for (const [what, dir] of [['base model', base], ['adapter', adapter]] as const) {
    const d = path.resolve(dir);
    if (o === d || o.startsWith(d + path.sep)) return `The output folder must not be the ${what} folder or inside it (${d}).`;
  }
  if (fs.existsSync(o) && fs.readdirSync(o).length > 0) return `${o} already exists and is not empty; choose a new folder.`;
  return undefined;
}

/** The New Run Config template: every section with the trainer's field names; "$schema" for editors. */
export function runConfigTemplate(opts: { model?: string; task?: 'causal-lm' | 'seq-cls'; target_modules?: string | string[]; output_dir?: string; schema?: string } = {}): Json {
  const task = opts.task ?? 'causal-lm';
  return {
    $schema: opts.schema ?? SCHEMA_REF,
    model: opts.model ?? 'gpt2',
    task,
    ...(task === 'seq-cls' ? { num_labels: 2 } : {}),
    data: { train: 'data/train.jsonl', eval: null, text_column: 'text', ...(task === 'seq-cls' ? { label_column: 'label' } : {}), max_length: 256 },
    lora: {
      r: 8,
      lora_alpha: 16,
      lora_dropout: 0.05,
      target_modules: opts.target_modules ?? ['c_attn'],
      ...(task === 'seq-cls' ? { modules_to_save: ['score'] } : {}),
    },
    training: {
      output_dir: opts.output_dir ?? 'runs/lora',
      num_train_epochs: 3,
      per_device_train_batch_size: 8,
      learning_rate: 2e-4,
      lr_scheduler_type: 'linear',
      warmup_ratio: 0.03,
      logging_steps: 10,
      eval_strategy: 'epoch',
      save_strategy: 'epoch',
      save_total_limit: 2,
      seed: 42,
    },
  };
}
