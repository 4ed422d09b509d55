/**
 * `analyze` on adapter folders: every field against float64 facts computed here without the SVD (‖ΔW‖²_F as
 * s²·tr(BᵀB·AAᵀ), the rank), amplification 1 when the base weight IS ΔW (stored as GPT-2's Conv1D [in, out], which
 * also pins the orientation), φ ≈ 1 for adapters sharing A's row space, named errors for adapters that do not fit
 * the base or share no module, and the real PEFT-saved adapters from ../shared/fixtures.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { analyzeAdapter, formatAnalysis } from '../../../trainer/commands/analyze';
import { readSafetensors, tensorToF32, writeSafetensors, type HostTensor } from '../../../trainer/io/safetensors';
import { saveAdapter, loadAdapter } from '../../../trainer/lora/adapter_io';
import { writeRandomGPT2 } from '../../../trainer/models/gpt2/random_init';
import { gpt2WeightShapes } from '../../../trainer/models/gpt2/weights';
import { FIXTURES, fixturesSkip, randomAdapter, throwsLS } from '../io/helpers';

/** ‖s·B·A‖²_F = s²·Σ_ij (BᵀB)_ij (AAᵀ)_ji, with no SVD involved. */
function deltaFro2(A: HostTensor, B: HostTensor, s: number): number {
  const [r, inF] = A.shape;
  const outF = B.shape[0];
  let total = 0;
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < r; j++) {
      let btb = 0;
      for (let o = 0; o < outF; o++) btb += B.data[o * r + i] * B.data[o * r + j];
      let aat = 0;
      for (let k = 0; k < inF; k++) aat += A.data[j * inF + k] * A.data[i * inF + k];
      total += btb * aat;
    }
  }
  return s * s * total;
}

