/**
 * Hugging Face model folders: both key layouts, F16/BF16, shards and attn.bias buffers load to the same canonical
 * weights; broken folders fail naming the file and the key; writeModelFolder writes a new, complete folder.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModelFolder, writeModelFolder, type LoadedModel } from '../../../trainer/models/gpt2/folder';
import { type HostTensor, f32ToBf16, f32ToF16, f16ToF32, readSafetensors, writeSafetensors } from '../../../trainer/io/safetensors';
import { writeRandomGPT2 } from '../../../trainer/models/gpt2/random_init';
import { gpt2WeightShapes } from '../../../trainer/models/gpt2/weights';
import { throwsLS } from './helpers';

let tmp: string;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-')); });
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let n = 0;
const fresh = (name: string) => path.join(tmp, `${name}-${n++}`);


function assertSameWeights(a: Map<string, HostTensor>, b: Map<string, HostTensor>, map: (x: number) => number = (x) => x) {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, t] of a) {
    const u = b.get(k)!;
    assert.deepEqual(u.shape, t.shape, k);
    for (let i = 0; i < t.data.length; i++) if (!Object.is(map(t.data[i]), u.data[i])) assert.fail(`${k}[${i}]: ${map(t.data[i])} vs ${u.data[i]}`);
  }
}

describe('loadModelFolder', () => {
  let ref: LoadedModel;
  before(() => {
    const dir = fresh('prefixed');
    writeRandomGPT2(dir, { seed: 3 });
    ref = loadModelFolder(dir);
  });

  it('loads a prefixed F32 folder with canonical keys and shapes', () => {
    assert.equal(ref.layout, 'prefixed');
    assert.equal(ref.sharded, false);
    assert.equal(ref.task, 'causal-lm');
    assert.deepEqual(ref.tokenizerFiles, ['tokenizer.json']);
    assert.deepEqual(ref.warnings, []);
    const shapes = gpt2WeightShapes(ref.config, 'causal-lm');
    assert.deepEqual([...ref.weights.keys()].sort(), [...shapes.keys()].sort());
    for (const [k, s] of shapes) assert.deepEqual(ref.weights.get(k)!.shape, s);
    for (const t of ref.weights.values()) assert.equal(t.dtype, 'F32');
  });

  it('bare layout (the original gpt2 checkpoint) gives identical weights', () => {
    const dir = fresh('bare');
    writeRandomGPT2(dir, { seed: 3, layout: 'bare' });
    assert.ok(readSafetensors(path.join(dir, 'model.safetensors')).entries.has('h.0.attn.c_attn.weight'));
    const m = loadModelFolder(dir);
    assert.equal(m.layout, 'bare');
    assertSameWeights(ref.weights, m.weights);
  });

  it('3 shards load identically; attn.bias buffers are ignored', () => {
    const dir = fresh('sharded');
    writeRandomGPT2(dir, { seed: 3, shards: 3, withAttnBias: true });
    assert.ok(fs.existsSync(path.join(dir, 'model-00003-of-00003.safetensors')));
    const m = loadModelFolder(dir);
    assert.equal(m.sharded, true);
    assertSameWeights(ref.weights, m.weights);
  });

  it('F16 and BF16 load as F32 with their dtype kept', () => {
    for (const [dtype, round] of [['F16', (x: number) => f16ToF32(f32ToF16(x))], ['BF16', (x: number) => {
      const f = new Float32Array(1); new Uint32Array(f.buffer)[0] = f32ToBf16(x) << 16; return f[0];
    }]] as const) {
      const dir = fresh(dtype);
      writeRandomGPT2(dir, { seed: 3, dtype, layout: 'bare', withAttnBias: true });
      const m = loadModelFolder(dir);
      for (const t of m.weights.values()) assert.equal(t.dtype, dtype);
      assertSameWeights(ref.weights, m.weights, round);
    }
  });

  it('lm_head.weight tied to wte is checked and dropped', () => {
    const dir = fresh('lmhead');
    writeRandomGPT2(dir, { seed: 3 });
    const file = path.join(dir, 'model.safetensors');
    const w = new Map(ref.weights);
    w.set('lm_head.weight', ref.weights.get('transformer.wte.weight')!);
    fs.rmSync(file);
    writeSafetensors(file, w, { format: 'pt' });
    const m = loadModelFolder(dir);
    assert.ok(!m.weights.has('lm_head.weight'));
    assert.deepEqual(m.warnings, []);
    w.set('lm_head.weight', { shape: [3, 32], data: new Float32Array(96), dtype: 'F32' });
    fs.rmSync(file);
    writeSafetensors(file, w, { format: 'pt' });
    throwsLS(() => loadModelFolder(dir), file, 'lm_head.weight', /does not match wte/);
  });

  it('seq-cls: score.weight from the checkpoint, or newly initialised with a warning', () => {
    const dir = fresh('seqcls');
    writeRandomGPT2(dir, { seed: 3, task: 'seq-cls', num_labels: 5 });
    const m = loadModelFolder(dir);
    assert.equal(m.task, 'seq-cls');
    assert.equal(m.num_labels, 5);
    assert.deepEqual(m.weights.get('score.weight')!.shape, [5, 32]);
    assert.deepEqual(m.warnings, []);
    // a base causal-lm folder loaded for classification
    const a = loadModelFolder(ref.dir, { task: 'seq-cls', num_labels: 3, seed: 7 });
    const b = loadModelFolder(ref.dir, { task: 'seq-cls', num_labels: 3, seed: 7 });
    const score = a.weights.get('score.weight')!;
    assert.deepEqual(score.shape, [3, 32]);
    assert.deepEqual(score.data, b.weights.get('score.weight')!.data);
    const mean = score.data.reduce((s, x) => s + x, 0) / score.data.length;
    const std = Math.sqrt(score.data.reduce((s, x) => s + (x - mean) ** 2, 0) / score.data.length);
    assert.ok(std > 0.01 && std < 0.03, `std ${std}`);
    assert.equal(a.warnings.length, 1);
    assert.match(a.warnings[0], /newly initialized: \['score\.weight'\]/);
    // a head of another size is an error naming the tensor
    throwsLS(() => loadModelFolder(dir, { num_labels: 2 }), path.join(dir, 'model.safetensors'), 'score.weight', /5 labels, but num_labels is 2/);
    // loaded as causal-lm, the head is dropped with a warning
    const c = loadModelFolder(dir, { task: 'causal-lm' });
    assert.ok(!c.weights.has('score.weight'));
    assert.match(c.warnings[0], /not used/);
  });

  it('errors: missing key, wrong shape, extra keys, missing shard, model_type, config.json, no weights', () => {
    const dir = fresh('broken');
    writeRandomGPT2(dir, { seed: 3, layout: 'bare' });
    const file = path.join(dir, 'model.safetensors');
    const bare = new Map([...ref.weights].map(([k, t]) => [k.replace(/^transformer\./, ''), t]));
    const rewrite = (w: Map<string, HostTensor>) => { fs.rmSync(file); writeSafetensors(file, w, { format: 'pt' }); };

    const missing = new Map(bare); missing.delete('h.1.mlp.c_fc.bias');
    rewrite(missing);
    throwsLS(() => loadModelFolder(dir), file, 'h.1.mlp.c_fc.bias', /missing tensor/);

    const wrong = new Map(bare); wrong.set('h.0.attn.c_attn.weight', { shape: [96, 32], data: new Float32Array(96 * 32), dtype: 'F32' });
    rewrite(wrong);
    throwsLS(() => loadModelFolder(dir), file, 'h.0.attn.c_attn.weight', /\[96,32\].*needs \[32,96\]/);

    const extra = new Map(bare); extra.set('model.layers.0.self_attn.q_proj.weight', { shape: [2], data: new Float32Array(2), dtype: 'F32' });
    rewrite(extra);
    throwsLS(() => loadModelFolder(dir), file, 'model.layers.0.self_attn.q_proj.weight', /another architecture/);

    const sdir = fresh('shards');
    writeRandomGPT2(sdir, { seed: 3, shards: 3 });
    const shard2 = 'model-00002-of-00003.safetensors';
    const index = JSON.parse(fs.readFileSync(path.join(sdir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    const firstKey = Object.keys(index.weight_map).find((k) => index.weight_map[k] === shard2)!;
    fs.rmSync(path.join(sdir, shard2));
    throwsLS(() => loadModelFolder(sdir), path.join(sdir, 'model.safetensors.index.json'), `weight_map.${firstKey}`, /shard model-00002-of-00003\.safetensors is missing/);

    const cdir = fresh('llama');
    writeRandomGPT2(cdir, { seed: 3 });
    const cfg = JSON.parse(fs.readFileSync(path.join(cdir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(cdir, 'config.json'), JSON.stringify({ ...cfg, model_type: 'llama' }));
    throwsLS(() => loadModelFolder(cdir), path.join(cdir, 'config.json'), 'model_type', /unknown model_type "llama"/);
    fs.rmSync(path.join(cdir, 'config.json'));
    throwsLS(() => loadModelFolder(cdir), path.join(cdir, 'config.json'), undefined, /needs config\.json/);

    const ndir = fresh('noweights');
    writeRandomGPT2(ndir, { seed: 3 });
    fs.renameSync(path.join(ndir, 'model.safetensors'), path.join(ndir, 'pytorch_model.bin'));
    throwsLS(() => loadModelFolder(ndir), ndir, undefined, /expected model\.safetensors.*pytorch_model\.bin.*convert it to safetensors/);
  });
});

describe('writeModelFolder', () => {
  it('writes a new complete folder in the input layout and dtypes; refuses existing or in-place targets', () => {
    const dir = fresh('src');
    writeRandomGPT2(dir, { seed: 4, layout: 'bare', dtype: 'BF16', shards: 2 });
    fs.writeFileSync(path.join(dir, 'merges.txt'), '#version: 0.2\n');
    fs.writeFileSync(path.join(dir, 'generation_config.json'), '{"bos_token_id": 256}\n');
    const m = loadModelFolder(dir);
    assert.deepEqual(m.tokenizerFiles, ['tokenizer.json', 'merges.txt', 'generation_config.json']);
    const out = fresh('out');
    writeModelFolder(out, m, m.weights);
    assert.deepEqual(fs.readdirSync(out).sort(), ['config.json', 'generation_config.json', 'merges.txt', 'model.safetensors', 'tokenizer.json']);
    for (const f of m.tokenizerFiles) assert.ok(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(dir, f))), f);
    const st = readSafetensors(path.join(out, 'model.safetensors'));
    assert.deepEqual(st.metadata, { format: 'pt' });
    assert.ok(st.entries.has('h.0.ln_1.weight') && !st.entries.has('transformer.h.0.ln_1.weight'));
    for (const e of st.entries.values()) assert.equal(e.dtype, 'BF16');
    const back = loadModelFolder(out);
    assert.equal(back.layout, 'bare');
    assert.deepEqual(back.config, m.config);
    assertSameWeights(m.weights, back.weights);

    throwsLS(() => writeModelFolder(out, m, m.weights), out, undefined, /already exists/);
    throwsLS(() => writeModelFolder(dir, m, m.weights), dir, undefined, /already exists/);
    const inside = path.join(dir, 'merged');
    throwsLS(() => writeModelFolder(inside, m, m.weights), inside, undefined, /must not be the model folder/);
    assert.ok(!fs.existsSync(inside));
  });

  it('a failure half-way leaves no output folder and no temporary folder', () => {
    const dir = fresh('src2');
    writeRandomGPT2(dir, { seed: 4 });
    const m = loadModelFolder(dir);
    const parent = fresh('parent');
    fs.mkdirSync(parent);
    const out = path.join(parent, 'merged');
    const bad = new Map(m.weights);
    // right shape, wrong number of values: caught while serialising, after config.json was written
    bad.set('transformer.ln_f.bias', { shape: [32], data: new Float32Array(31), dtype: 'F32' });
    assert.throws(() => writeModelFolder(out, m, bad), /does not hold 31 values/);
    assert.deepEqual(fs.readdirSync(parent), []);
    const missing = new Map(m.weights);
    missing.delete('transformer.wpe.weight');
    throwsLS(() => writeModelFolder(out, m, missing), path.join(out, 'model.safetensors'), 'transformer.wpe.weight', /incomplete/);
    assert.deepEqual(fs.readdirSync(parent), []);
  });
});
