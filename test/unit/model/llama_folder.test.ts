/**
 * Llama-family folders (models/llama/folder.ts): F32/F16/BF16, one file or shards, tied or untied heads load to
 * the canonical weights bit-exactly; transformers' rules for inv_freq buffers, a tied lm_head, a missing or
 * surplus score head; every broken folder fails naming the file and the tensor key; write → load keeps dtypes and
 * values exactly and never touches the source; configForTask sets architectures, labels and the pad token.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LoraStudioError } from '../../../trainer/errors';
import type { HostTensor } from '../../../trainer/io/safetensors';
import { readSafetensors } from '../../../trainer/io/safetensors';
import { LLAMA_FAMILY } from '../../../trainer/models/llama/family';
import { llamaConfigForTask, loadLlamaFolder, writeLlamaFolder as writeModel } from '../../../trainer/models/llama/folder';
import type { LlamaConfig } from '../../../trainer/models/llama/config';
import { llamaWeightShapes } from '../../../trainer/models/llama/weights';
import { readRunnableModelConfig } from '../../../trainer/models/registry';
import { hashDir } from '../../util/files';
import { type LlamaFolderOptions, writeLlamaFolder } from '../../util/llama_folder';
import { throwsLS } from '../io/helpers';

let tmp: string;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-llama-folder-')); });
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let n = 0;
const fresh = (name: string) => path.join(tmp, `${name}-${n++}`);
const build = (name: string, opts: LlamaFolderOptions = {}) => writeLlamaFolder(fresh(name), opts);

/** Same keys, shapes, dtypes and bit-identical values (NaN-safe via Object.is). */
function assertSameWeights(got: Map<string, HostTensor>, want: Map<string, HostTensor>): void {
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [k, t] of want) {
    const u = got.get(k)!;
    assert.deepEqual(u.shape, t.shape, k);
    assert.equal(u.dtype, t.dtype, k);
    for (let i = 0; i < t.data.length; i++) if (!Object.is(u.data[i], t.data[i])) assert.fail(`${k}[${i}]: ${u.data[i]} vs ${t.data[i]}`);
  }
}

const tensor = (shape: number[], fill: number): HostTensor => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(fill), dtype: 'F32' });

