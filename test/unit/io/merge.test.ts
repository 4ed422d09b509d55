/**
 * Merging LoRA into base weights: against an independent float64 reference (Conv1D and Linear orientation,
 * rank/alpha patterns, rsLoRA), merge → unmerge, safe_merge refusals, a real PEFT adapter on GPT-2-small-shaped
 * weights, and mergeToFolder end to end on a tiny model folder.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModelFolder } from '../../../trainer/models/gpt2/folder';
import { type HostTensor, f32ToBf16, readSafetensors } from '../../../trainer/io/safetensors';
import { loadAdapter, saveAdapter } from '../../../trainer/lora/adapter_io';
import { mergeAdapter, unmergeAdapter } from '../../../trainer/lora/merge';
import { mergeToFolder } from '../../../trainer/commands/merge';
import type { AdapterWeights } from '../../../trainer/lora/types';
import { GPT2_DEFAULTS, type GPT2Config } from '../../../trainer/models/gpt2/config';
import { writeRandomGPT2 } from '../../../trainer/models/gpt2/random_init';
import { gpt2WeightShapes, isConv1D } from '../../../trainer/models/gpt2/weights';
import { Rng } from '../../../trainer/util/rng';
import { FIXTURES, fixturesSkip, randomAdapter, randomTensor, snapshotDir, throwsLS } from './helpers';

const SMALL = { model_type: 'gpt2', ...GPT2_DEFAULTS } as GPT2Config;

let tmp: string;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-')); });
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = (name: string) => path.join(tmp, `${name}-${n++}`);

/**
 * Reference merge, written independently of the implementation: the full delta matrix D = B·A [out, in] in
 * float64, the scaling from the PEFT formula written out here, then W + s·Dᵀ (Conv1D, [in, out]) or W + s·D (Linear).
 */
function referenceMerged(W: HostTensor, A: HostTensor, B: HostTensor, s: number, conv1d: boolean): Float64Array {
  const [r, inF] = A.shape;
  const outF = B.shape[0];
  const D = new Float64Array(outF * inF);
  for (let k = 0; k < r; k++) {
    for (let o = 0; o < outF; o++) {
      const bok = B.data[o * r + k];
      for (let i = 0; i < inF; i++) D[o * inF + i] += bok * A.data[k * inF + i];
    }
  }
  const out = new Float64Array(W.data.length);
  for (let o = 0; o < outF; o++) {
    for (let i = 0; i < inF; i++) {
      const idx = conv1d ? i * outF + o : o * inF + i;
      out[idx] = W.data[idx] + s * D[o * inF + i];
    }
  }
  return out;
}

/** |got − ref| within one F32 rounding of ref (plus a tiny absolute floor). */
function assertCloseF32(got: Float32Array, ref: Float64Array, what: string, stride = 1) {
  assert.equal(got.length, ref.length, what);
  for (let i = 0; i < ref.length; i += stride) {
    const tol = Math.abs(ref[i]) * 2 ** -23 + 1e-30;
    if (!(Math.abs(got[i] - ref[i]) <= tol)) assert.fail(`${what}[${i}]: ${got[i]} vs reference ${ref[i]}`);
  }
}

const MODULES = [
  'transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj', 'transformer.h.0.mlp.c_fc', 'transformer.h.0.mlp.c_proj',
  'transformer.h.1.attn.c_attn', 'transformer.h.1.mlp.c_proj', 'score',
];

