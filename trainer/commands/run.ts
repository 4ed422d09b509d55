/**
 * The CLI's commands, each a plain async function over parsed options and an Output. cli.ts only parses.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { generationEosIds } from '../io/generation_config';
import { familyFor } from '../models/registry';
import { LoraStudioError } from '../errors';
import { inspect, formatInspect } from './inspect';
import { loadRunConfig, parseRunConfig } from '../config/run_config';
import type { RunConfig } from '../config/schema';
import { adapterLabelMaps } from '../lora/adapter_io';
import { openModel, type OpenedModel } from '../train/session';
import { resolveModelDir } from '../io/hub_model';
import { evaluate, generate } from '../eval';
import { prepareData } from '../data/prepare';
import { train } from '../train/trainer';
import type { ClassifyResult, EvalResult, GenerateResult, InspectResult, ResultBackend, TrainEvent } from '../protocol';
import { adapterField, backendLine } from '../backend_line';
import { progressPrinter } from './progress';
import { runDemoJob } from './demo';
import type { Task } from '../task';
import { collate } from '../data/collate';
import { CLI, type Output } from './output';

export { CLI, type Output };
// merge lives in run_merge.ts (no TensorFlow.js); re-exported for callers of this module.
export { runMerge } from './run_merge';

/** `--target-modules`: all-linear, a JSON list, a regex (if it has regex syntax), or comma-separated names. */
export function parseTargetSpec(spec: string): string | string[] {
  const s = spec.trim();
  if (s === 'all-linear') return s;
  if (s.startsWith('[')) {
    try {
      const list = JSON.parse(s);
      if (Array.isArray(list) && list.every((x) => typeof x === 'string')) return list;
    } catch {
      // fall through to the error
    }
    throw new LoraStudioError(`not a JSON list of strings: ${s}`, CLI, '--target-modules');
  }
  if (/[\\^$*+?()[\]{}|]/.test(s)) return s;
  return s.split(',').map((x) => x.trim()).filter(Boolean);
}

/**
 * eval/generate/classify read files through the loaders the run config uses: their errors say `data.train`
 * where the user typed --data, and a missing adapter folder has no field. Name the flags instead.
 */
async function namingFlags<T>(flags: { data?: string; adapter?: string }, fn: () => Promise<T>): Promise<T> {
  if (flags.adapter !== undefined && !fs.existsSync(flags.adapter)) throw new LoraStudioError('no such folder', flags.adapter, '--adapter');
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof LoraStudioError)) throw e;
    const f = e.field;
    if (flags.data !== undefined && f && /^data\.train(\.|\[|$)/.test(f)) {
      throw new LoraStudioError(e.message.split('data.train').join('--data'), e.file, `--data${f.slice('data.train'.length)}`);
    }
    const adapterDir = flags.adapter !== undefined ? path.resolve(flags.adapter) : undefined;
    if (adapterDir && !f && e.file && path.resolve(e.file).startsWith(adapterDir + path.sep)) throw new LoraStudioError(e.message, e.file, '--adapter');
    throw e;
  }
}

/**
 * Warnings of the model loader (as transformers prints them). A seq-cls head that neither the model folder nor
 * the adapter holds is random: its accuracy and labels mean nothing, so say so plainly.
 */
function loaderWarnings(m: OpenedModel, out: Output, command: string): void {
  const adapterHasHead = !!m.adapter?.extra.has('score.weight');
  for (const w of m.loaded.warnings) {
    const randomHead = /newly initialized: \['score\.weight'\]/.test(w);
    if (randomHead && adapterHasHead) continue;
    out.warn(w);
    if (randomHead) {
      out.warn(`${command}: the classification head (score.weight) is randomly initialised: neither ${m.modelDir} nor ${m.adapter ? 'the adapter' : 'an adapter'} holds trained score weights, so these results are those of an untrained head. ` +
        'Pass --adapter with a seq-cls adapter (trained with modules_to_save: ["score"]), or a model folder that has score.weight.');
    }
  }
}

/**
 * The label names of a seq-cls model, by id: the adapter's (training writes them in its metadata), else those of
 * the model's config.json when it names them (not just transformers' default LABEL_i).
 */
function labelMaps(m: OpenedModel): { id2label: Record<string, string>; label2id: Record<string, number>; source: string } | undefined {
  const fromAdapter = m.adapter ? adapterLabelMaps(m.adapter) : undefined;
  if (fromAdapter) return { ...fromAdapter, source: 'the adapter was trained on' };
  const { id2label, label2id } = m.loaded.config;
  if (id2label && label2id && Object.keys(label2id).some((k) => !/^LABEL_\d+$/.test(k))) {
    return { id2label, label2id, source: `of ${path.join(m.modelDir, 'config.json')} (label2id)` };
  }
  return undefined;
}

interface InspectFlags { task?: Task; numLabels?: number; config?: string; targetModules?: string; r?: number; loraAlpha?: number; modulesToSave?: string }

