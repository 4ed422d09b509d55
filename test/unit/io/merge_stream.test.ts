/**
 * The streaming merge (commands/merge.ts → lora/merge_stream.ts) against the in-memory one: for each stored tensor
 * of the output, its bytes are exactly what mergeAdapter over the family's loaded weights gives once encoded in the
 * stored dtype (F32, F16, BF16; GPT-2 Conv1D and Llama Linear; single file and shards); the headers (keys, order,
 * dtypes, shapes, metadata) are the source's; a seq-cls head the base lacks is added; an error in the last shard
 * leaves nothing at outDir; a read-only source merges. The products go through the rank-update kernel
 * (WebAssembly, as in the bundled CLI; merge.test.ts runs mergeToFolder on the JavaScript path).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type FloatDType, type HostTensor, decodeFloatsInto, encodeFloatsInto, encodeTensor, f32ToBf16, readSafetensorsLayout } from '../../../trainer/io/safetensors';
import { readRawTensors } from '../../../trainer/io/hf_folder';
import { adapterConfigJson, loadAdapter, saveAdapter } from '../../../trainer/lora/adapter_io';
import { LORA_DEFAULTS } from '../../../trainer/lora/config';
import { mergeAdapter } from '../../../trainer/lora/merge';
import { mergeToFolder } from '../../../trainer/commands/merge';
import type { AdapterWeights } from '../../../trainer/lora/types';
import { familyForDir } from '../../../trainer/models/registry';
import { writeRandomGPT2 } from '../../../trainer/models/gpt2/random_init';
import { gpt2WeightShapes } from '../../../trainer/models/gpt2/weights';
import type { Task } from '../../../trainer/task';
import { prepareRankUpdate, rankUpdater } from '../../../trainer/ops/rank_update';
import { Rng } from '../../../trainer/util/rng';
import { writeLlamaFolder } from '../../util/llama_folder';
import { randomAdapter, randomTensor, snapshotDir, throwsLS } from './helpers';

let tmp: string;
before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-stream-'));
  await prepareRankUpdate();
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = (name: string) => path.join(tmp, `${name}-${n++}`);

const weightFiles = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();

/**
 * Every tensor of `out` is, byte for byte, the in-memory merge (the family's loader + mergeAdapter) encoded in its
 * stored dtype, or the source's bytes for a tensor the loader skips; every merged weight is in `out`.
 * Returns how many stored tensors differ from the source (the merged ones).
 */
function assertSameAsInMemory(base: string, adapterDir: string, out: string, task: Task, numLabels?: number): number {
  const adapter = loadAdapter(adapterDir);
  const family = familyForDir(base);
  const model = family.load(base, { task, num_labels: numLabels });
  const reference = mergeAdapter(model.weights, adapter, (m) => family.isConv1D(m));
  const src = readRawTensors(base);
  const got = readRawTensors(out);
  const bytes = (raw: ReturnType<typeof readRawTensors>, key: string) => {
    const st = raw.files.get(raw.where.get(key)!)!;
    const e = st.entries.get(key)!;
    return st.data.subarray(e.begin, e.end);
  };
  const seen = new Set<string>();
  let changed = 0;
  for (const key of got.where.keys()) {
    const canonical = family.canonicalKey ? family.canonicalKey(key, model.config) : key;
    const want = canonical !== null && reference.has(canonical) ? encodeTensor(reference.get(canonical)!) : bytes(src, key);
    if (canonical !== null && reference.has(canonical)) seen.add(canonical);
    assert.ok(bytes(got, key).equals(want), `${key}: bytes differ from the in-memory merge`);
    if (!src.where.has(key) || !bytes(src, key).equals(want)) changed++;
  }
  assert.deepEqual([...reference.keys()].filter((k) => !seen.has(k)), [], 'every weight of the merged model is in the output');
  return changed;
}

const headers = (dir: string) => weightFiles(dir).map((f) => readSafetensorsLayout(path.join(dir, f)).headerBytes.toString('utf8'));

