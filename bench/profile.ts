/**
 * Per-kernel profile of one training step (tf.profile): where the time goes, by kernel and matmul shape.
 * Usage: node --import tsx bench/profile.ts <batch> <causal-lm|seq-cls|llama> [prof]
 * `llama`: the llama bench's SmolLM2-135M-shaped causal-lm model (bench/llama_setup.ts), built through its family.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../trainer/backend';
import { GPT2LoraModel } from '../trainer/models/gpt2/model';
import { collate } from '../trainer/data/collate';
import { benchSpec, benchExamples } from './setup';
import { llamaBenchSpec } from './llama_setup';
import { familyFor } from '../trainer/models/registry';
(async () => {
  await initBackend('wasm');
  const B = Number(process.argv[2] ?? 1);
  const llama = process.argv[3] === 'llama';
  const task = (llama ? 'causal-lm' : process.argv[3] ?? 'causal-lm') as 'causal-lm';
  const spec = llama ? llamaBenchSpec() : benchSpec(task);
  const model = llama ? familyFor(spec.config).createModel(spec) : GPT2LoraModel.create(spec);
  spec.weights.clear();
  const batch = collate(benchExamples(B, 128, spec.config.vocab_size as number, 3), model.pad_token_id);
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
