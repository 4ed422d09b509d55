/**
 * PEFT adapter files: save → load is bit-exact, the two real PEFT fixtures load (and re-save bit-exactly),
 * bad configs and tensor sets fail naming the file and field, and adapters are checked against a model's shapes.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type HostTensor, readSafetensors, writeSafetensors } from '../../../trainer/io/safetensors';
import { adapterConfigJson, checkAdapterFitsModel, loadAdapter, saveAdapter } from '../../../trainer/lora/adapter_io';
import { GPT2_FAMILY } from '../../../trainer/models/gpt2/family';
import { LORA_DEFAULTS } from '../../../trainer/lora/config';
import { GPT2_DEFAULTS, type GPT2Config } from '../../../trainer/models/gpt2/config';
import { TINY_CONFIG } from '../../../trainer/models/gpt2/random_init';
import { gpt2WeightShapes } from '../../../trainer/models/gpt2/weights';
import { Rng } from '../../../trainer/util/rng';
import { FIXTURES, assertAdaptersBitEqual, fixturesSkip, randomAdapter, randomTensor, throwsLS } from './helpers';

const TINY = { model_type: 'gpt2', ...GPT2_DEFAULTS, ...TINY_CONFIG } as GPT2Config;
const SMALL = { model_type: 'gpt2', ...GPT2_DEFAULTS } as GPT2Config; // GPT-2 small: 768 wide, 12 layers
const tinyShapes = gpt2WeightShapes(TINY, 'seq-cls', 3);

let tmp: string;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-')); });
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = (name: string) => path.join(tmp, `${name}-${n++}`);

const MODULES = ['transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj', 'transformer.h.1.mlp.c_fc', 'transformer.h.1.mlp.c_proj', 'score'];

describe('saveAdapter → loadAdapter', () => {
  it('is bit-exact for tensors (F32, F16, BF16) and config, and rewrites an existing folder', () => {
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      const a = randomAdapter(tinyShapes, MODULES, 'seq-cls', { r: 4, lora_alpha: 16, rank_pattern: { c_fc: 2 }, alpha_pattern: { 'h.1.mlp.c_proj': 3 }, use_rslora: true }, 5, dtype);
      a.extra.set('transformer.h.0.attn.c_attn.bias', randomTensor([96], new Rng(9), 0.1, dtype));
      a.config.some_future_peft_field = { nested: [1, 'x'] };
      const dir = fresh(`rt-${dtype}`);
      saveAdapter(dir, a);
      const b = loadAdapter(dir);
      if (dtype !== 'F32') {
        // values were rounded on write; a second round trip must then be the identity
        saveAdapter(dir, b);
        assertAdaptersBitEqual(b, loadAdapter(dir));
      } else {
        assertAdaptersBitEqual(a, b);
      }
      assert.equal(b.lora.get('transformer.h.1.mlp.c_fc')!.A.shape[0], 2);
      const bytes1 = fs.readFileSync(path.join(dir, 'adapter_model.safetensors'));
      const cfg1 = fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8');
      saveAdapter(dir, b);
      assert.ok(bytes1.equals(fs.readFileSync(path.join(dir, 'adapter_model.safetensors'))), 'deterministic bytes');
      assert.equal(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'), cfg1);
      assert.deepEqual(fs.readdirSync(dir).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
    }
  });

  it('writes PEFT keys, format pt metadata, sorted config keys and inference_mode true', () => {
    const a = randomAdapter(tinyShapes, MODULES.slice(0, 2), 'causal-lm');
    a.config.inference_mode = false;
    const dir = fresh('keys');
    saveAdapter(dir, a);
    const st = readSafetensors(path.join(dir, 'adapter_model.safetensors'));
    assert.deepEqual(st.metadata, { format: 'pt' });
    assert.deepEqual([...st.entries.keys()], [
      'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight', 'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight',
      'base_model.model.transformer.h.0.attn.c_proj.lora_A.weight', 'base_model.model.transformer.h.0.attn.c_proj.lora_B.weight',
    ]);
    const text = fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8');
    const keys = Object.keys(JSON.parse(text));
    assert.deepEqual(keys, [...keys].sort());
    assert.equal(JSON.parse(text).inference_mode, true);
  });
});

describe('adapterConfigJson', () => {
  it('writes the key set and defaults of a recent PEFT', { skip: fixturesSkip }, () => {
    const peft = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'peft-adapters', 'causal-gpt2-r8', 'adapter_config.json'), 'utf8'));
    const ours = adapterConfigJson({ ...LORA_DEFAULTS, r: 8, lora_alpha: 32, lora_dropout: 0.05, target_modules: ['c_proj', 'c_attn', 'c_attn'], fan_in_fan_out: true }, 'causal-lm', 'gpt2');
    assert.deepEqual(Object.keys(ours).sort(), Object.keys(peft).sort());
    assert.deepEqual(ours, peft);
  });
  it('task types, fan_in_fan_out forced, regex target_modules kept, override', () => {
    const c = adapterConfigJson({ ...LORA_DEFAULTS, target_modules: '.*\\.c_attn', fan_in_fan_out: true }, 'seq-cls', null); // as resolveTargets forces it for Conv1D
    assert.equal(c.task_type, 'SEQ_CLS');
    assert.equal(c.fan_in_fan_out, true);
    assert.equal(c.use_dora, false);
    assert.equal(c.layers_to_transform, null);
    assert.equal(c.target_modules, '.*\\.c_attn');
    assert.deepEqual(adapterConfigJson(LORA_DEFAULTS, 'causal-lm', 'x', ['c_fc', 'c_attn']).target_modules, ['c_attn', 'c_fc']);
  });
});

describe('loadAdapter errors and variants', () => {
  const saved = () => {
    const dir = fresh('err');
    saveAdapter(dir, randomAdapter(tinyShapes, MODULES.slice(0, 2), 'causal-lm', { r: 4 }));
    return dir;
  };
  const editConfig = (dir: string, edit: (c: Record<string, unknown>) => void) => {
    const f = path.join(dir, 'adapter_config.json');
    const c = JSON.parse(fs.readFileSync(f, 'utf8'));
    edit(c);
    fs.writeFileSync(f, JSON.stringify(c));
    return f;
  };
  const rewriteTensors = (dir: string, edit: (m: Map<string, HostTensor>) => void) => {
    const f = path.join(dir, 'adapter_model.safetensors');
    const st = readSafetensors(f);
    const m = new Map<string, HostTensor>();
    for (const [k, e] of st.entries) m.set(k, { shape: e.shape, data: new Float32Array(st.data.buffer.slice(st.data.byteOffset + e.begin, st.data.byteOffset + e.end)), dtype: 'F32' });
    edit(m);
    fs.rmSync(f);
    writeSafetensors(f, m, { format: 'pt' });
    return f;
  };

  it('config fields are validated, naming the field', () => {
    const dir = saved();
    const cases: Array<[string, (c: Record<string, unknown>) => void, string, RegExp]> = [
      ['peft_type', (c) => { c.peft_type = 'IA3'; }, 'peft_type', /must be "LORA", got "IA3"/],
      ['r', (c) => { c.r = '8'; }, 'r', /positive integer/],
      ['lora_alpha', (c) => { delete c.lora_alpha; }, 'lora_alpha', /must be a number/],
      ['target_modules', (c) => { c.target_modules = 3; }, 'target_modules', /list of module names/],
      ['bias', (c) => { c.bias = 'some'; }, 'bias', /"none", "all" or "lora_only"/],
      ['task_type', (c) => { c.task_type = 'TOKEN_CLS'; }, 'task_type', /unsupported "TOKEN_CLS"/],
      ['rank_pattern', (c) => { c.rank_pattern = { c_attn: 0 }; }, 'rank_pattern.c_attn', /positive integer/],
      ['use_dora', (c) => { c.use_dora = true; }, 'use_dora', /DoRA/],
      ['use_rslora', (c) => { c.use_rslora = 'yes'; }, 'use_rslora', /true or false/],
    ];
    const orig = fs.readFileSync(path.join(dir, 'adapter_config.json'));
    for (const [, edit, field, msg] of cases) {
      fs.writeFileSync(path.join(dir, 'adapter_config.json'), orig);
      const f = editConfig(dir, edit);
      throwsLS(() => loadAdapter(dir), f, field, msg);
    }
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), '{"r": 8,');
    throwsLS(() => loadAdapter(dir), path.join(dir, 'adapter_config.json'), undefined, /not valid JSON/);
    fs.rmSync(path.join(dir, 'adapter_config.json'));
    throwsLS(() => loadAdapter(dir), path.join(dir, 'adapter_config.json'), undefined, /missing/);
  });

  it('older configs without use_rslora / rank_pattern get PEFT defaults; unknown keys are kept', () => {
    const dir = saved();
    editConfig(dir, (c) => { delete c.use_rslora; delete c.rank_pattern; delete c.alpha_pattern; c.brand_new_field = [1, 2]; });
    const a = loadAdapter(dir);
    assert.equal(a.config.use_rslora, false);
    assert.deepEqual(a.config.rank_pattern, {});
    assert.deepEqual(a.config.brand_new_field, [1, 2]);
  });

  it('only adapter_model.bin: a clear error', () => {
    const dir = saved();
    fs.renameSync(path.join(dir, 'adapter_model.safetensors'), path.join(dir, 'adapter_model.bin'));
    throwsLS(() => loadAdapter(dir), path.join(dir, 'adapter_model.safetensors'), undefined, /only adapter_model\.bin.*safe_serialization=True/);
  });

  it('tensor sets are checked: pairs, ranks, prefixes, adapter names', () => {
    const A0 = 'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight';
    const B0 = 'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight';
    let dir = saved();
    let f = rewriteTensors(dir, (m) => m.delete(B0));
    throwsLS(() => loadAdapter(dir), f, A0, /has lora_A but no lora_B/);

    dir = saved();
    f = rewriteTensors(dir, (m) => m.set(B0, randomTensor([96, 3], new Rng(1), 0.1)));
    throwsLS(() => loadAdapter(dir), f, B0, /rank 3 .* disagrees with lora_A's rank 4/);

    dir = saved();
    f = rewriteTensors(dir, (m) => { m.set(A0, randomTensor([2, 32], new Rng(1), 0.1)); m.set(B0, randomTensor([96, 2], new Rng(1), 0.1)); });
    throwsLS(() => loadAdapter(dir), f, A0, /rank 2 .* disagrees with r = 4/);
    editConfig(dir, (c) => { c.rank_pattern = { 'h.0.attn.c_attn': 2 }; });
    assert.equal(loadAdapter(dir).lora.get('transformer.h.0.attn.c_attn')!.A.shape[0], 2);

    dir = saved();
    f = rewriteTensors(dir, (m) => m.set('transformer.h.0.ln_1.weight', randomTensor([32], new Rng(1), 0.1)));
    throwsLS(() => loadAdapter(dir), f, 'transformer.h.0.ln_1.weight', /does not start with "base_model\.model\."/);

    dir = saved();
    f = rewriteTensors(dir, (m) => m.set('base_model.model.transformer.h.0.attn.c_attn.lora_magnitude_vector', randomTensor([96], new Rng(1), 0.1)));
    throwsLS(() => loadAdapter(dir), f, 'base_model.model.transformer.h.0.attn.c_attn.lora_magnitude_vector', /DoRA/);

    // the adapter-name form (`.lora_A.default.weight`) and unstripped modules_to_save keys are accepted
    dir = saved();
    const plain = loadAdapter(dir);
    rewriteTensors(dir, (m) => {
      for (const k of [...m.keys()]) { const t = m.get(k)!; m.delete(k); m.set(k.replace(/\.lora_([AB])\.weight$/, '.lora_$1.default.weight'), t); }
      m.set('base_model.model.score.modules_to_save.default.weight', randomTensor([3, 32], new Rng(2), 0.1));
    });
    const named = loadAdapter(dir);
    assert.deepEqual([...named.lora.keys()], [...plain.lora.keys()]);
    assert.deepEqual([...named.extra.keys()], ['score.weight']);
    f = rewriteTensors(dir, (m) => m.set('base_model.model.transformer.h.1.attn.c_attn.lora_A.other.weight', randomTensor([4, 32], new Rng(1), 0.1)));
    throwsLS(() => loadAdapter(dir), f, 'base_model.model.transformer.h.1.attn.c_attn.lora_A.other.weight', /two adapters/);
  });
});

describe('PEFT fixtures', { skip: fixturesSkip }, () => {
  const dirOf = (name: string) => path.join(FIXTURES, 'peft-adapters', name);

  it('seqcls-gpt2-r8: 12 c_attn pairs + score.weight [6, 768]', () => {
    const a = loadAdapter(dirOf('seqcls-gpt2-r8'));
    assert.equal(a.config.task_type, 'SEQ_CLS');
    assert.equal(a.lora.size, 12);
    for (let i = 0; i < 12; i++) {
      const p = a.lora.get(`transformer.h.${i}.attn.c_attn`)!;
      assert.deepEqual(p.A.shape, [8, 768]);
      assert.deepEqual(p.B.shape, [2304, 8]);
    }
    assert.deepEqual([...a.extra.keys()], ['score.weight']);
    assert.deepEqual(a.extra.get('score.weight')!.shape, [6, 768]);
    assert.deepEqual(readSafetensors(path.join(dirOf('seqcls-gpt2-r8'), 'adapter_model.safetensors')).metadata, { format: 'pt' });
    checkAdapterFitsModel(a, 'x', GPT2_FAMILY.adapterFacts(SMALL), gpt2WeightShapes(SMALL, 'seq-cls', 6));
  });

  it('causal-gpt2-r8: 36 pairs (c_proj matches attn.c_proj and mlp.c_proj); newer-PEFT keys kept', () => {
    const a = loadAdapter(dirOf('causal-gpt2-r8'));
    assert.equal(a.lora.size, 36);
    assert.equal(a.extra.size, 0);
    for (let i = 0; i < 12; i++) {
      assert.deepEqual(a.lora.get(`transformer.h.${i}.attn.c_attn`)!.B.shape, [2304, 8]);
      assert.deepEqual(a.lora.get(`transformer.h.${i}.attn.c_proj`)!.A.shape, [8, 768]);
      assert.deepEqual(a.lora.get(`transformer.h.${i}.attn.c_proj`)!.B.shape, [768, 8]);
      assert.deepEqual(a.lora.get(`transformer.h.${i}.mlp.c_proj`)!.A.shape, [8, 3072]);
      assert.deepEqual(a.lora.get(`transformer.h.${i}.mlp.c_proj`)!.B.shape, [768, 8]);
    }
    assert.equal(a.config.lora_alpha, 32);
    assert.ok('eva_config' in a.config && 'corda_config' in a.config && a.config.qalora_group_size === 16);
    checkAdapterFitsModel(a, 'x', GPT2_FAMILY.adapterFacts(SMALL), gpt2WeightShapes(SMALL, 'causal-lm'));
  });

  it('re-saving a fixture and reloading is bit-exact; the tensor bytes equal the original file', () => {
    for (const name of ['seqcls-gpt2-r8', 'causal-gpt2-r8']) {
      const a = loadAdapter(dirOf(name));
      const dir = fresh(name);
      saveAdapter(dir, a);
      assertAdaptersBitEqual(a, loadAdapter(dir));
      const orig = readSafetensors(path.join(dirOf(name), 'adapter_model.safetensors'));
      const ours = readSafetensors(path.join(dir, 'adapter_model.safetensors'));
      assert.deepEqual([...ours.entries.keys()], [...orig.entries.keys()]);
      assert.ok(ours.data.equals(orig.data), 'data section byte-identical');
      const origCfg = JSON.parse(fs.readFileSync(path.join(dirOf(name), 'adapter_config.json'), 'utf8'));
      assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')), origCfg);
    }
  });

  it('a GPT-2-small adapter on a 32-wide model: shape mismatch naming file, key, expected and found', () => {
    const a = loadAdapter(dirOf('seqcls-gpt2-r8'));
    throwsLS(
      () => checkAdapterFitsModel(a, '/adapters/x/adapter_model.safetensors', GPT2_FAMILY.adapterFacts(TINY), gpt2WeightShapes(TINY, 'seq-cls', 6)),
      '/adapters/x/adapter_model.safetensors',
      'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight',
      /expected \[8,32\].*found \[8,768\]/,
    );
    // 12 layers vs 2: modules beyond the model's depth do not exist
    const deep = { ...a, lora: new Map([...a.lora].filter(([m]) => m.includes('h.5.'))) };
    const big = { ...TINY, n_embd: 768, n_head: 12 } as GPT2Config;
    throwsLS(() => checkAdapterFitsModel(deep, 'f', GPT2_FAMILY.adapterFacts(big), gpt2WeightShapes(big, 'seq-cls', 6)), 'f', 'base_model.model.transformer.h.5.attn.c_attn.lora_A.weight', /does not exist/);
  });
});

describe('checkAdapterFitsModel', () => {
  it('accepts a matching adapter (shapes map or weights map)', () => {
    const a = randomAdapter(tinyShapes, MODULES, 'seq-cls', { r: 2 });
    a.extra.set('score.weight', randomTensor([3, 32], new Rng(3), 0.1));
    checkAdapterFitsModel(a, 'f', GPT2_FAMILY.adapterFacts(TINY), tinyShapes);
    const weights = new Map([...tinyShapes].map(([k, s]) => [k, { shape: s }]));
    checkAdapterFitsModel(a, 'f', GPT2_FAMILY.adapterFacts(TINY), weights);
  });
  it('an adapter for another architecture names it and its base model', () => {
    const a = randomAdapter(tinyShapes, ['transformer.h.0.attn.c_attn'], 'causal-lm');
    const llama = {
      ...a,
      config: { ...a.config, base_model_name_or_path: 'meta-llama/Llama-3.2-1B' },
      lora: new Map([['model.layers.0.self_attn.q_proj', a.lora.get('transformer.h.0.attn.c_attn')!]]),
    };
    throwsLS(() => checkAdapterFitsModel(llama, 'f', GPT2_FAMILY.adapterFacts(TINY), tinyShapes), 'f', 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
      /another architecture.*meta-llama\/Llama-3\.2-1B/);
  });
  it('B of the wrong width, extra of the wrong shape, LoRA on a LayerNorm', () => {
    const a = randomAdapter(tinyShapes, ['transformer.h.1.mlp.c_fc'], 'causal-lm', { r: 2 });
    a.lora.get('transformer.h.1.mlp.c_fc')!.B = randomTensor([96, 2], new Rng(1), 0.1);
    throwsLS(() => checkAdapterFitsModel(a, 'f', GPT2_FAMILY.adapterFacts(TINY), tinyShapes), 'f', 'base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight', /expected \[128,2\].*found \[96,2\]/);
    const b = randomAdapter(tinyShapes, [], 'seq-cls');
    b.extra.set('score.weight', randomTensor([6, 32], new Rng(1), 0.1));
    throwsLS(() => checkAdapterFitsModel(b, 'f', GPT2_FAMILY.adapterFacts(TINY), tinyShapes), 'f', 'base_model.model.score.weight', /expected \[3,32\].*found \[6,32\]/);
    const c = randomAdapter(tinyShapes, [], 'causal-lm');
    c.lora.set('transformer.h.0.ln_1', { A: randomTensor([8, 32], new Rng(1), 0.1), B: randomTensor([32, 8], new Rng(1), 0.1) });
    throwsLS(() => checkAdapterFitsModel(c, 'f', GPT2_FAMILY.adapterFacts(TINY), tinyShapes), 'f', 'base_model.model.transformer.h.0.ln_1.lora_A.weight', /only Conv1D\/Linear/);
  });
});