describe('streaming merge = in-memory merge, bit for bit', () => {
  it('runs the rank-update kernel', () => assert.ok(rankUpdater(), 'prepareRankUpdate made the kernel'));
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`GPT-2 ${dtype}, bare keys with attn.bias buffers, LoRA on Conv1D modules and a trained bias: same header, merged bytes`, () => {
      const base = fresh(`gpt2-${dtype}`);
      const cfg = writeRandomGPT2(base, { seed: 4, dtype, layout: 'bare', withAttnBias: true });
      const modules = ['transformer.h.0.attn.c_attn', 'transformer.h.0.mlp.c_fc', 'transformer.h.1.attn.c_proj', 'transformer.h.1.mlp.c_proj'];
      const adapter = randomAdapter(gpt2WeightShapes(cfg, 'causal-lm'), modules, 'causal-lm', { r: 12, lora_alpha: 7, rank_pattern: { c_fc: 2 } }, 9);
      adapter.extra.set('transformer.h.1.attn.c_attn.bias', randomTensor([3 * cfg.n_embd], new Rng(3), 0.1));
      const adapterDir = fresh('adapter');
      saveAdapter(adapterDir, adapter);
      const out = fresh('merged');
      const res = mergeToFolder(base, adapterDir, out);
      assert.equal(res.merged_modules, 4);
      assert.deepEqual(headers(out), headers(base), 'keys, order, dtypes, shapes, offsets and metadata as in the source');
      assert.equal(assertSameAsInMemory(base, adapterDir, out, 'causal-lm'), 5, 'four LoRA weights and one bias changed, nothing else');
    });
  }

  it('GPT-2 BF16 in 3 shards: each shard and the index keep their form, merged bytes equal', () => {
    const base = fresh('gpt2-sharded');
    const cfg = writeRandomGPT2(base, { seed: 6, dtype: 'BF16', shards: 3 });
    const modules = [0, 1].flatMap((i) => ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc'].map((m) => `transformer.h.${i}.${m}`));
    const adapterDir = fresh('adapter');
    saveAdapter(adapterDir, randomAdapter(gpt2WeightShapes(cfg, 'causal-lm'), modules, 'causal-lm', { r: 8, lora_alpha: 16 }, 2));
    const out = fresh('merged');
    mergeToFolder(base, adapterDir, out);
    assert.deepEqual(weightFiles(out), weightFiles(base));
    assert.equal(weightFiles(base).length, 3);
    assert.ok(fs.readFileSync(path.join(out, 'model.safetensors.index.json')).equals(fs.readFileSync(path.join(base, 'model.safetensors.index.json'))));
    assert.deepEqual(headers(out), headers(base));
    assert.equal(assertSameAsInMemory(base, adapterDir, out, 'causal-lm'), 6);
  });

  it('a read-only source file behind a symlink (as in the Hub cache) merges into a real, writable file', () => {
    const base = fresh('gpt2-ro');
    const cfg = writeRandomGPT2(base, { seed: 7 });
    const blob = fresh('blob');
    fs.renameSync(path.join(base, 'model.safetensors'), blob);
    fs.chmodSync(blob, 0o444);
    fs.symlinkSync(blob, path.join(base, 'model.safetensors'));
    const adapterDir = fresh('adapter');
    saveAdapter(adapterDir, randomAdapter(gpt2WeightShapes(cfg, 'causal-lm'), ['transformer.h.1.mlp.c_fc'], 'causal-lm', { r: 2 }));
    const out = fresh('merged');
    mergeToFolder(base, adapterDir, out);
    const st = fs.lstatSync(path.join(out, 'model.safetensors'));
    assert.ok(st.isFile() && (st.mode & 0o200) === 0o200, 'a regular file the owner may write');
    assert.equal(fs.statSync(blob).mode & 0o777, 0o444, 'the source keeps its mode');
    assert.equal(assertSameAsInMemory(base, adapterDir, out, 'causal-lm'), 1);
  });
});

