/**
 * PEFT's on-disk LoRA adapter, both directions: adapter_config.json + adapter_model.safetensors with keys
 * `base_model.model.<module>.lora_A.weight` [r, in] / `….lora_B.weight` [out, r] and other saved tensors
 * (modules_to_save, biases). Also builds the config PEFT would write, and checks an adapter against a model, with
 * what the model's family says about it (AdapterFacts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoraStudioError, closestNames, preview } from '../errors';
import { type HostTensor, readSafetensors, tensorToF32, writeSafetensors } from '../io/safetensors';
import { writeJsonAtomic } from '../io/atomic';
import { isPlainObject, parseJsonText, readJsonFile } from '../io/json';
import { checkLabelMaps } from '../data/labels';
import type { LoraConfig } from './config';
import { PEFT_TASK_TYPE, type Task } from '../task';
import { compilePatternKeys, rankTable } from './patterns';
import type { AdapterConfigJson, AdapterWeights } from './types';
import { resolveBaseModelRef } from './base_model_ref';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const KEY_PREFIX = 'base_model.model.';

const LORA_KEY = /^(.+)\.lora_([AB])(?:\.([^.]+))?\.weight$/;

/** Reads and checks a PEFT LoRA adapter folder. Errors name the file and the field or tensor key. */
export function loadAdapter(dir: string): AdapterWeights {
  const cfgFile = path.join(dir, ADAPTER_CONFIG_FILE);
  const wFile = path.join(dir, ADAPTER_WEIGHTS_FILE);
  if (!fs.existsSync(cfgFile)) throw new LoraStudioError(`missing: a PEFT adapter folder needs ${ADAPTER_CONFIG_FILE} and ${ADAPTER_WEIGHTS_FILE}`, cfgFile);
  const config = parseAdapterConfig(readJsonFile(cfgFile), cfgFile);
  if (!fs.existsSync(wFile)) {
    const bin = fs.existsSync(path.join(dir, 'adapter_model.bin'));
    throw new LoraStudioError(
      bin
        ? 'missing: only adapter_model.bin is here. PyTorch pickles are not supported (they can run code); re-save the adapter with save_pretrained(..., safe_serialization=True)'
        : 'missing: a PEFT adapter folder needs this file',
      wFile,
    );
  }
  const st = readSafetensors(wFile);
  readLabelMaps(st.metadata, wFile); // checked now, so that a later adapterLabelMaps cannot fail
  const halves = new Map<string, { A?: HostTensor; B?: HostTensor; keyA?: string; keyB?: string }>();
  const extra = new Map<string, HostTensor>();
  let adapterName: string | undefined;
  for (const key of st.entries.keys()) {
    if (!key.startsWith(KEY_PREFIX)) throw new LoraStudioError(`tensor key does not start with "${KEY_PREFIX}"; not a PEFT adapter file?`, wFile, key);
    const rel = key.slice(KEY_PREFIX.length);
    const m = LORA_KEY.exec(rel);
    if (m) {
      const [, module, ab, name] = m;
      if (name !== undefined) {
        if (adapterName !== undefined && adapterName !== name) {
          throw new LoraStudioError(`holds two adapters ("${adapterName}" and "${name}"); save one adapter per folder`, wFile, key);
        }
        adapterName = name;
      }
      const t = tensorToF32(st, key);
      if (t.shape.length !== 2) throw new LoraStudioError(`lora_${ab} must be 2-D, got shape ${JSON.stringify(t.shape)}`, wFile, key);
      const h = halves.get(module) ?? {};
      if (h[ab as 'A' | 'B']) throw new LoraStudioError(`lora_${ab} of ${module} appears twice`, wFile, key);
      h[ab as 'A' | 'B'] = t;
      h[ab === 'A' ? 'keyA' : 'keyB'] = key;
      halves.set(module, h);
      continue;
    }
    if (/(^|\.)lora_(embedding_[AB]|magnitude_vector|[AB])(\.|$)/.test(rel)) {
      throw new LoraStudioError('unsupported LoRA tensor (embedding LoRA, DoRA or LoRA biases are not supported)', wFile, key);
    }
    // PEFT strips `modules_to_save.<adapter>.` when saving; accept files saved without that step.
    const plain = rel.replace(/\.modules_to_save\.[^.]+\./, '.');
    if (extra.has(plain)) throw new LoraStudioError(`${plain} appears twice`, wFile, key);
    extra.set(plain, tensorToF32(st, key));
  }
  const lora = new Map<string, { A: HostTensor; B: HostTensor }>();
  const ranks = rankTable(config, [...halves.keys()], { file: cfgFile }).byName;
  for (const [module, h] of [...halves.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
    if (!h.A || !h.B) {
      const have = (h.keyA ?? h.keyB)!;
      throw new LoraStudioError(`has lora_${h.A ? 'A' : 'B'} but no lora_${h.A ? 'B' : 'A'} for module ${module}`, wFile, have);
    }
    const rA = h.A.shape[0];
    const rB = h.B.shape[1];
    if (rA !== rB) throw new LoraStudioError(`rank ${rB} (shape ${JSON.stringify(h.B.shape)}) disagrees with lora_A's rank ${rA} (shape ${JSON.stringify(h.A.shape)})`, wFile, h.keyB);
    const { r } = ranks.get(module)!;
    if (rA !== r) throw new LoraStudioError(`rank ${rA} (shape ${JSON.stringify(h.A.shape)}) disagrees with r = ${r} from ${ADAPTER_CONFIG_FILE} (r / rank_pattern)`, wFile, h.keyA);
    lora.set(module, { A: h.A, B: h.B });
  }
  if (lora.size === 0) throw new LoraStudioError('holds no lora_A / lora_B tensors', wFile);
  return { config, lora, extra, metadata: st.metadata };
}

const isObj = isPlainObject;
const isStrList = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

/**
 * Validates the fields we use (types, names the field on error), fills PEFT's defaults for the ones older
 * versions omit, and keeps every other key as it is (newer PEFT adds fields such as eva_config, lora_bias).
 */
export function parseAdapterConfig(raw: unknown, file: string): AdapterConfigJson {
  if (!isObj(raw)) throw new LoraStudioError('must be a JSON object', file);
  const fail = (field: string, msg: string): never => {
    throw new LoraStudioError(msg, file, field);
  };
  if (raw.peft_type !== 'LORA') fail('peft_type', `must be "LORA", got ${preview(raw.peft_type)}; only LoRA adapters are supported`);
  if (!Number.isInteger(raw.r) || (raw.r as number) <= 0) fail('r', `must be a positive integer, got ${preview(raw.r)}`);
  if (typeof raw.lora_alpha !== 'number' || !Number.isFinite(raw.lora_alpha)) fail('lora_alpha', `must be a number, got ${preview(raw.lora_alpha)}`);
  if (!('target_modules' in raw)) fail('target_modules', 'missing');
  const c: Record<string, unknown> = {
    task_type: null, base_model_name_or_path: null, lora_dropout: 0, modules_to_save: null, bias: 'none',
    use_rslora: false, fan_in_fan_out: false, init_lora_weights: true, rank_pattern: {}, alpha_pattern: {}, inference_mode: true,
    ...raw,
  };
  const strOrList = (k: string) => {
    const v = c[k];
    if (v !== null && typeof v !== 'string' && !isStrList(v)) fail(k, `must be a string (regex), a list of module names, or null; got ${preview(v)}`);
  };
  strOrList('target_modules');
  if (c.exclude_modules !== undefined) strOrList('exclude_modules');
  if (c.task_type !== null && c.task_type !== 'CAUSAL_LM' && c.task_type !== 'SEQ_CLS') fail('task_type', `unsupported ${preview(c.task_type)}; supported: "CAUSAL_LM", "SEQ_CLS"`);
  if (c.base_model_name_or_path !== null && typeof c.base_model_name_or_path !== 'string') fail('base_model_name_or_path', `must be a string or null, got ${preview(c.base_model_name_or_path)}`);
  if (typeof c.lora_dropout !== 'number' || c.lora_dropout < 0 || c.lora_dropout >= 1) fail('lora_dropout', `must be a number in [0, 1), got ${preview(c.lora_dropout)}`);
  if (c.modules_to_save !== null && !isStrList(c.modules_to_save)) fail('modules_to_save', `must be a list of module names or null, got ${preview(c.modules_to_save)}`);
  if (!['none', 'all', 'lora_only'].includes(c.bias as string)) fail('bias', `must be "none", "all" or "lora_only", got ${preview(c.bias)}`);
  for (const k of ['use_rslora', 'fan_in_fan_out', 'inference_mode']) if (typeof c[k] !== 'boolean') fail(k, `must be true or false, got ${preview(c[k])}`);
  // Booleans newer PEFT versions add: absent in older files, never anything but a boolean.
  for (const k of ['use_dora', 'lora_bias', 'use_qalora']) if (c[k] !== undefined && typeof c[k] !== 'boolean') fail(k, `must be true or false, got ${preview(c[k])}`);
  if (typeof c.init_lora_weights !== 'boolean' && typeof c.init_lora_weights !== 'string') fail('init_lora_weights', `must be a boolean or a string, got ${preview(c.init_lora_weights)}`);
  for (const k of ['rank_pattern', 'alpha_pattern'] as const) {
    const p = c[k];
    if (!isObj(p)) fail(k, `must be an object of module pattern → number, got ${preview(p)}`);
    for (const [pk, pv] of Object.entries(p as Record<string, unknown>)) {
      const ok = k === 'rank_pattern' ? Number.isInteger(pv) && (pv as number) > 0 : typeof pv === 'number' && Number.isFinite(pv);
      if (!ok) fail(`${k}.${pk.length > 60 ? `${pk.slice(0, 59)}…` : pk}`, `must be ${k === 'rank_pattern' ? 'a positive integer' : 'a number'}, got ${preview(pv)}`);
    }
  }
  // Pattern keys are regexes: a syntax error is reported here, naming the key (matching happens in rankTable).
  compilePatternKeys(c as Pick<AdapterConfigJson, 'rank_pattern' | 'alpha_pattern'>, file);
  // Variants whose weights do not merge as W + s·BA: refuse rather than produce a wrong model.
  if (c.use_dora === true) fail('use_dora', 'DoRA adapters are not supported');
  if (c.lora_bias === true) fail('lora_bias', 'LoRA biases (lora_bias: true) are not supported');
  if (c.use_qalora === true) fail('use_qalora', 'QA-LoRA adapters are not supported');
  if (c.layer_replication !== undefined && c.layer_replication !== null) fail('layer_replication', 'layer replication is not supported');
  return c as AdapterConfigJson;
}

export interface AdapterLabelMaps {
  id2label: Record<string, string>;
  label2id: Record<string, number>;
}

/**
 * The label maps in safetensors metadata (JSON strings under `id2label` and `label2id`), parsed and checked as
 * config.json's are; undefined when either is absent. Errors name `file` and `__metadata__.<key>`.
 */
export function readLabelMaps(metadata: Record<string, string> | undefined, file: string): AdapterLabelMaps | undefined {
  if (!metadata) return undefined;
  const has = (k: string) => Object.hasOwn(metadata, k);
  if (!has('id2label') && !has('label2id')) return undefined;
  if (!has('id2label') || !has('label2id')) {
    throw new LoraStudioError('holds only one of id2label and label2id; the seq-cls label names need both', file, `__metadata__.${has('id2label') ? 'label2id' : 'id2label'}`);
  }
  const id2label = parseJsonText(metadata.id2label, file, '__metadata__.id2label');
  const label2id = parseJsonText(metadata.label2id, file, '__metadata__.label2id');
  checkLabelMaps(id2label, label2id, file, '__metadata__.');
  return { id2label: id2label as Record<string, string>, label2id: label2id as Record<string, number> };
}

/** The seq-cls head's label names that training stores in the adapter's safetensors metadata, if any (checked by loadAdapter). */
export function adapterLabelMaps(adapter: AdapterWeights, file = ADAPTER_WEIGHTS_FILE): AdapterLabelMaps | undefined {
  return readLabelMaps(adapter.metadata, file);
}

/**
 * Writes adapter_config.json (keys sorted, inference_mode true) and adapter_model.safetensors (keys sorted,
 * metadata {"format": "pt"} plus the adapter's own, e.g. id2label), each atomically. `dir` may exist already (checkpoints reuse their folder).
 */
export function saveAdapter(dir: string, adapter: AdapterWeights): void {
  const wFile = path.join(dir, ADAPTER_WEIGHTS_FILE);
  const tensors = new Map<string, HostTensor>();
  for (const [module, { A, B }] of adapter.lora) {
    if (A.shape.length !== 2 || B.shape.length !== 2 || A.shape[0] !== B.shape[1]) {
      throw new LoraStudioError(`lora_A ${JSON.stringify(A.shape)} and lora_B ${JSON.stringify(B.shape)} do not pair up`, wFile, `${KEY_PREFIX}${module}.lora_A.weight`);
    }
    tensors.set(`${KEY_PREFIX}${module}.lora_A.weight`, A);
    tensors.set(`${KEY_PREFIX}${module}.lora_B.weight`, B);
  }
  for (const [key, t] of adapter.extra) tensors.set(KEY_PREFIX + key, t);
  const sorted = new Map([...tensors.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(wFile, sorted, { ...adapter.metadata, format: 'pt' });
  writeJsonAtomic(path.join(dir, ADAPTER_CONFIG_FILE), { ...adapter.config, inference_mode: true }, true);
}

/**
 * adapter_config.json as a recent PEFT (0.17) writes it for our LoraConfig: its full key set with PEFT's
 * defaults for the features we do not use. fan_in_fan_out is the effective one the caller resolved (resolveTargets
 * forces it true when a Conv1D is targeted, as PEFT does). `targetModules` overrides lora.target_modules (e.g.
 * with the resolved names); lists are written sorted, as a set.
 */
export function adapterConfigJson(
  lora: LoraConfig,
  task: Task,
  base_model_name_or_path: string | null,
  targetModules?: string | string[] | null,
): AdapterConfigJson {
  const tm = targetModules === undefined ? lora.target_modules : targetModules;
  const asSet = (v: string | string[] | null) => (Array.isArray(v) ? [...new Set(v)].sort() : v);
  return {
    alpha_pattern: { ...lora.alpha_pattern },
    auto_mapping: null,
    base_model_name_or_path,
    bias: lora.bias,
    corda_config: null,
    eva_config: null,
    exclude_modules: asSet(lora.exclude_modules),
    fan_in_fan_out: lora.fan_in_fan_out,
    inference_mode: true,
    init_lora_weights: lora.init_lora_weights,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: lora.lora_alpha,
    lora_bias: false,
    lora_dropout: lora.lora_dropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: lora.modules_to_save ? [...lora.modules_to_save] : null,
    peft_type: 'LORA',
    qalora_group_size: 16,
    r: lora.r,
    rank_pattern: { ...lora.rank_pattern },
    revision: null,
    target_modules: asSet(tm),
    target_parameters: null,
    task_type: PEFT_TASK_TYPE[task],
    trainable_token_indices: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: lora.use_rslora,
  };
}

/** Shape of a weight: a bare shape or anything with one (HostTensor, TensorEntry). */
export type ShapeSource = Map<string, number[] | { shape: number[] }>;

/** What checkAdapterFitsModel needs to know and say about the model; its family gives it (ModelFamily.adapterFacts). */
export interface AdapterFacts {
  /** the architecture in messages, e.g. "GPT-2" */
  name: string;
  /** its depth in messages, e.g. "n_layer 12" */
  depth: string;
  /** its widths in messages, e.g. "n_embd 768, inner 3072" */
  widths: string;
  /** Conv1D (weight [in, out]) or Linear (weight [out, in]) for a module an adapter may adapt; undefined otherwise */
  loraKind(module: string): 'Conv1D' | 'Linear' | undefined;
  /** why `module` (which has a weight) cannot carry LoRA */
  whyNotLora(module: string): string;
}

/**
 * Checks that every LoRA module and extra tensor of `adapter` exists in this model with matching shapes.
 * `weights` holds the model's canonical keys (a weights map or the family's weightShapes). Errors name
 * `adapterFile` and the tensor key, with expected and found shapes; modules the model does not have mean another
 * architecture.
 */
export function checkAdapterFitsModel(adapter: AdapterWeights, adapterFile: string, facts: AdapterFacts, weights: ShapeSource): void {
  const shapeOf = (k: string) => {
    const v = weights.get(k);
    return v === undefined ? undefined : Array.isArray(v) ? v : v.shape;
  };
  const base = adapter.config.base_model_name_or_path;
  const baseAt = base ? resolveBaseModelRef(base, path.dirname(adapterFile)) : null;
  const builtFor = base ? ` (its ${ADAPTER_CONFIG_FILE} says base_model_name_or_path: ${JSON.stringify(base)}${baseAt !== base ? `, i.e. ${baseAt}` : ''})` : '';
  const modules = [...weights.keys()].filter((k) => k.endsWith('.weight')).map((k) => k.slice(0, -'.weight'.length));
  const foreign = (module: string, key: string): never => {
    const close = closestNames(module, modules);
    throw new LoraStudioError(
      `module ${module} does not exist in this ${facts.name} model (${facts.depth}): the adapter was built for another architecture${builtFor}` +
        (close.length ? `; ${facts.name} has e.g. ${close.join(', ')}` : ''),
      adapterFile,
      key,
    );
  };
  for (const [module, { A, B }] of adapter.lora) {
    const keyA = `${KEY_PREFIX}${module}.lora_A.weight`;
    const keyB = `${KEY_PREFIX}${module}.lora_B.weight`;
    const w = shapeOf(`${module}.weight`);
    // a tied lm_head has no weight of its own: the family says why it takes no LoRA, rather than "another architecture"
    if (!w && module !== 'lm_head') foreign(module, keyA);
    const kind = facts.loraKind(module);
    if (!kind) throw new LoraStudioError(`module ${module}: ${facts.whyNotLora(module)}`, adapterFile, keyA);
    if (!w) foreign(module, keyA);
    const [inF, outF] = kind === 'Conv1D' ? [w![0], w![1]] : [w![1], w![0]];
    const r = A.shape[0];
    if (A.shape[1] !== inF) {
      throw new LoraStudioError(`shape mismatch: expected ${JSON.stringify([r, inF])} for this model (${facts.widths}), found ${JSON.stringify(A.shape)}`, adapterFile, keyA);
    }
    if (B.shape[0] !== outF) {
      throw new LoraStudioError(`shape mismatch: expected ${JSON.stringify([outF, r])} for this model (${facts.widths}), found ${JSON.stringify(B.shape)}`, adapterFile, keyB);
    }
  }
  for (const [key, t] of adapter.extra) {
    const w = shapeOf(key);
    if (!w) {
      const module = key.replace(/\.(weight|bias)$/, '');
      foreign(module, KEY_PREFIX + key);
    }
    if (w!.length !== t.shape.length || w!.some((d, i) => d !== t.shape[i])) {
      throw new LoraStudioError(`shape mismatch: expected ${JSON.stringify(w)} for this model, found ${JSON.stringify(t.shape)}`, adapterFile, KEY_PREFIX + key);
    }
  }
}
