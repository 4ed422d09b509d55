/**
 * Per-kernel profile of one training step (tf.profile): where the time goes, by kernel and matmul shape.
 * Usage: node --import tsx bench/profile.ts <batch> <causal-lm|seq-cls> [prof]
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../trainer/backend';
import { GPT2LoraModel } from '../trainer/models/gpt2/model';
import { collate } from '../trainer/data/collate';
import { benchSpec, benchExamples } from './setup';
(async () => {
  await initBackend('wasm');
  const B = Number(process.argv[2] ?? 1);
  const task = (process.argv[3] ?? 'causal-lm') as 'causal-lm';
  const spec = benchSpec(task);
  const model = GPT2LoraModel.create(spec);
  spec.weights.clear();
  const batch = collate(benchExamples(B, 128, 50257, 3), 50256);
  const vars = [...model.trainable.values()];
  const step = () => { const { value, grads } = tf.variableGrads(() => model.loss(batch, { training: true, seed: 1 }), vars); const v = value.dataSync()[0]; tf.dispose([value, ...Object.values(grads)]); return v; };
  console.log('warm', step());
  for (let i = 0; i < 2; i++) { const t0 = Date.now(); const v = step(); console.log('step ms', Date.now() - t0, v, 'rss', (process.memoryUsage().rss / 2 ** 20).toFixed(0)); }
  if (process.argv[4] === 'prof') {
    const p = await tf.profile(() => { step(); });
    const agg = new Map<string, { ms: number; n: number }>();
    for (const k of p.kernels) { const key = k.name + ' ' + ((k.name.includes('atMul') || k.name.includes('Gemm')) ? JSON.stringify(k.inputShapes) : ''); const a = agg.get(key) ?? { ms: 0, n: 0 }; a.ms += k.kernelTimeMs as number; a.n++; agg.set(key, a); }
    const rows = [...agg].sort((a, b) => b[1].ms - a[1].ms).slice(0, 40);
    let tot = 0; for (const k of p.kernels) tot += k.kernelTimeMs as number;
    console.log('total kernel ms', tot.toFixed(0), 'peakBytes', p.peakBytes);
    for (const [k, a] of rows) console.log(a.ms.toFixed(0).padStart(6), String(a.n).padStart(4), k);
  }
})();