describe('streaming merge: the seq-cls head', () => {
  it('a base with score.weight: the adapter replaces it in place (F16)', () => {
    const base = fresh('gpt2-cls');
    const cfg = writeRandomGPT2(base, { seed: 8, dtype: 'F16', task: 'seq-cls', num_labels: 3 });
    const adapter = randomAdapter(gpt2WeightShapes(cfg, 'seq-cls', 3), ['transformer.h.0.attn.c_attn', 'score'], 'seq-cls', { r: 2 });
    adapter.extra.set('score.weight', randomTensor([3, cfg.n_embd], new Rng(1), 0.3));
    const adapterDir = fresh('adapter');
    saveAdapter(adapterDir, adapter);
    const out = fresh('merged');
    const res = mergeToFolder(base, adapterDir, out);
    assert.deepEqual(res.warnings, []);
    assert.deepEqual(headers(out), headers(base));
    assert.equal(assertSameAsInMemory(base, adapterDir, out, 'seq-cls', 3), 2);
  });

  it('a causal base sharded in 2: the adapter head is appended to the last shard and the index names it', () => {
    const base = fresh('gpt2-causal');
    const cfg = writeRandomGPT2(base, { seed: 9, dtype: 'BF16', shards: 2 });
    const adapter = randomAdapter(gpt2WeightShapes(cfg, 'seq-cls', 4), ['transformer.h.1.attn.c_attn'], 'seq-cls', { r: 2 });
    adapter.extra.set('score.weight', randomTensor([4, cfg.n_embd], new Rng(2), 0.3));
    const adapterDir = fresh('adapter');
    saveAdapter(adapterDir, adapter);
    const out = fresh('merged');
    const res = mergeToFolder(base, adapterDir, out);
    assert.ok(!res.warnings.some((w) => w.includes('newly initialized')), res.warnings.join('\n'));
    const [first, last] = weightFiles(out);
    assert.equal(readSafetensorsLayout(path.join(out, first)).headerBytes.toString(), headers(base)[0]);
    const lastLayout = readSafetensorsLayout(path.join(out, last));
    const baseLast = readSafetensorsLayout(path.join(base, last));
    assert.deepEqual([...lastLayout.entries.keys()], [...baseLast.entries.keys(), 'score.weight'], 'the source keys in order, then the head');
    assert.deepEqual(lastLayout.metadata, baseLast.metadata);
    assert.deepEqual(lastLayout.entries.get('score.weight'), { dtype: 'BF16', shape: [4, cfg.n_embd], begin: baseLast.fileSize - baseLast.dataStart, end: baseLast.fileSize - baseLast.dataStart + 4 * cfg.n_embd * 2 });
    const index = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8'));
    const baseIndex = JSON.parse(fs.readFileSync(path.join(base, 'model.safetensors.index.json'), 'utf8'));
    assert.deepEqual(index.weight_map, { ...baseIndex.weight_map, 'score.weight': last });
    assert.equal(index.metadata.total_size, baseIndex.metadata.total_size + 4 * cfg.n_embd * 2);
    const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    assert.deepEqual(config.architectures, ['GPT2ForSequenceClassification']);
    assert.equal(config.num_labels, 4);
    assert.equal(assertSameAsInMemory(base, adapterDir, out, 'seq-cls', 4), 2);
  });

  it('no head in the base nor the adapter: the loader\'s seeded head, with both warnings', () => {
    const base = fresh('gpt2-nohead');
    const cfg = writeRandomGPT2(base, { seed: 10 });
    const adapterDir = fresh('adapter');
    saveAdapter(adapterDir, randomAdapter(gpt2WeightShapes(cfg, 'seq-cls', 2), ['transformer.h.0.attn.c_proj'], 'seq-cls', { r: 2 }));
    const out = fresh('merged');
    const res = mergeToFolder(base, adapterDir, out);
    assert.ok(res.warnings.some((w) => w.includes("newly initialized: ['score.weight']")), res.warnings.join('\n'));
    assert.ok(res.warnings.some((w) => w.includes('the merged classifier head is random')), res.warnings.join('\n'));
    assert.equal(assertSameAsInMemory(base, adapterDir, out, 'seq-cls', 2), 2);
  });
});

