/** AdamW vs an independent float64 implementation; state export/import (also through safetensors) resumes bit-exactly. */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { AdamW, decayParameterNames, parseStateMeta, stateFromTensors, stateToTensors } from '../../../trainer/train/optimizer';
import { readSafetensors, tensorToF32, writeSafetensors, type HostTensor } from '../../../trainer/io/safetensors';
import { Rng } from '../../../trainer/util/rng';

const SHAPES: Record<string, number[]> = {
  'transformer.h.0.attn.c_attn.lora_A.weight': [4, 6],
  'transformer.h.0.attn.c_attn.lora_B.weight': [6, 4],
  'transformer.h.0.attn.c_attn.bias': [6],
  'transformer.ln_f.weight': [6],
  'score.weight': [2, 6],
};
const BETA1 = 0.9;
const BETA2 = 0.999;
const EPS = 1e-8;
const WD = 0.1;
const LRS = [1e-2, 5e-3, 2e-2, 1e-3, 7e-3, 3e-3, 1e-2];

function randomArray(rng: Rng, n: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rng.next() * 2 - 1) * scale;
  return a;
}
const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Per-step gradients, fixed in advance so every run sees the same ones. */
function makeGrads(steps: number): Array<Record<string, Float32Array>> {
  const rng = new Rng(7);
  return Array.from({ length: steps }, () => Object.fromEntries(Object.entries(SHAPES).map(([n, s]) => [n, randomArray(rng, numel(s), 0.5)])));
}
function initialParams(): Record<string, Float32Array> {
  const rng = new Rng(3);
  return Object.fromEntries(Object.entries(SHAPES).map(([n, s]) => [n, randomArray(rng, numel(s), 1)]));
}

/** The formula, in float64, written independently of the implementation. */
function referenceAdamW(p0: Record<string, Float32Array>, grads: Array<Record<string, Float32Array>>, decay: Set<string>): Record<string, Float64Array> {
  const out: Record<string, Float64Array> = {};
  for (const name of Object.keys(p0)) {
    const p = Float64Array.from(p0[name]);
    const m = new Float64Array(p.length);
    const v = new Float64Array(p.length);
    grads.forEach((gs, k) => {
      const t = k + 1;
      const lr = LRS[k];
      const wd = decay.has(name) ? WD : 0;
      for (let i = 0; i < p.length; i++) {
        const g = gs[name][i];
        p[i] *= 1 - lr * wd;
        m[i] = BETA1 * m[i] + (1 - BETA1) * g;
        v[i] = BETA2 * v[i] + (1 - BETA2) * g * g;
        const denom = Math.sqrt(v[i]) / Math.sqrt(1 - BETA2 ** t) + EPS;
        p[i] -= (lr / (1 - BETA1 ** t)) * (m[i] / denom);
      }
    });
    out[name] = p;
  }
  return out;
}

function makeVariables(values: Record<string, Float32Array>): Map<string, tf.Variable> {
  return new Map(Object.entries(values).map(([n, a]) => [n, tf.tidy(() => tf.variable(tf.tensor(a, SHAPES[n]), true, `v_${n}_${Math.random()}`))]));
}
function runSteps(opt: AdamW, grads: Array<Record<string, Float32Array>>, from: number, to: number): void {
  for (let k = from; k < to; k++) {
    const g = new Map(Object.entries(grads[k]).map(([n, a]) => [n, tf.tensor(a, SHAPES[n])] as [string, tf.Tensor]));
    opt.step(g, LRS[k]);
    for (const t of g.values()) t.dispose();
  }
}
function read(vars: Map<string, tf.Variable>): Record<string, Float32Array> {
  return Object.fromEntries([...vars].map(([n, v]) => [n, v.dataSync() as Float32Array]));
}
const disposeAll = (vars: Map<string, tf.Variable>) => vars.forEach((v) => v.dispose());

describe('decayParameterNames', () => {
  it('excludes biases and LayerNorm weights, keeps LoRA and head weights', () => {
    const d = decayParameterNames(Object.keys(SHAPES).concat(['transformer.h.0.ln_1.weight', 'transformer.h.0.ln_2.bias', 'encoder.LayerNorm.weight']));
    assert.deepEqual([...d].sort(), ['score.weight', 'transformer.h.0.attn.c_attn.lora_A.weight', 'transformer.h.0.attn.c_attn.lora_B.weight']);
  });
});

