/**
 * AdamW with torch.optim.AdamW's update (non-amsgrad, single-tensor semantics) on tfjs variables,
 * transformers' choice of which parameters get weight decay, and the optimizer state as
 * JSON metadata + Float32Arrays for checkpoints (saved by the caller as safetensors).
 */
import * as tf from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { LoraStudioError } from '../errors';
import { MAX_STEPS } from '../config/schema';
import { parseJsonText } from '../io/json';
import type { HostTensor } from '../io/safetensors';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weight_decay: number;
  /** names of the parameters that get weight decay (see decayParameterNames) */
  decay: Set<string>;
}

/** The JSON part of the state. `steps` is per parameter, as torch keeps it; `step` is the optimizer's step count. */
export interface OptimizerStateMeta {
  optimizer: 'adamw';
  step: number;
  steps: Record<string, number>;
  beta1: number;
  beta2: number;
  eps: number;
  weight_decay: number;
  decay: string[];
}

/**
 * The state as a safetensors file holds it: F32 tensors `exp_avg.<param name>` and `exp_avg_sq.<param name>`,
 * and string metadata (`optimizer_state`: the JSON of OptimizerStateMeta). Pass both to writeSafetensors.
 */
export interface OptimizerState {
  tensors: Map<string, HostTensor>;
  metadata: Record<string, string>;
}

/**
 * transformers' Trainer gives weight decay to every parameter except biases and LayerNorm weights
 * (get_decay_parameter_names). Names: any containing "bias" (as transformers), "layernorm"/"layer_norm"
 * or a GPT-2 LayerNorm module (`ln_1`, `ln_2`, `ln_f`, i.e. a path segment starting with "ln_").
 */
export function decayParameterNames(names: string[]): Set<string> {
  const noDecay = (n: string) => /bias/.test(n) || /layer_?norm/i.test(n) || /(^|\.)ln_/.test(n);
  return new Set(names.filter((n) => !noDecay(n)));
}

interface Slot {
  step: number;
  exp_avg: tf.Tensor;
  exp_avg_sq: tf.Tensor;
}

export class AdamW {
  private readonly slots = new Map<string, Slot>();
  private stepCount = 0;

  constructor(
    private readonly params: Map<string, tf.Variable>,
    private readonly opts: AdamWOptions,
  ) {
    for (const n of opts.decay) if (!params.has(n)) throw new Error(`AdamW: decay parameter ${n} is not among the parameters`);
    for (const [name, p] of params) {
      this.slots.set(name, { step: 0, exp_avg: tf.zerosLike(p), exp_avg_sq: tf.zerosLike(p) });
    }
  }

  /** optimizer steps taken so far */
  get step_count(): number {
    return this.stepCount;
  }

