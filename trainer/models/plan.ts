/**
 * Which parameters a LoRA model holds, with what initial values, and which of them train — for any family, given
 * a few facts about it (PlanHooks): its weight shapes, each module's in/out features, which modules can take LoRA,
 * the tied head, the embedding that cannot be trained in full, the init of a fresh seq-cls head. PEFT's rules:
 * LoRA factors from the adapter or PEFT's seeded init, modules_to_save (a trained full copy), bias modes.
 * Values stay in their HF / PEFT layout here; `transposed` names those the model holds as [in, out].
 */
import { closestNames, LoraStudioError } from '../errors';
import type { HostTensor } from '../io/safetensors';
import { initialLoraFactors } from '../lora/layer';
import { Rng } from '../util/rng';
import type { ModelSpec } from './family';

export interface PlanHooks {
  /** every base weight by canonical HF key, with its shape (the family's weightShapes for this task) */
  shapes: Map<string, number[]>;
  /** [in_features, out_features] of a module that can take LoRA */
  moduleDims(name: string): [number, number];
  /** whether the module (one of the model's) can carry LoRA; `loraRefusal` says which can */
  canTakeLora(name: string): boolean;
  loraRefusal: string;
  /** causal-lm with lm_head tied to an embedding: that embedding's weight key (lm_head.weight is then not stored) */
  tiedHead?: string;
  /** the embedding module that cannot be trained in full (its gradient needs a gather), and why it is named so */
  frozenEmbedding: { module: string; name: string };
  /** std of the normal init of a fresh score.weight (transformers' initializer_range) */
  headInitStd: number;
  /** whether a key's value is held transposed ([in, out]) inside the model (Linear weights, LoRA factors) */
  transposed(key: string): boolean;
  /**
   * Base weights the family's fast path can read in 16 bits (ops/half.ts: as the GEMM's B, or by row lookup),
   * kept so when stored so and frozen; absent: none.
   */
  halfOk?(key: string): boolean;
}

export interface Plan {
  /** every parameter in HF / PEFT layout (a tied lm_head is the model's to add) */
  values: Map<string, HostTensor>;
  trainable: Set<string>;
  scaling: Map<string, number>;
  /** the keys of `values` held transposed inside the model */
  transposed: Set<string>;
  /** the base weights (hooks.shapes' keys): what a replica is rebuilt from */
  baseKeys: Set<string>;
  /**
   * Frozen base weights stored in 16 bits (with `bits`) that the model may keep so, untransposed, where its
   * backend allows (models/lora_model.ts): those halfOk names whose module's bias, if any, is frozen too.
   */
  half: Set<string>;
}

export const ADAPTER_FILE = 'adapter_model.safetensors';