export async function runInspect(modelArg: string | undefined, o: InspectFlags, out: Output): Promise<void> {
  let cfg: RunConfig;
  let loraFile: string;
  let modelDir: string;
  if (o.config) {
    cfg = loadRunConfig(o.config);
    loraFile = o.config;
    modelDir = modelArg ?? (await resolveModelDir(cfg.model, 'model', { configFile: o.config, configOnly: true }));
  } else {
    if (!modelArg) throw new LoraStudioError('give a model folder, or --config with a run config', CLI, 'model-dir');
    modelDir = await resolveModelDir(modelArg, 'model-dir', { configOnly: true });
    const lora: Record<string, unknown> = {};
    if (o.targetModules !== undefined) lora.target_modules = parseTargetSpec(o.targetModules);
    if (o.r !== undefined) lora.r = o.r;
    if (o.loraAlpha !== undefined) lora.lora_alpha = o.loraAlpha;
    if (o.modulesToSave !== undefined) lora.modules_to_save = o.modulesToSave.split(',').map((x) => x.trim()).filter(Boolean);
    cfg = parseRunConfig({ model: modelDir, task: o.task ?? 'causal-lm', data: { train: '-' }, lora }, CLI, { resolvePaths: false });
    loraFile = CLI;
  }
  const result = inspect({
    modelDir, task: o.task ?? (o.config ? cfg.task : undefined), num_labels: o.numLabels ?? (o.config ? cfg.num_labels ?? undefined : undefined),
    lora: cfg.lora, explicitModulesToSave: cfg.lora.modules_to_save !== null, loraFile,
  });
  result.warnings.forEach((w) => out.warn(w));
  out.info('backend: none (inspect reads config.json only; no weights are loaded)');
  out.info(formatInspect(result));
  out.result({ backend: null, gpu: false, ...result } satisfies ResultBackend & InspectResult);
}

export async function runEval(modelDir: string, o: { data: string; adapter?: string; task?: Task; maxLength?: number; batchSize: number; backend?: string }, out: Output): Promise<void> {
  await namingFlags({ data: o.data, adapter: o.adapter }, () => evalWith(modelDir, o, out));
}

async function evalWith(modelDir: string, o: Parameters<typeof runEval>[1], out: Output): Promise<void> {
  const m = await openModel({ modelDir, adapterDir: o.adapter, task: o.task, backend: o.backend });
  try {
    out.info(backendLine(m.backend));
    loaderWarnings(m, out, 'eval');
    const task = m.loaded.task;
    const data = await prepareData(
      { train: o.data, eval: null, text_column: 'text', label_column: 'label', max_length: o.maxLength ?? m.model.maxPositions, eval_split: 0, format: null, max_bad_rows_ratio: 0 },
      task, m.tokenizer, { seed: 0, eos_token_id: m.tokenizer.eos_token_id ?? m.family.eosTokenId(m.loaded.config), num_labels: task === 'seq-cls' ? m.loaded.num_labels : undefined, modelDir },
    );
    const examples = data.train;
    // String labels: use the ids the model knows them by (the adapter's, else config.json's), not a fresh sorted mapping.
    const known = task === 'seq-cls' ? labelMaps(m) : undefined;
    let id2label = known?.id2label ?? data.id2label;
    if (task === 'seq-cls' && known && data.id2label) {
      for (const e of examples) {
        const name = data.id2label[String(e.label)];
        if (Object.hasOwn(known.label2id, name)) e.label = known.label2id[name];
        else if (!/^LABEL_\d+$/.test(name)) throw new LoraStudioError(`label ${JSON.stringify(name)} is not one ${known.source} (${Object.keys(known.label2id).join(', ')})`, o.data, 'label');
      }
    } else if (task === 'seq-cls' && !id2label) {
      id2label = Object.fromEntries(Array.from({ length: m.loaded.num_labels }, (_, i) => [String(i), `LABEL_${i}`]));
    }
    const metrics = await evaluate(m.model, examples, { batch_size: o.batchSize, pad_token_id: m.pad_token_id });
    for (const [k, v] of Object.entries(metrics)) out.info(`${k}: ${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(6) : v}`);
    if (id2label) out.info(`labels: ${Object.entries(id2label).map(([i, n]) => `${i} ${n}`).join(', ')}`);
    out.result({ backend: m.backend.backend, gpu: m.backend.gpu, ...adapterField(m.backend), task, ...metrics, ...(id2label ? { id2label } : {}) } satisfies EvalResult);
  } finally {
    m.model.dispose();
  }
}