describe('AdamW', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });
  const opts = () => ({ beta1: BETA1, beta2: BETA2, eps: EPS, weight_decay: WD, decay: decayParameterNames(Object.keys(SHAPES)) });

  it('matches the float64 reference over 7 steps with varying lr, with and without weight decay', () => {
    const p0 = initialParams();
    const grads = makeGrads(LRS.length);
    const decay = decayParameterNames(Object.keys(SHAPES));
    assert.ok(decay.has('score.weight') && !decay.has('transformer.ln_f.weight'));
    const expected = referenceAdamW(p0, grads, decay);
    const vars = makeVariables(p0);
    const opt = new AdamW(vars, opts());
    runSteps(opt, grads, 0, LRS.length);
    assert.equal(opt.step_count, LRS.length);
    const got = read(vars);
    let maxErr = 0;
    for (const name of Object.keys(SHAPES)) {
      for (let i = 0; i < got[name].length; i++) maxErr = Math.max(maxErr, Math.abs(got[name][i] - expected[name][i]));
      // the parameters moved away from where they started
      assert.ok(got[name].some((x, i) => Math.abs(x - p0[name][i]) > 1e-3), name);
    }
    assert.ok(maxErr < 2e-6, `max abs error ${maxErr}`);
    // weight decay made a difference for a decay parameter and none for a no-decay one
    const noWd = referenceAdamW(p0, grads, new Set());
    assert.ok(Math.abs(noWd['score.weight'][0] - expected['score.weight'][0]) > 1e-5);
    assert.deepEqual(noWd['transformer.ln_f.weight'], expected['transformer.ln_f.weight']);
    opt.dispose();
    disposeAll(vars);
  });

  it('skips parameters without a gradient, as torch does', async () => {
    const p0 = initialParams();
    const vars = makeVariables(p0);
    const opt = new AdamW(vars, opts());
    const g = new Map<string, tf.Tensor>([['score.weight', tf.ones(SHAPES['score.weight'])]]);
    opt.step(g, 0.1);
    g.forEach((t) => t.dispose());
    const got = read(vars);
    assert.deepEqual(got['transformer.ln_f.weight'], p0['transformer.ln_f.weight']);
    assert.notDeepEqual(got['score.weight'], p0['score.weight']);
    const meta = parseStateMeta((await opt.exportState()).metadata);
    assert.equal(meta.steps['score.weight'], 1);
    assert.equal(meta.steps['transformer.ln_f.weight'], 0);
    assert.equal(meta.step, 1);
    opt.dispose();
    disposeAll(vars);
  });

  it('export → import mid-way (also through a safetensors file) continues bit-exactly, without leaking tensors', async () => {
    const grads = makeGrads(LRS.length);
    const p0 = initialParams();
    const before = tf.memory().numTensors;

    const full = makeVariables(p0);
    const optFull = new AdamW(full, opts());
    runSteps(optFull, grads, 0, LRS.length);
    const expected = read(full);
    optFull.dispose();
    disposeAll(full);

    const first = makeVariables(p0);
    const opt1 = new AdamW(first, opts());
    runSteps(opt1, grads, 0, 3);
    const state = await opt1.exportState();
    const mid = read(first);
    assert.equal(tf.memory().numTensors, before + 3 * Object.keys(SHAPES).length, 'variables + two moments per parameter');
    opt1.dispose();
    disposeAll(first);

    // in memory
    const second = makeVariables(mid);
    const opt2 = new AdamW(second, opts());
    opt2.importState(state);
    runSteps(opt2, grads, 3, LRS.length);
    assert.equal(opt2.step_count, LRS.length);
    const got = read(second);
    for (const name of Object.keys(SHAPES)) assert.deepEqual(got[name], expected[name], name);
    opt2.dispose();
    disposeAll(second);

    // through a safetensors file
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-'));
    try {
      const file = path.join(dir, 'optimizer.safetensors');
      writeSafetensors(file, stateToTensors(state), state.metadata);
      const st = readSafetensors(file);
      const tensors = new Map<string, HostTensor>([...st.entries.keys()].map((k) => [k, tensorToF32(st, k)]));
      assert.ok(tensors.has('exp_avg.score.weight') && tensors.has('exp_avg_sq.transformer.ln_f.weight'));
      const loaded = stateFromTensors(tensors, st.metadata, file);
      assert.equal(parseStateMeta(loaded.metadata).step, 3);
      const third = makeVariables(mid);
      const opt3 = new AdamW(third, opts());
      opt3.importState(tensors, st.metadata, file); // the form a checkpoint loader uses
      runSteps(opt3, grads, 3, LRS.length);
      const got3 = read(third);
      for (const name of Object.keys(SHAPES)) assert.deepEqual(got3[name], expected[name], name);
      opt3.dispose();
      disposeAll(third);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
  });

  it('refuses a state for other parameters, naming the file and the tensor', async () => {
    const vars = makeVariables(initialParams());
    const opt = new AdamW(vars, opts());
    const file = 'ckpt/optimizer.safetensors';
    const missing = await opt.exportState();
    missing.tensors.delete('exp_avg_sq.score.weight');
    assert.throws(() => opt.importState(missing, file), (e: Error & { file?: string; field?: string }) => {
      assert.equal(e.file, file);
      assert.equal(e.field, 'exp_avg_sq.score.weight');
      return true;
    });
    const extra = await opt.exportState();
    extra.tensors.set('exp_avg.lm_head.weight', { shape: [1], data: new Float32Array(1), dtype: 'F32' });
    assert.throws(() => opt.importState(extra), (e: Error & { field?: string }) => e.field === 'exp_avg.lm_head.weight');
    const shape = await opt.exportState();
    shape.tensors.get('exp_avg.score.weight')!.shape = [6, 2];
    assert.throws(() => opt.importState(shape), /shape \[6,2\]/);
    assert.throws(() => stateFromTensors(new Map(), {}, file), /not an optimizer state/);
    assert.throws(() => stateFromTensors(new Map(), { optimizer_state: '{"optimizer":"sgd"}' }, file), /not an AdamW state/);
    opt.dispose();
    disposeAll(vars);
  });
});