  /**
   * One update with learning rate `lr`. Parameters without a gradient in `grads` are skipped (as torch skips
   * params whose .grad is None). The gradients are read, never disposed.
   */
  step(grads: Map<string, tf.Tensor>, lr: number): void {
    for (const name of grads.keys()) if (!this.params.has(name)) throw new Error(`AdamW: gradient for unknown parameter ${name}`);
    const { beta1, beta2, eps } = this.opts;
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g) continue;
      const slot = this.slots.get(name)!;
      slot.step += 1;
      const t = slot.step;
      const wd = this.opts.decay.has(name) ? this.opts.weight_decay : 0;
      const biasCorrection1 = 1 - beta1 ** t;
      const biasCorrection2Sqrt = Math.sqrt(1 - beta2 ** t);
      const stepSize = lr / biasCorrection1;
      const [m, v] = tf.tidy(() => {
        const decayed = wd !== 0 ? tf.mul(p, tf.scalar(1 - lr * wd)) : p;
        const m = tf.add(tf.mul(slot.exp_avg, tf.scalar(beta1)), tf.mul(g, tf.scalar(1 - beta1)));
        const v = tf.add(tf.mul(slot.exp_avg_sq, tf.scalar(beta2)), tf.mul(tf.mul(g, g), tf.scalar(1 - beta2)));
        const denom = tf.add(tf.div(tf.sqrt(v), tf.scalar(biasCorrection2Sqrt)), tf.scalar(eps));
        p.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), tf.scalar(stepSize))));
        return [m, v];
      });
      slot.exp_avg.dispose();
      slot.exp_avg_sq.dispose();
      slot.exp_avg = m;
      slot.exp_avg_sq = v;
    }
    this.stepCount += 1;
  }

  async exportState(): Promise<OptimizerState> {
    const tensors = new Map<string, HostTensor>();
    const steps: Record<string, number> = {};
    for (const [name, slot] of this.slots) {
      const shape = slot.exp_avg.shape.slice();
      tensors.set(`exp_avg.${name}`, { shape, data: Float32Array.from((await slot.exp_avg.data()) as Float32Array), dtype: 'F32' });
      tensors.set(`exp_avg_sq.${name}`, { shape: shape.slice(), data: Float32Array.from((await slot.exp_avg_sq.data()) as Float32Array), dtype: 'F32' });
      steps[name] = slot.step;
    }
    const { beta1, beta2, eps, weight_decay } = this.opts;
    const meta: OptimizerStateMeta = { optimizer: 'adamw', step: this.stepCount, steps, beta1, beta2, eps, weight_decay, decay: [...this.opts.decay].sort() };
    return { tensors, metadata: { [META_KEY]: JSON.stringify(meta) } };
  }

  /**
   * Restores moments and step counts from exportState()'s output (or a safetensors file's tensors and metadata).
   * The parameter names and shapes must match this optimizer's; `file` names the source in errors.
   */
  importState(state: OptimizerState, file?: string): void;
  importState(tensors: Map<string, HostTensor>, metadata: Record<string, string>, file?: string): void;
  importState(a: OptimizerState | Map<string, HostTensor>, b?: Record<string, string> | string, c?: string): void {
    const [state, file] = a instanceof Map ? [{ tensors: a, metadata: (b ?? {}) as Record<string, string> }, c] : [a, b as string | undefined];
    const meta = parseStateMeta(state.metadata, file);
    const expected = new Set<string>();
    for (const [name, p] of this.params) {
      for (const key of [`exp_avg.${name}`, `exp_avg_sq.${name}`]) {
        expected.add(key);
        const t = state.tensors.get(key);
        if (!t) throw new LoraStudioError('optimizer state lacks this tensor; was the checkpoint made with other LoRA settings?', file, key);
        if (t.shape.join(',') !== p.shape.join(',')) {
          throw new LoraStudioError(`optimizer state has shape [${t.shape}] for a parameter of shape [${p.shape}]`, file, key);
        }
      }
    }
    for (const key of state.tensors.keys()) {
      if (!expected.has(key)) throw new LoraStudioError('optimizer state has a tensor for no trainable parameter; was the checkpoint made with other LoRA settings?', file, key);
    }
    for (const [name, slot] of this.slots) {
      const m = state.tensors.get(`exp_avg.${name}`)!;
      const v = state.tensors.get(`exp_avg_sq.${name}`)!;
      slot.exp_avg.dispose();
      slot.exp_avg_sq.dispose();
      slot.exp_avg = tf.tensor(m.data, m.shape, 'float32');
      slot.exp_avg_sq = tf.tensor(v.data, v.shape, 'float32');
      slot.step = Object.prototype.hasOwnProperty.call(meta.steps, name) ? meta.steps[name] : meta.step;
    }
    this.stepCount = meta.step;
  }

  /** Frees the moment tensors (the parameters belong to the caller). */
  dispose(): void {
    for (const slot of this.slots.values()) {
      slot.exp_avg.dispose();
      slot.exp_avg_sq.dispose();
    }
  }
}

const META_KEY = 'optimizer_state';

/** The tensors of a state (for writeSafetensors). */
export function stateToTensors(state: OptimizerState): Map<string, HostTensor> {
  return state.tensors;
}

/** A state from a safetensors file's tensors and `__metadata__`; checks the metadata (tensors are checked on import). */
export function stateFromTensors(tensors: Map<string, HostTensor>, metadata: Record<string, string>, file?: string): OptimizerState {
  parseStateMeta(metadata, file);
  return { tensors, metadata };
}

const stepCount = z.number({ error: 'must be an integer from 0 to 1000000000' }).int({ error: 'must be an integer from 0 to 1000000000' }).min(0).max(MAX_STEPS);
const unit = (what: string) => z.number({ error: `must be ${what}` }).min(0, { error: `must be ${what}` }).refine(Number.isFinite, { error: `must be ${what}` });

/** The `optimizer_state` metadata entry. */
const StateMetaSchema = z.looseObject({
  optimizer: z.literal('adamw', { error: 'must be "adamw"' }),
  step: stepCount,
  steps: z.record(z.string(), stepCount, { error: 'must be an object of per-parameter step counts' }),
  beta1: unit('a number in [0, 1)').optional(),
  beta2: unit('a number in [0, 1)').optional(),
  eps: unit('a finite number >= 0').optional(),
  weight_decay: unit('a finite number >= 0').optional(),
  decay: z.array(z.string()).optional(),
});

/** The JSON part of a state, checked; errors name the file and the field (`__metadata__.optimizer_state.<path>`). */
export function parseStateMeta(metadata: Record<string, string>, file?: string): OptimizerStateMeta {
  const raw = Object.prototype.hasOwnProperty.call(metadata, META_KEY) ? metadata[META_KEY] : undefined;
  if (typeof raw !== 'string') throw new LoraStudioError(`no "${META_KEY}" entry in the metadata: not an optimizer state`, file, '__metadata__');
  const field = `__metadata__.${META_KEY}`;
  const value = parseJsonText(raw, file ?? 'optimizer state', field);
  const r = StateMetaSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue.path.map((k) => (typeof k === 'number' ? `[${k}]` : `.${String(k).slice(0, 60)}`)).join('');
    throw new LoraStudioError(`not an AdamW state: ${issue.message}`, file, `${field}${where}`);
  }
  return r.data as OptimizerStateMeta;
}