export function planParameters(spec: ModelSpec, hooks: PlanHooks): Plan {
  const { task } = spec;
  if (task === 'seq-cls' && !(Number.isInteger(spec.num_labels) && spec.num_labels >= 2)) {
    throw new LoraStudioError(`seq-cls needs num_labels >= 2, got ${spec.num_labels}`, undefined, 'num_labels');
  }
  const { shapes } = hooks;
  const values = new Map<string, HostTensor>();
  for (const [key, shape] of shapes) {
    const t = spec.weights.get(key);
    if (!t) {
      if (key === 'score.weight') continue; // filled below: from the adapter, or a fresh head
      throw new LoraStudioError(`the base weights have no ${key}`, undefined, key);
    }
    if (!sameShape(t.shape, shape)) throw new LoraStudioError(`has shape ${fmt(t.shape)}, but config.json implies ${fmt(shape)}`, undefined, key);
    values.set(key, t);
  }

  // The module table we can train: name → its parameter keys.
  const modules = new Map<string, string[]>();
  for (const key of shapes.keys()) {
    const mod = key.slice(0, key.lastIndexOf('.'));
    modules.set(mod, [...(modules.get(mod) ?? []), key]);
  }
  const tied = task === 'causal-lm' ? hooks.tiedHead : undefined;
  if (tied) modules.set('lm_head', ['lm_head.weight']);

  // Adapter extras override base values (HF layout).
  const extras = spec.adapter?.extra ?? new Map<string, HostTensor>();
  for (const [key, t] of extras) {
    const shape = key === 'lm_head.weight' && tied ? shapes.get(tied) : shapes.get(key);
    if (!shape) throw new LoraStudioError(`the adapter holds ${key}, which this model does not have${hint(key, shapes.keys())}`, ADAPTER_FILE, key);
    if (!sameShape(t.shape, shape)) throw new LoraStudioError(`has shape ${fmt(t.shape)}, but the model expects ${fmt(shape)}`, ADAPTER_FILE, key);
    values.set(key, t);
  }
  if (task === 'seq-cls' && !values.has('score.weight')) {
    // transformers initializes a missing head as nn.Linear with normal(0, initializer_range)
    const [labels, C] = shapes.get('score.weight')!;
    const rng = new Rng(spec.seed ^ 0x2545f491);
    const data = new Float32Array(labels * C);
    for (let i = 0; i < data.length; i++) data[i] = hooks.headInitStd * rng.normal();
    values.set('score.weight', { shape: [labels, C], data, dtype: 'F32' });
  }

  const trainable = new Set<string>();
  // modules_to_save: PEFT trains a full copy of each matched module.
  for (const entry of spec.modules_to_save) {
    for (const [mod, keys] of modules) {
      if (mod !== entry && !mod.endsWith(`.${entry}`)) continue;
      if (mod === hooks.frozenEmbedding.module) {
        throw new LoraStudioError(`training ${hooks.frozenEmbedding.name} in full is not supported (its gradient needs a gather, which the wasm backend lacks)`, undefined, 'modules_to_save');
      }
      for (const k of keys) trainable.add(k);
    }
  }
  if (tied && trainable.has('lm_head.weight') && !values.has('lm_head.weight')) values.set('lm_head.weight', values.get(tied)!);

  // LoRA factors: from the adapter, else PEFT's initialization (seeded, in target order).
  const scaling = new Map<string, number>();
  const rng = new Rng(spec.seed);
  const known = new Set(modules.keys());
  for (const t of spec.targets) {
    if (!known.has(t.name) || !hooks.canTakeLora(t.name)) {
      // a module that exists but cannot take LoRA gets no "did you mean" (it would suggest itself)
      throw new LoraStudioError(`cannot take LoRA: ${hooks.loraRefusal}${known.has(t.name) ? '' : hint(t.name, known)}`, undefined, t.name);
    }
    const [inF, outF] = hooks.moduleDims(t.name);
    if (t.in_features !== inF || t.out_features !== outF) {
      throw new LoraStudioError(`target says in/out ${t.in_features}/${t.out_features}, the model has ${inF}/${outF}`, undefined, t.name);
    }
    let f = spec.adapter?.lora.get(t.name);
    if (spec.adapter && !f) throw new LoraStudioError(`the adapter has no lora_A/lora_B for target ${t.name}`, ADAPTER_FILE, t.name);
    f ??= initialLoraFactors(inF, outF, t.r, spec.init_lora_weights, rng);
    if (!sameShape(f.A.shape, [t.r, inF])) throw new LoraStudioError(`lora_A has shape ${fmt(f.A.shape)}, expected [${t.r}, ${inF}] (r = ${t.r})`, ADAPTER_FILE, `${t.name}.lora_A.weight`);
    if (!sameShape(f.B.shape, [outF, t.r])) throw new LoraStudioError(`lora_B has shape ${fmt(f.B.shape)}, expected [${outF}, ${t.r}] (r = ${t.r})`, ADAPTER_FILE, `${t.name}.lora_B.weight`);
    values.set(`${t.name}.lora_A.weight`, f.A);
    values.set(`${t.name}.lora_B.weight`, f.B);
    trainable.add(`${t.name}.lora_A.weight`).add(`${t.name}.lora_B.weight`);
    scaling.set(t.name, t.scaling);
  }
  if (spec.adapter) {
    for (const name of spec.adapter.lora.keys()) {
      if (!scaling.has(name)) throw new LoraStudioError(`the adapter has LoRA factors for ${name}, which is not a target module`, ADAPTER_FILE, name);
    }
  }

  // PEFT's bias modes.
  if (spec.bias === 'all') {
    for (const key of values.keys()) if (key.endsWith('.bias')) trainable.add(key);
  } else if (spec.bias === 'lora_only') {
    for (const t of spec.targets) if (values.has(`${t.name}.bias`)) trainable.add(`${t.name}.bias`);
  }

  const transposed = new Set([...values.keys()].filter((key) => hooks.transposed(key)));
  const baseKeys = new Set([...shapes.keys()].filter((key) => values.has(key)));
  const half = new Set([...baseKeys].filter((key) => {
    const bias = key.replace(/\.weight$/, '.bias');
    return hooks.halfOk?.(key) === true && values.get(key)!.bits !== undefined && !trainable.has(key) && !trainable.has(bias);
  }));
  return { values, trainable, scaling, transposed, baseKeys, half };
}

export function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function hint(name: string, candidates: Iterable<string>): string {
  const close = closestNames(name, candidates);
  return close.length ? `; did you mean ${close.join(', ')}?` : '';
}