describe('mergeAdapter / unmergeAdapter on a tiny model', () => {
  let dir: string;
  before(() => {
    dir = fresh('base');
    writeRandomGPT2(dir, { seed: 11, task: 'seq-cls', num_labels: 3 });
  });

  for (const variant of [
    { name: 'plain r=4 alpha=8', lora: { r: 4, lora_alpha: 8 }, scale: () => 8 / 4 },
    {
      name: 'rank_pattern + alpha_pattern + use_rslora',
      lora: { r: 4, lora_alpha: 8, use_rslora: true, rank_pattern: { c_fc: 2, score: 1 }, alpha_pattern: { 'h.1.attn.c_attn': 5 } },
      scale: (m: string) => (m.endsWith('c_fc') ? 8 / Math.sqrt(2) : m === 'score' ? 8 : m === 'transformer.h.1.attn.c_attn' ? 5 / 2 : 8 / 2),
    },
  ]) {
    it(`matches the float64 reference: ${variant.name}`, () => {
      const model = loadModelFolder(dir);
      const shapes = gpt2WeightShapes(model.config, 'seq-cls', 3);
      const adapter = randomAdapter(shapes, MODULES, 'seq-cls', variant.lora, 21);
      const before = new Map([...model.weights].map(([k, t]) => [k, Float32Array.from(t.data)]));
      const merged = mergeAdapter(model.weights, adapter, isConv1D);
      for (const [k, t] of model.weights) assert.deepEqual(t.data, before.get(k), `input ${k} untouched`);
      assert.deepEqual([...merged.keys()], [...model.weights.keys()]);
      for (const [k, t] of merged) {
        const module = k.replace(/\.weight$/, '');
        const pair = adapter.lora.get(module);
        if (!pair || !k.endsWith('.weight')) {
          assert.equal(t, model.weights.get(k), `${k} is the same tensor`);
          continue;
        }
        const ref = referenceMerged(model.weights.get(k)!, pair.A, pair.B, variant.scale(module), module !== 'score');
        assertCloseF32(t.data, ref, k);
        assert.equal(t.dtype, 'F32');
        assert.notDeepEqual(t.data, model.weights.get(k)!.data);
      }
      const back = unmergeAdapter(merged, adapter, isConv1D);
      for (const [k, t] of back) {
        const orig = model.weights.get(k)!.data;
        for (let i = 0; i < orig.length; i++) if (Math.abs(t.data[i] - orig[i]) > 1e-5) assert.fail(`${k}[${i}]: ${t.data[i]} vs ${orig[i]}`);
      }
    });
  }

  it('extra tensors replace the base ones, keeping the base dtype', () => {
    const model = loadModelFolder(dir);
    const adapter = randomAdapter(gpt2WeightShapes(model.config, 'seq-cls', 3), ['transformer.h.0.attn.c_attn'], 'seq-cls');
    const score = randomTensor([3, 32], new Rng(4), 0.5);
    const bias = randomTensor([96], new Rng(5), 0.5);
    adapter.extra.set('score.weight', score);
    adapter.extra.set('transformer.h.0.attn.c_attn.bias', bias);
    const merged = mergeAdapter(new Map([...model.weights].map(([k, t]) => [k, { ...t, dtype: 'BF16' as const }])), adapter, isConv1D);
    assert.deepEqual(merged.get('score.weight')!.data, score.data);
    assert.notEqual(merged.get('score.weight')!.data, score.data, 'a copy, not the adapter array');
    assert.deepEqual(merged.get('transformer.h.0.attn.c_attn.bias')!.data, bias.data);
    for (const t of merged.values()) assert.equal(t.dtype, 'BF16');
  });

  it('safe_merge: non-finite results are refused, naming the module', () => {
    const model = loadModelFolder(dir);
    const shapes = gpt2WeightShapes(model.config, 'seq-cls', 3);
    const adapter = randomAdapter(shapes, ['transformer.h.1.mlp.c_fc'], 'seq-cls', { r: 2 });
    adapter.lora.get('transformer.h.1.mlp.c_fc')!.B.data[5] = 3e38;
    adapter.lora.get('transformer.h.1.mlp.c_fc')!.A.data.fill(3e38);
    throwsLS(() => mergeAdapter(model.weights, adapter, isConv1D), undefined, 'transformer.h.1.mlp.c_fc', /non-finite/);
    // finite in F32 but beyond F16's range once stored
    const big = randomAdapter(shapes, ['transformer.h.0.attn.c_proj'], 'seq-cls', { r: 1 });
    big.lora.get('transformer.h.0.attn.c_proj')!.A.data.fill(300);
    big.lora.get('transformer.h.0.attn.c_proj')!.B.data.fill(300);
    const f16 = new Map([...model.weights].map(([k, t]) => [k, { ...t, dtype: 'F16' as const }]));
    throwsLS(() => mergeAdapter(f16, big, isConv1D), undefined, 'transformer.h.0.attn.c_proj', /stored as F16/);
    assert.doesNotThrow(() => mergeAdapter(model.weights, big, isConv1D));
  });
});