describe('loadLlamaFolder', () => {
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`loads an untied ${dtype} llama folder: canonical keys, values bit-exact, dtype kept`, () => {
      const f = build(`llama-${dtype}`, { dtype, seed: 5 });
      const m = loadLlamaFolder(f.dir);
      assert.equal(m.task, 'causal-lm');
      assert.equal(m.sharded, false);
      assert.equal(m.layout, 'hf');
      assert.deepEqual(m.warnings, []);
      assert.deepEqual(m.tokenizerFiles, ['tokenizer.json', 'tokenizer_config.json']);
      assert.ok(m.weights.has('lm_head.weight'));
      assert.deepEqual([...m.weights.keys()].sort(), [...llamaWeightShapes(m.config, 'causal-lm').keys()].sort());
      assertSameWeights(m.weights, f.weights);
    });
  }

  it('loads a sharded BF16 qwen2 folder (3 shards + index), tied: the same weights, no lm_head', () => {
    const f = build('qwen2-sharded', { model_type: 'qwen2', dtype: 'BF16', sharded: 3 });
    assert.ok(f.files.includes('model-00003-of-00003.safetensors'));
    const m = loadLlamaFolder(f.dir);
    assert.equal(m.sharded, true);
    assert.equal(m.config.tie_word_embeddings, true);
    assert.ok(!m.weights.has('lm_head.weight'));
    assert.ok(m.weights.has('model.layers.0.self_attn.q_proj.bias'), 'qwen2 has q/k/v biases');
    assertSameWeights(m.weights, f.weights);
  });

  it('ignores rotary_emb.inv_freq buffers', () => {
    const f = build('inv-freq', { model_type: 'mistral', extra: new Map([['model.layers.1.self_attn.rotary_emb.inv_freq', tensor([4], 0.5)]]) });
    const m = loadLlamaFolder(f.dir);
    assert.deepEqual(m.warnings, []);
    assertSameWeights(m.weights, f.weights);
  });

  it('tied, with a stored lm_head equal to the embedding: used silently; differing: a warning, the embedding wins', () => {
    const same = build('tied-same', { tied: true, seed: 2 });
    const embed = same.weights.get('model.embed_tokens.weight')!;
    // a copy written beside it, as some exporters do
    const equal = build('tied-equal', { tied: true, seed: 2, extra: new Map([['lm_head.weight', { ...embed, data: embed.data.slice() }]]) });
    const a = loadLlamaFolder(equal.dir);
    assert.deepEqual(a.warnings, []);
    assert.ok(!a.weights.has('lm_head.weight'));
    const differs = build('tied-differs', { tied: true, seed: 2, extra: new Map([['lm_head.weight', tensor(embed.shape, 0.25)]]) });
    const b = loadLlamaFolder(differs.dir);
    assert.deepEqual(b.warnings, ['lm_head.weight differs from model.embed_tokens.weight; config.json ties them (tie_word_embeddings), so model.embed_tokens.weight is used for both']);
    assertSameWeights(b.weights, same.weights);
  });

  it('tied with an lm_head of the wrong shape: an error naming the file and lm_head.weight', () => {
    const f = build('tied-bad', { tied: true, extra: new Map([['lm_head.weight', tensor([3, 32], 0)]]) });
    throwsLS(() => loadLlamaFolder(f.dir), path.join(f.dir, 'model.safetensors'), 'lm_head.weight', /shape \[3,32\] does not match model\.embed_tokens\.weight/);
  });

  it('untied without lm_head.weight: an error naming the file and lm_head.weight', () => {
    const f = build('untied-no-head', { tied: false, omit: ['lm_head.weight'] });
    throwsLS(() => loadLlamaFolder(f.dir), path.join(f.dir, 'model.safetensors'), 'lm_head.weight', /tie_word_embeddings false/);
  });

  it('seq-cls without score.weight: newly initialised normal(0, initializer_range), seeded, transformers\' warning', () => {
    const f = build('cls-no-score', { task: 'seq-cls', num_labels: 4, dtype: 'BF16', omit: ['score.weight'], config: { initializer_range: 0.05 } });
    const m = loadLlamaFolder(f.dir, { seed: 9 });
    assert.equal(m.task, 'seq-cls');
    assert.equal(m.num_labels, 4);
    assert.deepEqual(m.warnings, [`Some weights of LlamaForSequenceClassification were not initialized from the model checkpoint at ${f.dir} and are newly initialized: ['score.weight']. Train them before using the model for predictions.`]);
    const score = m.weights.get('score.weight')!;
    assert.deepEqual(score.shape, [4, 32]);
    assert.equal(score.dtype, 'BF16', 'the dtype of the embedding');
    const std = Math.sqrt(score.data.reduce((a, v) => a + v * v, 0) / score.data.length);
    assert.ok(std > 0.03 && std < 0.07, `std ${std}`);
    assert.deepEqual(loadLlamaFolder(f.dir, { seed: 9 }).weights.get('score.weight')!.data, score.data, 'same seed, same head');
    assert.notDeepEqual(loadLlamaFolder(f.dir, { seed: 10 }).weights.get('score.weight')!.data, score.data);
  });

  it('a seq-cls folder loaded for causal-lm drops score.weight with a warning (tied: no lm_head needed)', () => {
    const f = build('cls-as-lm', { task: 'seq-cls', tied: true });
    const m = loadLlamaFolder(f.dir, { task: 'causal-lm' });
    assert.equal(m.task, 'causal-lm');
    assert.ok(!m.weights.has('score.weight'));
    assert.deepEqual(m.warnings, [`Some weights of the model checkpoint at ${f.dir} were not used when loading it for causal-lm: ['score.weight']`]);
  });

  it('a causal-lm folder loaded for seq-cls: lm_head.weight unused (warned), score newly initialised', () => {
    const f = build('lm-as-cls', { tied: false });
    const m = loadLlamaFolder(f.dir, { task: 'seq-cls', num_labels: 2 });
    assert.deepEqual(m.weights.get('score.weight')!.shape, [2, 32]);
    assert.equal(m.warnings.length, 2);
    assert.match(m.warnings[0], /newly initialized: \['score\.weight'\]/);
    assert.match(m.warnings[1], /were not used when loading it for seq-cls: \['lm_head\.weight'\]/);
  });

  it('unexpected tensors: an error naming the shard that holds the first, and saying it may be another architecture', () => {
    const f = build('alien', { sharded: 2, extra: new Map([['transformer.h.0.attn.c_attn.weight', tensor([32, 96], 0)]]) });
    const index = JSON.parse(fs.readFileSync(path.join(f.dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    const shard = path.join(f.dir, index.weight_map['transformer.h.0.attn.c_attn.weight']);
    throwsLS(() => loadLlamaFolder(f.dir), shard, 'transformer.h.0.attn.c_attn.weight', /a Llama model \(model_type "llama"\) does not have: transformer\.h\.0\.attn\.c_attn\.weight\. Is this a model of another architecture\?/);
  });

  it('a shape mismatch: an error naming the file and the key', () => {
    const f = build('bad-shape', { omit: ['model.layers.1.mlp.up_proj.weight'], extra: new Map([['model.layers.1.mlp.up_proj.weight', tensor([32, 48], 0)]]) });
    throwsLS(() => loadLlamaFolder(f.dir), path.join(f.dir, 'model.safetensors'), 'model.layers.1.mlp.up_proj.weight', /shape \[32,48\] does not fit this config, which needs \[48,32\]/);
  });

  it('a score head for another label count: the hint says so', () => {
    const f = build('bad-score', { task: 'seq-cls', num_labels: 3 });
    throwsLS(() => loadLlamaFolder(f.dir, { num_labels: 5 }), path.join(f.dir, 'model.safetensors'), 'score.weight', /a head for 3 labels, but num_labels is 5/);
  });

  it('a missing tensor: an error naming the index (sharded) and the key', () => {
    const f = build('missing', { sharded: true, omit: ['model.layers.1.post_attention_layernorm.weight'] });
    throwsLS(() => loadLlamaFolder(f.dir), path.join(f.dir, 'model.safetensors.index.json'), 'model.layers.1.post_attention_layernorm.weight', /missing tensor .* which a Llama model with this config needs/);
  });

  it('the size bound comes before any weight is read', () => {
    const f = build('huge', { task: 'seq-cls' });
    fs.rmSync(path.join(f.dir, 'model.safetensors'));
    const cfg = JSON.parse(fs.readFileSync(path.join(f.dir, 'config.json'), 'utf8')) as LlamaConfig;
    fs.writeFileSync(path.join(f.dir, 'config.json'), JSON.stringify({ ...cfg, hidden_size: 65536, num_attention_heads: 64, num_key_value_heads: 64, intermediate_size: 262144, num_hidden_layers: 1024 }));
    assert.throws(() => loadLlamaFolder(f.dir), (e: unknown) => e instanceof LoraStudioError && e.file === path.join(f.dir, 'config.json'));
  });

  it('a folder without weights, and not a folder: named errors', () => {
    const f = build('no-weights');
    fs.rmSync(path.join(f.dir, 'model.safetensors'));
    throwsLS(() => loadLlamaFolder(f.dir), f.dir, undefined, /no weights/);
    throwsLS(() => loadLlamaFolder(path.join(f.dir, 'config.json')), path.join(f.dir, 'config.json'), undefined, /not a folder/);
  });
});

describe('writeLlamaFolder (the trainer\'s writer)', () => {
  it('sharded BF16 seq-cls → one model.safetensors: dtypes and values bit-exact, tokenizer files copied, source untouched', () => {
    const f = build('src', { model_type: 'qwen2', dtype: 'BF16', sharded: 2, task: 'seq-cls' });
    const before = hashDir(f.dir);
    const src = loadLlamaFolder(f.dir);
    const out = fresh('out');
    writeModel(out, src, src.weights);
    assert.deepEqual(hashDir(f.dir), before, 'the source folder is never written');
    assert.deepEqual(fs.readdirSync(out).sort(), ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    for (const file of ['tokenizer.json', 'tokenizer_config.json']) assert.deepEqual(fs.readFileSync(path.join(out, file)), fs.readFileSync(path.join(f.dir, file)));
    const st = readSafetensors(path.join(out, 'model.safetensors'));
    assert.deepEqual(st.metadata, { format: 'pt' });
    for (const e of st.entries.values()) assert.equal(e.dtype, 'BF16');
    const back = loadLlamaFolder(out);
    assert.deepEqual(back.config, src.config);
    assert.equal(back.task, 'seq-cls');
    assert.equal(back.sharded, false);
    assertSameWeights(back.weights, f.weights);
  });

  it('F16 and F32 tensors side by side keep their own dtypes', () => {
    const f = build('mixed', { dtype: 'F16' });
    const src = loadLlamaFolder(f.dir);
    const weights = new Map(src.weights);
    const norm = weights.get('model.norm.weight')!;
    weights.set('model.norm.weight', { ...norm, data: norm.data.map((v) => v + 1e-4), dtype: 'F32' });
    const out = fresh('mixed-out');
    writeModel(out, src, weights);
    const back = loadLlamaFolder(out);
    assertSameWeights(back.weights, weights);
  });

  it('refuses an existing folder, the source itself, a missing, unknown or misshapen tensor', () => {
    const f = build('refuse');
    const src = loadLlamaFolder(f.dir);
    throwsLS(() => writeModel(f.dir, src, src.weights), f.dir, undefined, /already exists/);
    throwsLS(() => writeModel(path.join(f.dir, 'sub'), src, src.weights), path.join(f.dir, 'sub'), undefined, /must not be the model folder/);
    const out = fresh('refuse-out');
    const file = path.join(out, 'model.safetensors');
    const missing = new Map(src.weights);
    missing.delete('model.norm.weight');
    throwsLS(() => writeModel(out, src, missing), file, 'model.norm.weight', /missing tensor/);
    throwsLS(() => writeModel(out, src, new Map([...src.weights, ['model.layers.0.mlp.up_proj.wieght', tensor([1], 0)]])), file, 'model.layers.0.mlp.up_proj.wieght', /did you mean model\.layers\.0\.mlp\.up_proj\.weight/);
    throwsLS(() => writeModel(out, src, new Map([...src.weights, ['model.norm.weight', tensor([31], 0)]])), file, 'model.norm.weight', /shape \[31\]/);
    assert.equal(fs.existsSync(out), false);
  });
});

describe('llamaConfigForTask and the family wiring', () => {
  const base = (over: Partial<LlamaConfig> = {}) => ({ ...build('cfg', { model_type: 'mistral', pad: false }).config, ...over }) as LlamaConfig;

  it('causal-lm: <Prefix>ForCausalLM, nothing else changed, no warning', () => {
    const c = base();
    const warnings: string[] = [];
    const out = llamaConfigForTask({ ...c, architectures: ['MistralForSequenceClassification'] }, 'causal-lm', 2, warnings);
    assert.deepEqual(out, { ...c, architectures: ['MistralForCausalLM'] });
    assert.deepEqual(warnings, []);
  });

  it('seq-cls: architectures, num_labels and label maps; pad_token_id from the first eos_token_id, with a warning', () => {
    const warnings: string[] = [];
    const out = llamaConfigForTask(base({ eos_token_id: [7, 9] }), 'seq-cls', 3, warnings);
    assert.deepEqual(out.architectures, ['MistralForSequenceClassification']);
    assert.equal(out.num_labels, 3);
    assert.deepEqual({ ...out.id2label }, { 0: 'LABEL_0', 1: 'LABEL_1', 2: 'LABEL_2' });
    assert.deepEqual({ ...out.label2id }, { LABEL_0: 0, LABEL_1: 1, LABEL_2: 2 });
    assert.equal(out.pad_token_id, 7);
    assert.deepEqual(warnings, ['config.json had no pad_token_id; set it to eos_token_id (7), which MistralForSequenceClassification needs for batches']);
    const kept: string[] = [];
    assert.equal(llamaConfigForTask(base({ pad_token_id: 4 }), 'seq-cls', 2, kept).pad_token_id, 4);
    assert.deepEqual(kept, []);
    throwsLS(() => llamaConfigForTask(base({ eos_token_id: null }), 'seq-cls', 2, []), 'config.json', 'pad_token_id', /neither pad_token_id nor eos_token_id/);
  });

  it('LLAMA_FAMILY: runnable, loads and writes through the family interface', () => {
    const f = build('family', { model_type: 'qwen2' });
    assert.equal(readRunnableModelConfig(f.dir).family, LLAMA_FAMILY);
    const m = LLAMA_FAMILY.load(f.dir, { task: 'seq-cls', num_labels: 2, seed: 1 });
    assert.equal(m.task, 'seq-cls');
    const out = fresh('family-out');
    LLAMA_FAMILY.write(out, { ...m, config: LLAMA_FAMILY.configForTask(m.config, 'seq-cls', 2, []) }, m.weights);
    const back = LLAMA_FAMILY.load(out);
    assert.equal(back.task, 'seq-cls');
    assertSameWeights(back.weights, m.weights);
  });
});