describe('streaming merge: errors', () => {
  it('a non-finite value in the last shard, after the first was written: nothing at outDir, no temporary folder, source untouched', () => {
    const base = fresh('gpt2-bad');
    const cfg = writeRandomGPT2(base, { seed: 11, shards: 2 });
    const first = 'transformer.h.0.attn.c_attn';
    const late = 'transformer.h.1.mlp.c_fc';
    assert.equal(JSON.parse(fs.readFileSync(path.join(base, 'model.safetensors.index.json'), 'utf8')).weight_map[`${late}.weight`], 'model-00002-of-00002.safetensors');
    const adapter: AdapterWeights = randomAdapter(gpt2WeightShapes(cfg, 'causal-lm'), [first, late], 'causal-lm', { r: 2 });
    adapter.lora.get(late)!.A.data.fill(3e38);
    adapter.lora.get(late)!.B.data.fill(3e38);
    const adapterDir = fresh('adapter');
    saveAdapter(adapterDir, adapter);
    const before = snapshotDir(base);
    const parent = fresh('parent');
    fs.mkdirSync(parent);
    throwsLS(() => mergeToFolder(base, adapterDir, path.join(parent, 'merged')), path.join(adapterDir, 'adapter_model.safetensors'), late, /non-finite/);
    assert.deepEqual(fs.readdirSync(parent), []);
    const after = snapshotDir(base);
    assert.deepEqual([...after.keys()], [...before.keys()]);
    for (const [k, v] of before) assert.ok(after.get(k)!.equals(v), k);
  });

  it('a model file holding a foreign tensor, or a weight of the wrong shape, is refused before writing, naming file and key', () => {
    const base = fresh('gpt2-foreign');
    const cfg = writeRandomGPT2(base, { seed: 12, dtype: 'BF16' });
    const adapterDir = fresh('adapter');
    saveAdapter(adapterDir, randomAdapter(gpt2WeightShapes(cfg, 'causal-lm'), ['transformer.h.0.attn.c_attn'], 'causal-lm', { r: 2 }));
    const foreign = fresh('foreign');
    writeRandomGPT2(foreign, { seed: 12, dtype: 'BF16', extra: new Map([['model.layers.0.self_attn.q_proj.weight', randomTensor([4, 4], new Rng(1), 1)]]) } as Parameters<typeof writeRandomGPT2>[1]);
    const parent = fresh('parent');
    fs.mkdirSync(parent);
    if (readSafetensorsLayout(path.join(foreign, 'model.safetensors')).entries.has('model.layers.0.self_attn.q_proj.weight')) {
      throwsLS(() => mergeToFolder(foreign, adapterDir, path.join(parent, 'm')), path.join(foreign, 'model.safetensors'), 'model.layers.0.self_attn.q_proj.weight', /does not have.*another architecture/);
    }
    const narrow = fresh('narrow');
    writeRandomGPT2(narrow, { seed: 12, config: { n_inner: 64 } });
    fs.copyFileSync(path.join(base, 'config.json'), path.join(narrow, 'config.json'));
    throwsLS(() => mergeToFolder(narrow, adapterDir, path.join(parent, 'm')), path.join(narrow, 'model.safetensors'), 'transformer.h.0.mlp.c_fc.weight', /does not fit this config/);
    assert.deepEqual(fs.readdirSync(parent), []);
  });
});