describe('a real PEFT adapter on GPT-2-small-shaped weights (in memory, target modules only)', { skip: fixturesSkip }, () => {
  /** Cheap deterministic base weights (no RNG over tens of millions of values). */
  const patterned = (shape: number[], salt: number): HostTensor => {
    const data = new Float32Array(shape[0] * shape[1]);
    for (let i = 0; i < data.length; i++) data[i] = (((i * 2654435761 + salt) >>> 0) % 2001 - 1000) * 2e-5;
    return { shape, data, dtype: 'F32' };
  };

  it('seqcls-gpt2-r8: all 12 c_attn merged (fan_in_fan_out), score.weight replaced', () => {
    const adapter = loadAdapter(path.join(FIXTURES, 'peft-adapters', 'seqcls-gpt2-r8'));
    const shapes = gpt2WeightShapes(SMALL, 'seq-cls', 6);
    const weights = new Map<string, HostTensor>();
    for (const m of adapter.lora.keys()) weights.set(`${m}.weight`, patterned(shapes.get(`${m}.weight`)!, weights.size));
    weights.set('score.weight', patterned([6, 768], 99));
    const merged = mergeAdapter(weights, adapter, isConv1D);
    const s = 8 / 8;
    for (const [m, { A, B }] of adapter.lora) {
      const ref = referenceMerged(weights.get(`${m}.weight`)!, A, B, s, true);
      assertCloseF32(merged.get(`${m}.weight`)!.data, ref, m, 97);
    }
    assert.deepEqual(merged.get('score.weight')!.data, adapter.extra.get('score.weight')!.data);
  });

  it('causal-gpt2-r8: attn.c_attn, attn.c_proj and mlp.c_proj of one block, scaling 32/8', () => {
    const full = loadAdapter(path.join(FIXTURES, 'peft-adapters', 'causal-gpt2-r8'));
    const adapter: AdapterWeights = { ...full, lora: new Map([...full.lora].filter(([m]) => m.startsWith('transformer.h.7.'))) };
    assert.equal(adapter.lora.size, 3);
    const shapes = gpt2WeightShapes(SMALL, 'causal-lm');
    const weights = new Map<string, HostTensor>();
    for (const m of adapter.lora.keys()) weights.set(`${m}.weight`, patterned(shapes.get(`${m}.weight`)!, weights.size));
    const merged = mergeAdapter(weights, adapter, isConv1D);
    for (const [m, { A, B }] of adapter.lora) {
      assertCloseF32(merged.get(`${m}.weight`)!.data, referenceMerged(weights.get(`${m}.weight`)!, A, B, 32 / 8, true), m);
    }
    assert.deepEqual(merged.get('transformer.h.7.mlp.c_proj.weight')!.shape, [3072, 768]);
  });
});