describe('lora-studio analyze (in-process)', () => {
  let tmp = '';
  let model = '';
  const c0 = 'transformer.h.0.attn.c_attn';
  const c1 = 'transformer.h.1.attn.c_attn';
  const p0 = 'transformer.h.0.mlp.c_proj';

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-analyze-'));
    model = path.join(tmp, 'model');
    const config = writeRandomGPT2(model, { config: { n_layer: 2 } });
    const shapes = gpt2WeightShapes(config, 'causal-lm');
    const one = randomAdapter(shapes, [c0, c1, p0], 'causal-lm', { r: 4, lora_alpha: 8 }, 3);
    saveAdapter(path.join(tmp, 'one'), one);
    // two: r = 8; on c0 its first 4 rows of A are a mix of one's A (the same row space), the rest tiny; no p0
    const two = randomAdapter(shapes, [c0, c1], 'causal-lm', { r: 8, lora_alpha: 16 }, 4);
    const A1 = one.lora.get(c0)!.A;
    const A2 = two.lora.get(c0)!.A;
    const inF = A1.shape[1];
    for (let i = 0; i < 8; i++) {
      for (let k = 0; k < inF; k++) {
        A2.data[i * inF + k] = i < 4 ? 10 * (A1.data[i * inF + k] + 0.5 * A1.data[((i + 1) % 4) * inF + k]) : 1e-4 * A2.data[i * inF + k];
      }
    }
    saveAdapter(path.join(tmp, 'two'), two);
    // base whose c0 weight is exactly one's ΔW, stored [in, out] as Conv1D
    const st = readSafetensors(path.join(model, 'model.safetensors'));
    const tensors = new Map<string, HostTensor>([...st.entries.keys()].map((k) => [k, tensorToF32(st, k)]));
    const { A, B } = one.lora.get(c0)!;
    const [r, inA] = A.shape;
    const outB = B.shape[0];
    const w = new Float32Array(inA * outB);
    for (let i = 0; i < inA; i++) for (let o = 0; o < outB; o++) {
      let x = 0;
      for (let t = 0; t < r; t++) x += B.data[o * r + t] * A.data[t * inA + i];
      w[i * outB + o] = 2 * x; // scaling 8 / 4
    }
    const key = [...tensors.keys()].find((k) => k.endsWith(`${c0.replace(/^transformer\./, '')}.weight`))!;
    tensors.set(key, { shape: [inA, outB], data: w, dtype: 'F32' });
    fs.mkdirSync(path.join(tmp, 'aligned'));
    for (const f of fs.readdirSync(model)) if (f !== 'model.safetensors') fs.copyFileSync(path.join(model, f), path.join(tmp, 'aligned', f));
    writeSafetensors(path.join(tmp, 'aligned', 'model.safetensors'), tensors, st.metadata);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('the spectrum of every module: r values, descending, ‖ΔW‖_F and stable rank as the SVD-free float64 facts say', () => {
    const res = analyzeAdapter({ adapterDir: path.join(tmp, 'one') });
    const one = loadAdapter(path.join(tmp, 'one'));
    assert.deepEqual(res.modules.map((m) => m.name).sort(), [c0, c1, p0].sort());
    for (const m of res.modules) {
      const { A, B } = one.lora.get(m.name)!;
      assert.equal(m.r, 4);
      assert.equal(m.singular_values.length, 4);
      const fro2 = deltaFro2(A, B, 2);
      assert.ok(Math.abs(m.delta_fro ** 2 - fro2) < 1e-9 * fro2, `${m.name}: ${m.delta_fro ** 2} vs ${fro2}`);
      assert.ok(Math.abs(m.singular_values.reduce((s, x) => s + x * x, 0) - fro2) < 1e-9 * fro2);
      assert.ok(Math.abs(m.stable_rank - fro2 / m.singular_values[0] ** 2) < 1e-9);
      assert.ok(m.stable_rank >= 1 && m.stable_rank <= 4);
      assert.equal(m.amplification, undefined);
    }
    assert.deepEqual(res.similarity, []);
    const text = formatAnalysis(res);
    assert.match(text, /module\s+r\s+top singular values\s+energy@1/);
    assert.match(text, new RegExp(`${c0.replace(/\./g, '\\.')}\\s+4\\s`));
  });

  it('--base: amplification 1 where W is ΔW (Conv1D layout), the random baseline below it, and seeded', () => {
    const res = analyzeAdapter({ adapterDir: path.join(tmp, 'one'), base: path.join(tmp, 'aligned') });
    const m = res.modules.find((x) => x.name === c0)!;
    assert.ok(Math.abs(m.amplification!.factor - 1) < 1e-5, `factor ${m.amplification!.factor}`);
    assert.ok(Math.abs(m.amplification!.projected_fro - m.delta_fro) < 1e-5 * m.delta_fro);
    assert.ok(m.amplification!.random_fro < m.amplification!.projected_fro);
    const again = analyzeAdapter({ adapterDir: path.join(tmp, 'one'), base: path.join(tmp, 'aligned') });
    assert.deepEqual(again.modules.map((x) => x.amplification), res.modules.map((x) => x.amplification));
    // on the random base every module has a factor, and the table shows the column
    const random = analyzeAdapter({ adapterDir: path.join(tmp, 'one'), base: model });
    assert.ok(random.modules.every((x) => x.amplification && x.amplification.factor > 0));
    assert.match(formatAnalysis(random), /amplification/);
  });

  it('--compare: φ over the shared modules, r 4 against r 8; the shared row space gives φ(4, 4) ≈ 1', () => {
    const res = analyzeAdapter({ adapterDir: path.join(tmp, 'one'), compare: path.join(tmp, 'two') });
    assert.deepEqual(res.similarity.map((s) => s.name).sort(), [c0, c1].sort());
    const s0 = res.similarity.find((s) => s.name === c0)!;
    assert.equal(s0.phi.length, 4);
    assert.equal(s0.phi[0].length, 8);
    assert.ok(s0.phi[3][3] > 0.9999, `φ(4, 4) = ${s0.phi[3][3]}`);
    const s1 = res.similarity.find((s) => s.name === c1)!;
    assert.ok(s1.phi[3][3] < 0.9, `independent adapters: φ(4, 4) = ${s1.phi[3][3]}`);
    assert.ok(res.warnings.some((w) => /1 module\(s\) adapted by only one/.test(w)));
  });

  it('named errors: an adapter that does not fit the base, and adapters with no module in common', () => {
    const other = path.join(tmp, 'other-model');
    writeRandomGPT2(other, { config: { n_layer: 1 } });
    throwsLS(() => analyzeAdapter({ adapterDir: path.join(tmp, 'one'), base: other }), path.join(tmp, 'one', 'adapter_model.safetensors'), `base_model.model.${c1}.lora_A.weight`, /does not exist in this GPT-2 model/);
    const shapes = gpt2WeightShapes(JSON.parse(fs.readFileSync(path.join(model, 'config.json'), 'utf8')), 'causal-lm');
    saveAdapter(path.join(tmp, 'mlp-only'), randomAdapter(shapes, ['transformer.h.1.mlp.c_fc'], 'causal-lm', { r: 2 }, 9));
    throwsLS(() => analyzeAdapter({ adapterDir: path.join(tmp, 'one'), compare: path.join(tmp, 'mlp-only') }), path.join(tmp, 'mlp-only', 'adapter_model.safetensors'), 'target_modules', /shares no adapted module with .*one.*adapter_model\.safetensors/);
  });

  it('the real PEFT-saved GPT-2 adapters: 36 and 12 modules, and φ over the 12 c_attn they share', { skip: fixturesSkip }, () => {
    const causal = path.join(FIXTURES, 'peft-adapters', 'causal-gpt2-r8');
    const seqcls = path.join(FIXTURES, 'peft-adapters', 'seqcls-gpt2-r8');
    const res = analyzeAdapter({ adapterDir: causal, compare: seqcls });
    assert.equal(res.modules.length, 36);
    const a = loadAdapter(causal);
    for (const m of res.modules) {
      const { A, B } = a.lora.get(m.name)!;
      const fro2 = deltaFro2(A, B, 32 / 8);
      assert.ok(Math.abs(m.delta_fro ** 2 - fro2) <= 1e-8 * fro2 + 1e-20, m.name);
      assert.equal(m.singular_values.length, 8);
    }
    assert.equal(res.similarity.length, 12);
    for (const s of res.similarity) {
      assert.equal(s.phi.length, 8);
      assert.ok(s.phi.flat().every((x) => x >= -1e-9 && x <= 1 + 1e-9));
    }
  });
});
