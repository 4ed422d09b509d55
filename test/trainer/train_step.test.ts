/**
 * The training loop against an independent float64 reference: one step's loss, its gradients (central
 * differences of the float64 loss) through the reported grad_norm, and the AdamW update written into
 * checkpoint-1 — plus loss going down on a learnable task.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tinyRun } from './helpers';
import { loadRunConfig } from '../../trainer/config/run_config';
import { train } from '../../trainer/train/trainer';
import { openTrainingSession } from '../../trainer/train/session';
import { loadModelFolder } from '../../trainer/models/gpt2/folder';
import { loadAdapter } from '../../trainer/lora/adapter_io';
import { rankAndScaling } from '../../trainer/lora/patterns';
import { loadTokenizer } from '../../trainer/tokenizer/tokenizer';
import { refModel, refSeqClsLoss, type RefModel } from '../reference/gpt2_f64';
import type { StepEvent, TrainEvent } from '../../trainer/protocol';
import { webgpuSkipReason } from '../unit/model/webgpu_probe';

describe('one training step', () => {
  // the automatic backend (wasm here), and webgpu on any adapter Dawn offers (llvmpipe here)
  for (const backend of [null, 'webgpu'] as const) it(`matches a float64 reference: loss, gradient norm, and the AdamW update${backend ? ` (${backend})` : ''}`, async (t) => {
    const skip = backend === 'webgpu' && (await webgpuSkipReason());
    if (skip) return t.skip(skip);
    const lr = 1e-2;
    const wd = 0.1;
    const eps = 1e-3; // a large adam_epsilon makes the first update smooth in the gradient, so it can be compared
    const rows = Array.from({ length: 8 }, (_, i) => ({ text: ['a b c', 'hello there', 'x', 'the cat sat', 'no', 'yes yes', 'lora', 'zz top'][i], label: i % 2 }));
    const run = tinyRun({
      rows,
      training: {
        max_steps: 1, per_device_train_batch_size: 8, learning_rate: lr, weight_decay: wd, adam_epsilon: eps, lr_scheduler_type: 'constant',
        max_grad_norm: 0, eval_strategy: 'no', save_strategy: 'steps', save_steps: 1, load_best_model_at_end: false, backend,
      },
    });
    const cfg = loadRunConfig(run.configFile);
    const before = await openTrainingSession(cfg, { configFile: run.configFile, onWarning: () => {} });
    const initial = await before.exportAdapter();
    before.model.dispose();

    const events: TrainEvent[] = [];
    await train(cfg, { onEvent: (e) => events.push(e), configFile: run.configFile });
    const step = events.find((e): e is StepEvent => e.event === 'step')!;
    if (backend) assert.equal(events.find((e) => e.event === 'start')?.backend, backend);
    const after = loadAdapter(path.join(run.outputDir, 'checkpoint-1'));

    // The reference model: base weights with the initial adapter (score comes from the adapter's saved copy).
    const base = loadModelFolder(run.modelDir, { task: 'seq-cls', num_labels: 2, seed: cfg.training.seed });
    const weights = new Map(base.weights);
    weights.set('score.weight', initial.extra.get('score.weight')!);
    const lora = new Map([...initial.lora].map(([name, f]) => [name, { ...f, scaling: rankAndScaling(initial.config, name).scaling }]));
    const ref = refModel(base.config, 'seq-cls', 2, weights, lora);
    const tok = loadTokenizer(run.modelDir);
    const ids = rows.map((r) => tok.encode(r.text));
    const labels = rows.map((r) => r.label);
    const loss = () => refSeqClsLoss(ref, ids, labels);

    const refLoss = loss();
    assert.ok(Math.abs(step.loss - refLoss) < 1e-5 * Math.max(1, refLoss), `loss ${step.loss} vs reference ${refLoss}`);

    // Every trainable value: (name, reference array, index, tfjs value after the step)
    const coords: Array<{ key: string; arr: Float64Array; i: number; after: number; decay: boolean }> = [];
    for (const [name, f] of ref.lora) {
      const got = after.lora.get(name)!;
      f.A.forEach((_, i) => coords.push({ key: `${name}.lora_A`, arr: f.A, i, after: got.A.data[i], decay: true }));
      f.B.forEach((_, i) => coords.push({ key: `${name}.lora_B`, arr: f.B, i, after: got.B.data[i], decay: true }));
    }
    const score = ref.weights.get('score.weight')!;
    const scoreAfter = after.extra.get('score.weight')!.data;
    score.forEach((_, i) => coords.push({ key: 'score.weight', arr: score, i, after: scoreAfter[i], decay: true }));
    assert.ok(coords.length > 500);

    const h = 1e-5;
    let normSq = 0;
    let worst = 0;
    for (const c of coords) {
      const p = c.arr[c.i];
      c.arr[c.i] = p + h;
      const up = loss();
      c.arr[c.i] = p - h;
      const down = loss();
      c.arr[c.i] = p;
      const g = (up - down) / (2 * h);
      normSq += g * g;
      // torch.optim.AdamW, first step: m̂ = g, √v̂ = |g|
      const expected = p * (1 - lr * (c.decay ? wd : 0)) - (lr * g) / (Math.abs(g) + eps);
      worst = Math.max(worst, Math.abs(c.after - expected));
    }
    assert.ok(worst < 2e-5, `largest difference from the reference AdamW update: ${worst}`);
    const refNorm = Math.sqrt(normSq);
    assert.ok(Math.abs(step.grad_norm - refNorm) < 1e-4 * refNorm, `grad_norm ${step.grad_norm} vs reference ${refNorm}`);
    fs.rmSync(run.dir, { recursive: true, force: true });
  });
});

describe('learning', () => {
  it('lowers the causal-LM loss on a learnable text', async () => {
    const rows = Array.from({ length: 32 }, (_, i) => ({ text: `one two three four five six ${i % 2 ? 'seven' : 'eight'}` }));
    const run = tinyRun({
      task: 'causal-lm', rows, evalRows: rows.slice(0, 4),
      // std 0.5: the tied head's logits are h·wteᵀ, so tiny embeddings would cap how far any adapter can lower the loss
      model: { std: 0.5 },
      training: { max_steps: 40, per_device_train_batch_size: 8, learning_rate: 1e-1, eval_strategy: 'no', save_strategy: 'no', load_best_model_at_end: false },
    });
    const losses: number[] = [];
    await train(loadRunConfig(run.configFile), { onEvent: (e) => e.event === 'step' && losses.push(e.loss), configFile: run.configFile });
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    const first = mean(losses.slice(0, 3));
    const last = mean(losses.slice(-3));
    assert.ok(last < 0.5 * first, `loss went from ${first} to ${last}`);
    fs.rmSync(run.dir, { recursive: true, force: true });
  });
});

export type { RefModel };