describe('mergeToFolder', () => {
  const hashless = (m: Map<string, Buffer>) => new Map([...m].map(([k, v]) => [k, v.toString('base64')]));

  it('merges into a new folder keeping layout and dtype (BF16 in, BF16 out), tokenizer files, base untouched', () => {
    const base = fresh('base');
    const cfg = writeRandomGPT2(base, { seed: 2, layout: 'bare', dtype: 'BF16', withAttnBias: true });
    fs.writeFileSync(path.join(base, 'tokenizer_config.json'), '{"model_max_length": 64}\n');
    const adapterDir = fresh('adapter');
    const shapes = gpt2WeightShapes(cfg, 'seq-cls', 4);
    const adapter = randomAdapter(shapes, ['transformer.h.0.attn.c_attn', 'transformer.h.1.mlp.c_fc'], 'seq-cls', { r: 2, lora_alpha: 4 });
    adapter.extra.set('score.weight', randomTensor([4, 32], new Rng(8), 0.1));
    saveAdapter(adapterDir, adapter);
    const before = snapshotDir(base);

    const out = fresh('merged');
    const res = mergeToFolder(base, adapterDir, out);
    assert.equal(res.outDir, out);
    assert.equal(res.merged_modules, 2);
    assert.ok(!res.warnings.some((w) => w.includes('newly initialized')), res.warnings.join('\n'));
    assert.deepEqual(hashless(snapshotDir(base)), hashless(before), 'base folder byte-identical');

    assert.deepEqual(fs.readdirSync(out).sort(), ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) assert.ok(fs.readFileSync(path.join(out, f)).equals(before.get(f)!));
    const st = readSafetensors(path.join(out, 'model.safetensors'));
    for (const [k, e] of st.entries) {
      assert.equal(e.dtype, 'BF16', k);
      assert.ok(!k.startsWith('transformer.'), k);
    }
    const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    assert.deepEqual(config.architectures, ['GPT2ForSequenceClassification']);
    assert.equal(config.num_labels, 4);
    assert.equal(Object.keys(config.id2label).length, 4);

    const got = loadModelFolder(out);
    assert.equal(got.layout, 'bare');
    assert.equal(got.task, 'seq-cls');
    const baseModel = loadModelFolder(base, { task: 'seq-cls', num_labels: 4 });
    const toBf16 = (x: number) => { const f = new Float32Array(1); new Uint32Array(f.buffer)[0] = f32ToBf16(x) << 16; return f[0]; };
    const reference = mergeAdapter(baseModel.weights, loadAdapter(adapterDir), isConv1D);
    for (const [k, t] of got.weights) {
      const want = reference.get(k)!.data;
      for (let i = 0; i < want.length; i++) if (!Object.is(t.data[i], toBf16(want[i]))) assert.fail(`${k}[${i}]`);
    }
    const c_attn = 'transformer.h.0.attn.c_attn.weight';
    assert.notDeepEqual(got.weights.get(c_attn)!.data, baseModel.weights.get(c_attn)!.data);
    assert.deepEqual(got.weights.get('transformer.h.1.attn.c_attn.weight')!.data, baseModel.weights.get('transformer.h.1.attn.c_attn.weight')!.data);
  });

  it('refuses outDir == modelDir, inside it, or existing; a failed merge leaves nothing behind', () => {
    const base = fresh('base');
    const cfg = writeRandomGPT2(base, { seed: 3 });
    const adapterDir = fresh('adapter');
    const adapter = randomAdapter(gpt2WeightShapes(cfg, 'causal-lm'), ['transformer.h.1.attn.c_proj'], 'causal-lm', { r: 2 });
    saveAdapter(adapterDir, adapter);
    const before = snapshotDir(base);
    throwsLS(() => mergeToFolder(base, adapterDir, base), base, undefined, /already exists/);
    throwsLS(() => mergeToFolder(base, adapterDir, path.join(base, 'out')), path.join(base, 'out'), undefined, /must not be the model folder/);
    throwsLS(() => mergeToFolder(base, adapterDir, adapterDir), adapterDir, undefined, /already exists/);

    const parent = fresh('parent');
    fs.mkdirSync(parent);
    const bad: AdapterWeights = { ...adapter, lora: new Map(adapter.lora) };
    const A = bad.lora.get('transformer.h.1.attn.c_proj')!.A;
    bad.lora.set('transformer.h.1.attn.c_proj', { A: { ...A, data: Float32Array.from(A.data).fill(Infinity) }, B: bad.lora.get('transformer.h.1.attn.c_proj')!.B });
    const badDir = fresh('bad-adapter');
    saveAdapter(badDir, bad);
    throwsLS(() => mergeToFolder(base, badDir, path.join(parent, 'merged')), path.join(badDir, 'adapter_model.safetensors'), 'transformer.h.1.attn.c_proj', /non-finite/);
    assert.deepEqual(fs.readdirSync(parent), [], 'no output folder and no temporary folder');
    assert.deepEqual(hashless(snapshotDir(base)), hashless(before));
  });

  it('an adapter for another architecture, or of another width, is refused before writing', { skip: fixturesSkip }, () => {
    const base = fresh('base');
    writeRandomGPT2(base, { seed: 3 });
    const parent = fresh('parent');
    fs.mkdirSync(parent);
    const fixture = path.join(FIXTURES, 'peft-adapters', 'causal-gpt2-r8');
    throwsLS(() => mergeToFolder(base, fixture, path.join(parent, 'm')), path.join(fixture, 'adapter_model.safetensors'),
      'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight', /expected \[8,32\].*found \[8,768\]/);

    const a = loadAdapter(fixture);
    const llamaDir = fresh('llama');
    saveAdapter(llamaDir, {
      config: { ...a.config, base_model_name_or_path: 'meta-llama/Llama-3.2-1B', target_modules: ['q_proj'] },
      lora: new Map([['model.layers.0.self_attn.q_proj', a.lora.get('transformer.h.0.attn.c_proj')!]]),
      extra: new Map(),
    });
    throwsLS(() => mergeToFolder(base, llamaDir, path.join(parent, 'm')), path.join(llamaDir, 'adapter_model.safetensors'),
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', /another architecture.*Llama-3\.2-1B/);
    assert.deepEqual(fs.readdirSync(parent), []);
  });
});