describe('streaming merge: a Llama-family folder', () => {
  const linearAdapter = (shapes: Map<string, number[]>, modules: string[], task: Task, seed: number): AdapterWeights => {
    const rng = new Rng(seed);
    const lora = new Map(modules.map((m) => {
      const [outF, inF] = shapes.get(`${m}.weight`)!;
      return [m, { A: randomTensor([4, inF], rng, 0.3), B: randomTensor([outF, 4], rng, 0.3) }] as const;
    }));
    const cfg = { ...LORA_DEFAULTS, r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj', 'down_proj'] };
    return { config: adapterConfigJson(cfg, task, 'tiny-llama'), lora, extra: new Map() };
  };

  for (const model_type of ['llama', 'qwen2'] as const) {
    it(`${model_type} BF16 in 2 shards: q_proj, v_proj, down_proj (nn.Linear) merged as in memory`, () => {
      const base = fresh(`${model_type}`);
      const f = writeLlamaFolder(base, { model_type, dtype: 'BF16', sharded: true, tied: model_type === 'qwen2' });
      const family = familyForDir(base);
      const shapes = family.weightShapes(f.config, 'causal-lm', 2);
      const modules = ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', `model.layers.${f.config.num_hidden_layers - 1}.mlp.down_proj`];
      const adapterDir = fresh('adapter');
      saveAdapter(adapterDir, linearAdapter(shapes, modules, 'causal-lm', 3));
      const out = fresh('merged');
      mergeToFolder(base, adapterDir, out);
      assert.deepEqual(headers(out), headers(base));
      assert.equal(assertSameAsInMemory(base, adapterDir, out, 'causal-lm'), 3);
      assert.deepEqual(fs.readdirSync(out).filter((x) => !x.endsWith('.safetensors')).sort(), f.files.filter((x) => !x.endsWith('.safetensors')).sort());
    });
  }

  it('llama seq-cls adapter on a causal base: score.weight appended, the label names from the adapter', () => {
    const base = fresh('llama-cls');
    const f = writeLlamaFolder(base, { dtype: 'BF16' });
    const shapes = familyForDir(base).weightShapes(f.config, 'seq-cls', 3);
    const adapter = linearAdapter(shapes, ['model.layers.0.self_attn.q_proj'], 'seq-cls', 4);
    adapter.extra.set('score.weight', randomTensor([3, f.config.hidden_size], new Rng(5), 0.3));
    const adapterDir = fresh('adapter');
    saveAdapter(adapterDir, adapter);
    const out = fresh('merged');
    const res = mergeToFolder(base, adapterDir, out);
    assert.ok(!res.warnings.some((w) => w.includes('newly initialized')), res.warnings.join('\n'));
    assert.equal(readSafetensorsLayout(path.join(out, 'model.safetensors')).entries.get('score.weight')!.dtype, 'BF16');
    assert.equal(assertSameAsInMemory(base, adapterDir, out, 'seq-cls', 3), 2);
  });
});

describe('encodeFloatsInto / decodeFloatsInto', () => {
  it('encode as encodeTensor does (rounding, subnormals, overflow) and report the first value not finite once stored', () => {
    const values = Float32Array.from([0, -0, 1, -1.5, 1e-8, 6e-8, 65504, 65520, 1e5, 3.4e38, 1 / 3, -(2 ** -130), Math.PI]);
    for (const dtype of ['F32', 'F16', 'BF16'] as FloatDType[]) {
      const t: HostTensor = { shape: [values.length], data: values, dtype };
      const out = new Uint8Array(encodeTensor(t).byteLength + 1).subarray(1); // odd offset: the unaligned path
      const bad = encodeFloatsInto(values, dtype, out);
      assert.ok(Buffer.from(out).equals(encodeTensor(t)), dtype);
      assert.equal(bad, { F32: -1, F16: 7, BF16: 9 }[dtype], `${dtype}: 65520 overflows F16, 3.4e38 rounds to BF16 infinity`);
      const back = new Float32Array(values.length);
      decodeFloatsInto(out, dtype, back);
      if (dtype === 'F32') assert.deepEqual(back, values);
      if (dtype === 'BF16') for (let i = 0; i < values.length; i++) assert.equal(new Uint32Array(back.buffer)[i] >>> 16, f32ToBf16(values[i]));
    }
    assert.equal(encodeFloatsInto(Float32Array.from([1, NaN]), 'F32', new Uint8Array(8)), 1);
  });
});