export async function runGenerate(modelDir: string, o: { adapter?: string; prompt: string; maxNewTokens: number; temperature: number; topK: number; topP: number; seed: number; backend?: string }, out: Output): Promise<void> {
  if (o.prompt === '') throw new LoraStudioError('is empty; give the text to continue', CLI, '--prompt');
  const m = await namingFlags({ adapter: o.adapter }, () => openModel({ modelDir, adapterDir: o.adapter, task: 'causal-lm', backend: o.backend, command: 'generate' }));
  try {
    out.info(backendLine(m.backend));
    loaderWarnings(m, out, 'generate');
    const promptIds = m.tokenizer.encode(o.prompt);
    if (promptIds.length === 0) throw new LoraStudioError('the prompt is empty after tokenization', CLI, '--prompt');
    // Refused rather than cut: a silently shortened prompt gives a continuation of some other text.
    const limit = m.model.maxPositions;
    if (promptIds.length >= limit) {
      throw new LoraStudioError(`the prompt has ${promptIds.length} tokens, which leaves no room to generate: the model's limit (${familyFor(m.loaded.config).positionsField}) is ${limit} tokens, prompt and generated text together; shorten it to at most ${limit - 1}`, CLI, '--prompt');
    }
    // eos: config.json's (one id, or Llama 3's list), generation_config.json's (as transformers' generate reads
    // it: Llama 3.x Instruct ends turns with <|eot_id|>, listed only there) and the tokenizer's
    const eos = [...new Set([m.loaded.config.eos_token_id ?? [], generationEosIds(m.loaded.dir), m.tokenizer.eos_token_id ?? []].flat())];
    const ids = await generate(m.model, promptIds, { max_new_tokens: o.maxNewTokens, temperature: o.temperature, top_k: o.topK, top_p: o.topP, seed: o.seed, eos_token_id: eos });
    const completion = m.tokenizer.decode(ids);
    out.info(o.prompt + completion);
    out.result({ backend: m.backend.backend, gpu: m.backend.gpu, ...adapterField(m.backend), prompt: o.prompt, completion, token_ids: ids } satisfies GenerateResult);
  } finally {
    m.model.dispose();
  }
}

export async function runClassify(modelDir: string, o: { adapter?: string; text: string; backend?: string }, out: Output): Promise<void> {
  if (o.text === '') throw new LoraStudioError('is empty; give the text to classify', CLI, '--text');
  const m = await namingFlags({ adapter: o.adapter }, () => openModel({ modelDir, adapterDir: o.adapter, task: 'seq-cls', backend: o.backend, command: 'classify' }));
  try {
    out.info(backendLine(m.backend));
    loaderWarnings(m, out, 'classify');
    const ids = m.tokenizer.encode(o.text).slice(0, m.model.maxPositions);
    if (ids.length === 0) throw new LoraStudioError('the text is empty after tokenization', CLI, '--text');
    const logits = m.model.logits(collate([{ input_ids: ids }], m.pad_token_id), { training: false });
    const row = Array.from(await logits.data());
    logits.dispose();
    const max = Math.max(...row);
    const exp = row.map((v) => Math.exp(v - max));
    const sum = exp.reduce((a, b) => a + b, 0);
    const id2label = labelMaps(m)?.id2label ?? m.loaded.config.id2label ?? {};
    const name = (i: number) => id2label[String(i)] ?? `LABEL_${i}`;
    const probabilities = Object.fromEntries(exp.map((e, i) => [name(i), e / sum]));
    const label_id = row.indexOf(max);
    for (const [k, p] of Object.entries(probabilities)) out.info(`${k === name(label_id) ? '→' : ' '} ${k}: ${p.toFixed(4)}`);
    out.result({ backend: m.backend.backend, gpu: m.backend.gpu, ...adapterField(m.backend), text: o.text, label: name(label_id), label_id, probabilities } satisfies ClassifyResult);
  } finally {
    m.model.dispose();
  }
}

/** SIGINT/SIGTERM stop a run cleanly: the loop saves a checkpoint, then the process exits 0. */
function stopSignal(out: Output): AbortSignal {
  const abort = new AbortController();
  const onSignal = (sig: string) => {
    if (abort.signal.aborted) process.exit(130);
    out.warn(`${sig}: stopping after this step and saving a checkpoint (send it again to quit at once)`);
    abort.abort();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  return abort.signal;
}

export function eventPrinter(out: Output): (e: TrainEvent) => void {
  const progress = progressPrinter();
  return (e) => {
    if (out.json) {
      out.result(e);
      return;
    }
    if (e.event === 'error') return; // the CLI prints errors itself, on stderr
    if (e.event === 'log') {
      if (e.level === 'warning') out.warn(e.message);
      else out.info(e.message);
      return;
    }
    progress(e);
  };
}

export async function runTrain(o: { config: string; resume?: string | boolean; backend?: string }, out: Output): Promise<void> {
  const overrides = o.resume !== undefined ? { training: { resume_from_checkpoint: o.resume === true ? true : path.resolve(String(o.resume)) } } : undefined;
  const cfg = loadRunConfig(o.config, overrides);
  await train(cfg, { onEvent: eventPrinter(out), signal: stopSignal(out), backend: o.backend, configFile: o.config });
}

export async function runDemo(o: { model?: string; out: string; epochs?: number; backend?: string }, out: Output): Promise<void> {
  await runDemoJob({ model: o.model, workDir: o.out, epochs: o.epochs, backend: o.backend, signal: stopSignal(out) }, out, eventPrinter(out));
}
