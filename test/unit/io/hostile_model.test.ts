/**
 * Hostile input in the model and adapter readers (issue 11): each case is the minimal input a fuzzing campaign
 * found, and each must end in a LoraStudioError naming the file and the field — no TypeError, SyntaxError,
 * RangeError, hang or memory blow-up, and no message that echoes a megabyte of the input.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LoraStudioError } from '../../../trainer/errors';
import { readShardIndex } from '../../../trainer/io/hf_folder';
import { loadModelFolder } from '../../../trainer/models/gpt2/folder';
import { readSafetensors, writeSafetensors } from '../../../trainer/io/safetensors';
import { LORA_DEFAULTS, type LoraConfig } from '../../../trainer/lora/config';
import { adapterLabelMaps, loadAdapter, saveAdapter } from '../../../trainer/lora/adapter_io';
import { rankTable } from '../../../trainer/lora/patterns';
import { resolveTargets } from '../../../trainer/lora/targets';
import { mergeToFolder } from '../../../trainer/commands/merge';
import { parseConfig, readConfig } from '../../../trainer/models/gpt2/config';
import { namedModules } from '../../../trainer/models/gpt2/modules';
import { writeRandomGPT2 } from '../../../trainer/models/gpt2/random_init';
import { gpt2WeightShapes } from '../../../trainer/models/gpt2/weights';
import { loadTokenizer } from '../../../trainer/tokenizer/tokenizer';
import { randomAdapter, throwsLS } from './helpers';

let tmp: string;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-hostile-')); });
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = (name: string) => path.join(tmp, `${name}-${n++}`);

const MB = 'x'.repeat(1 << 20);
const deep = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);

/** A LoraStudioError on `file` whose field starts with `prefix` (a JSON path into a deeply nested value, cut). */
function refusesDeep(fn: () => unknown, file: string, prefix: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof LoraStudioError, String(e));
    assert.equal(e.file, file);
    assert.ok(e.field?.startsWith(prefix) && e.field.length <= 80, `field ${e.field}`);
    assert.match(e.message, /nested more than 64 levels/);
    return true;
  });
}

/** A LoraStudioError on `file` and `field`, whose message matches and stays short (no echo of a huge value). */
function refuses(fn: () => unknown, file: string, field: string | undefined, message: RegExp): void {
  let thrown: unknown;
  throwsLS(() => {
    try { fn(); } catch (e) { thrown = e; throw e; }
  }, file, field, message);
  assert.ok((thrown as Error).message.length < 1000, `message of ${(thrown as Error).message.length} chars`);
}

describe('config.json', () => {
  let dir: string;
  let file: string;
  let base: Record<string, unknown>;
  before(() => {
    dir = fresh('model');
    writeRandomGPT2(dir, { seed: 1 });
    file = path.join(dir, 'config.json');
    base = JSON.parse(fs.readFileSync(file, 'utf8'));
  });
  const writeCfg = (text: string) => fs.writeFileSync(file, text);
  const withCfg = (patch: Record<string, unknown>) => writeCfg(JSON.stringify({ ...base, ...patch }));

  it('a BOM is accepted; deep nesting in an unknown key is refused at read time', () => {
    writeCfg(`\uFEFF${JSON.stringify(base)}`);
    assert.equal(readConfig(dir).n_embd, base.n_embd);
    writeCfg(JSON.stringify(base).replace(/}$/, `, "extra": ${deep(5000)}}`));
    refusesDeep(() => readConfig(dir), file, 'extra[0][0]');
  });

  it('dimensions are bounded before any table is built (n_layer 2^31 or 1e6 used to abort V8)', () => {
    for (const [k, v] of [['n_layer', 2 ** 31], ['n_layer', 1e6], ['vocab_size', 2e6], ['n_embd', 131072], ['n_positions', 2 ** 21], ['n_inner', 1e9]] as const) {
      withCfg({ [k]: v });
      const t = Date.now();
      refuses(() => readConfig(dir), file, k, /must be (null or )?an integer from 1 to/);
      assert.ok(Date.now() - t < 1000);
    }
    withCfg({ n_embd: 64, n_head: 128 });
    refuses(() => readConfig(dir), file, 'n_head', /divisible/);
    // every dimension within its bound, but 1024 layers of width 65536: the parameter count is refused
    withCfg({ n_embd: 65536, n_head: 1, n_layer: 1024 });
    refuses(() => readConfig(dir), file, 'n_layer', /parameters .* the limit is 2e\+10/);
  });

  it('wrong types are refused naming the field (pad_token_id false, eos_token_id "gpt2", …)', () => {
    const cases: Array<[string, unknown, string?]> = [
      ['pad_token_id', false], ['eos_token_id', 'gpt2'], ['bos_token_id', []], ['bos_token_id', null], ['num_labels', '2'],
      ['layer_norm_epsilon', 'x'], ['n_inner', 1.5], ['scale_attn_weights', 'yes'], ['architectures', 5], ['architectures', [5], 'architectures.0'],
      ['resid_pdrop', 1e300], ['initializer_range', 'x'], ['activation_function', MB],
    ];
    for (const [k, v, field] of cases) {
      withCfg({ [k]: v });
      refuses(() => readConfig(dir), file, field ?? k, /must|unsupported/);
    }
    withCfg({ model_type: MB });
    refuses(() => readConfig(dir), file, 'model_type', /unknown model_type "x+…/);
    withCfg({ pad_token_id: null, n_inner: null, architectures: null });
    assert.equal(readConfig(dir).pad_token_id, null);
  });

  it('id2label / label2id: shapes, keys, agreement with each other and with num_labels', () => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ id2label: 5 }, 'id2label', /object of label id → label name, got 5/],
      [{ label2id: 0 }, 'label2id', /object of label name → label id, got 0/],
      [{ id2label: { 0: 'a', x: 'b' } }, 'id2label.x', /label id from 0 to 1/],
      [{ id2label: { 0: 'a', 1: 7 } }, 'id2label.1', /label name/],
      [{ id2label: {} }, 'id2label', /at least one label/],
      [{ id2label: { 0: 'a', 1: 'b' }, label2id: { a: 0, b: 0 } }, 'label2id.b', /id2label\.0 is "a"/],
      [{ id2label: { 0: 'a', 1: 'b' }, label2id: { a: 0 } }, 'label2id', /1 labels but id2label has 2/],
      [{ label2id: { a: '0' } }, 'label2id.a', /label id/],
      [{ id2label: { 0: 'a', 1: 'b' }, num_labels: 3 }, 'num_labels', /id2label has 2/],
    ];
    for (const [patch, field, msg] of cases) {
      withCfg(patch);
      refuses(() => readConfig(dir), file, field, msg);
    }
    // "__proto__" and "constructor" are ordinary label names
    writeCfg(JSON.stringify(base).replace(/}$/, ', "id2label": {"0": "__proto__", "1": "constructor"}, "label2id": {"__proto__": 0, "constructor": 1}}'));
    const c = readConfig(dir);
    assert.deepEqual(Object.keys(c.label2id!), ['__proto__', 'constructor']);
    assert.equal(Object.getOwnPropertyDescriptor(c.label2id, '__proto__')?.value, 0);
  });

  it('weights that disagree with the config name the tensor; lm_head is checked before it is decoded', () => {
    fs.writeFileSync(file, JSON.stringify(base));
    const wfile = path.join(dir, 'model.safetensors');
    const orig = fs.readFileSync(wfile);
    try {
      const st = readSafetensors(wfile);
      const tensors = new Map([...st.entries.keys()].map((k) => [k, { shape: st.entries.get(k)!.shape, data: new Float32Array(st.data.buffer.slice(st.data.byteOffset + st.entries.get(k)!.begin, st.data.byteOffset + st.entries.get(k)!.end)), dtype: 'F32' as const }]));
      tensors.set('lm_head.weight', { shape: [3, 3], data: new Float32Array(9), dtype: 'F32' });
      fs.rmSync(wfile);
      writeSafetensors(wfile, tensors);
      refuses(() => loadModelFolder(dir), wfile, 'lm_head.weight', /\[3,3\] does not match wte/);
      fs.writeFileSync(wfile, orig);
      withCfg({ n_embd: 64, n_head: 4 });
      refuses(() => loadModelFolder(dir), wfile, 'transformer.wte.weight', /does not fit this config/);
    } finally {
      fs.writeFileSync(wfile, orig);
      fs.writeFileSync(file, JSON.stringify(base));
    }
  });
});

describe('adapter folder', () => {
  let dir: string;
  let cfgFile: string;
  let wFile: string;
  let cfg: Record<string, unknown>;
  const model = fresh('base');
  before(() => {
    const config = writeRandomGPT2(model, { seed: 2, task: 'seq-cls', num_labels: 2 });
    const shapes = gpt2WeightShapes(config, 'seq-cls', 2);
    const modules = [0, 1].flatMap((i) => [`transformer.h.${i}.attn.c_attn`, `transformer.h.${i}.attn.c_proj`, `transformer.h.${i}.mlp.c_fc`, `transformer.h.${i}.mlp.c_proj`]);
    dir = fresh('adapter');
    const adapter = randomAdapter(shapes, modules, 'seq-cls', { r: 4 });
    saveAdapter(dir, { ...adapter, metadata: { id2label: '{"0": "neg", "1": "pos"}', label2id: '{"neg": 0, "pos": 1}' } });
    cfgFile = path.join(dir, 'adapter_config.json');
    wFile = path.join(dir, 'adapter_model.safetensors');
    cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  });
  const withCfg = (patch: Record<string, unknown>) => fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, ...patch }));

  it('a rank_pattern key that is not a regex is an error naming it, not a SyntaxError', () => {
    withCfg({ rank_pattern: { '(': 4 } });
    refuses(() => loadAdapter(dir), cfgFile, 'rank_pattern.(', /not a valid regular expression/);
    withCfg({ alpha_pattern: { 'c_[': 4 } });
    refuses(() => loadAdapter(dir), cfgFile, 'alpha_pattern.c_[', /not a valid regular expression/);
    withCfg({ rank_pattern: { c_attn: 1.5 } });
    refuses(() => loadAdapter(dir), cfgFile, 'rank_pattern.c_attn', /positive integer, got 1\.5/);
    withCfg({ alpha_pattern: { c_attn: '8' } });
    refuses(() => loadAdapter(dir), cfgFile, 'alpha_pattern.c_attn', /a number, got "8"/);
  });

  it('a catastrophic rank_pattern key stops in seconds (it made merge take 21 s)', () => {
    withCfg({ rank_pattern: { '(.*)*X': 4 } });
    const t = Date.now();
    refuses(() => loadAdapter(dir), cfgFile, 'rank_pattern.(.*)*X', /took over 2 s/);
    assert.ok(Date.now() - t < 6000, `${Date.now() - t} ms`);
    const out = fresh('merged');
    const t2 = Date.now();
    refuses(() => mergeToFolder(model, dir, out), cfgFile, 'rank_pattern.(.*)*X', /took over 2 s/);
    assert.ok(Date.now() - t2 < 6000, `${Date.now() - t2} ms`);
    assert.ok(!fs.existsSync(out));
  });

  it('rankTable: first matching key wins; plain and regex keys agree with PEFT', () => {
    const lora = { ...LORA_DEFAULTS, r: 8, lora_alpha: 16, rank_pattern: { 'h\\.0\\.attn\\.c_attn': 2, 'c_.*': 4, c_attn: 6, q_proj: 3 }, alpha_pattern: { c_fc: 1 } };
    const t = rankTable(lora, ['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_attn', 'transformer.h.1.mlp.c_fc', 'score']);
    assert.deepEqual([...t.byName.values()].map((v) => [v.r, v.lora_alpha]), [[2, 16], [4, 16], [4, 1], [8, 16]]);
    assert.deepEqual(t.unused, [{ field: 'rank_pattern', key: 'q_proj' }]);
  });

  it('booleans must be booleans: use_dora 1, lora_bias 1, use_rslora 1, inference_mode "true"', () => {
    for (const k of ['use_dora', 'lora_bias', 'use_rslora', 'fan_in_fan_out', 'inference_mode', 'use_qalora']) {
      withCfg({ [k]: k === 'inference_mode' ? 'true' : 1 });
      refuses(() => loadAdapter(dir), cfgFile, k, /must be true or false, got (1|"true")/);
    }
    withCfg({ use_dora: true });
    refuses(() => loadAdapter(dir), cfgFile, 'use_dora', /DoRA adapters are not supported/);
    withCfg({ lora_bias: true });
    refuses(() => loadAdapter(dir), cfgFile, 'lora_bias', /not supported/);
  });

  it('adapter_config.json: a BOM is accepted, deep nesting refused, huge values cut', () => {
    fs.writeFileSync(cfgFile, `\uFEFF${JSON.stringify(cfg)}`);
    assert.equal(loadAdapter(dir).lora.size, 8);
    fs.writeFileSync(cfgFile, JSON.stringify(cfg).replace(/}$/, `, "eva_config": ${deep(3000)}}`));
    refusesDeep(() => loadAdapter(dir), cfgFile, 'eva_config[0][0]');
    withCfg({ peft_type: MB });
    refuses(() => loadAdapter(dir), cfgFile, 'peft_type', /must be "LORA", got "x+…/);
  });

  it('label maps in the safetensors metadata: not JSON, wrong shape, disagreeing maps', () => {
    fs.writeFileSync(cfgFile, JSON.stringify(cfg));
    const st = readSafetensors(wFile);
    const tensors = new Map([...st.entries].map(([k, e]) => [k, { shape: e.shape, data: new Float32Array(st.data.buffer.slice(st.data.byteOffset + e.begin, st.data.byteOffset + e.end)), dtype: 'F32' as const }]));
    const withMeta = (meta: Record<string, string>) => { fs.rmSync(wFile); writeSafetensors(wFile, tensors, { format: 'pt', ...meta }); };
    const cases: Array<[Record<string, string>, string, RegExp]> = [
      [{ id2label: '{bad', label2id: '{}' }, '__metadata__.id2label', /not valid JSON at line 1, column 2/],
      [{ id2label: '5', label2id: '{}' }, '__metadata__.id2label', /object of label id → label name, got 5/],
      [{ id2label: '{"0": "neg", "1": "pos"}', label2id: '5' }, '__metadata__.label2id', /got 5/],
      [{ id2label: '{"0": "neg", "1": "pos"}', label2id: '{"neg": 1, "pos": 0}' }, '__metadata__.label2id.neg', /must agree/],
      [{ id2label: '{"0": "neg"}' }, '__metadata__.label2id', /only one of/],
    ];
    for (const [meta, field, msg] of cases) {
      withMeta(meta);
      throwsLS(() => loadAdapter(dir), wFile, field, msg);
    }
    withMeta({ id2label: deep(100), label2id: '{}' });
    refusesDeep(() => loadAdapter(dir), wFile, '[0][0]');
    withMeta({ id2label: '{"0": "__proto__", "1": "constructor"}', label2id: '{"__proto__": 0, "constructor": 1}' });
    const labels = adapterLabelMaps(loadAdapter(dir), wFile)!;
    assert.deepEqual(Object.keys(labels.label2id), ['__proto__', 'constructor']);
  });
});

describe('target_modules / exclude_modules regexes', () => {
  const config = parseConfig({ model_type: 'gpt2', vocab_size: 100, n_positions: 16, n_embd: 8, n_head: 2, n_layer: 4 }, 'config.json');
  const modules = namedModules(config, 'causal-lm', 2);
  const lora = (o: Partial<LoraConfig>): LoraConfig => ({ ...LORA_DEFAULTS, fan_in_fan_out: true, ...o });

  it('a catastrophic target_modules fails in about 2 s naming the file and field', () => {
    for (const [field, o] of [['target_modules', { target_modules: '(.*)*X' }], ['exclude_modules', { target_modules: 'all-linear', exclude_modules: '(.*)*Y' }]] as const) {
      const t = Date.now();
      refuses(() => resolveTargets(modules, lora(o), 'causal-lm', { file: 'run.json' }), 'run.json', field, /took over 2 s/);
      assert.ok(Date.now() - t < 6000, `${field}: ${Date.now() - t} ms`);
    }
  });

  it('the partial-match hint is time-bounded too, and still helps', () => {
    // r(.*)*X fails at once as a full match (no name starts with r), but its search form backtracks on every name
    const t = Date.now();
    refuses(() => resolveTargets(modules, lora({ target_modules: 'r(.*)*X' }), 'causal-lm', { file: 'run.json' }), 'run.json', 'target_modules', /took over 2 s/);
    assert.ok(Date.now() - t < 8000);
    refuses(() => resolveTargets(modules, lora({ target_modules: 'attn\\.c_at' }), 'causal-lm', { file: 'run.json' }), 'run.json', 'target_modules', /matches part of 4 name\(s\)/);
    refuses(() => resolveTargets(modules, lora({ target_modules: '(?i)ATTN\\.C_AT' }), 'causal-lm', { file: 'run.json' }), 'run.json', 'target_modules', /matches part of 4 name\(s\)/);
    refuses(() => resolveTargets(modules, lora({ target_modules: 'c_(' }), 'causal-lm', { file: 'run.json' }), 'run.json', 'target_modules', /not a valid regular expression/);
  });

  it('a megabyte-long list entry or pattern is cut in messages and gets no edit-distance search', () => {
    const t = Date.now();
    refuses(() => resolveTargets(modules, lora({ target_modules: [MB] }), 'causal-lm', { file: 'run.json' }), 'run.json', 'target_modules', /matched no module/);
    assert.ok(Date.now() - t < 2000, `${Date.now() - t} ms`);
  });
});

describe('safetensors and the shard index', () => {
  const header = (h: unknown, data = Buffer.alloc(0)) => {
    const text = typeof h === 'string' ? h : JSON.stringify(h);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(text)));
    const f = fresh('st');
    fs.writeFileSync(f, Buffer.concat([len, Buffer.from(text), data]));
    return f;
  };

  it('dtype "toString", entry null, __metadata__ a list or a number value, nesting: all named errors', () => {
    let f = header({ t: { dtype: 'toString', shape: [1], data_offsets: [0, 4] } }, Buffer.alloc(4));
    refuses(() => readSafetensors(f), f, 't.dtype', /unknown dtype "toString"/);
    f = header({ t: null });
    refuses(() => readSafetensors(f), f, 't', /must be an object/);
    f = header({ __metadata__: ['pt'] });
    refuses(() => readSafetensors(f), f, '__metadata__', /object of strings/);
    f = header({ __metadata__: { format: 5 } });
    refuses(() => readSafetensors(f), f, '__metadata__.format', /must be a string, got 5/);
    f = header(`{"t": ${deep(200)}}`);
    refusesDeep(() => readSafetensors(f), f, 't[0][0]');
    f = header({ t: { dtype: 'F32', shape: [MB.length], data_offsets: [0, 4] } }, Buffer.alloc(4));
    refuses(() => readSafetensors(f), f, 't.data_offsets', /cover 4 bytes but F32\[1048576\] needs 4194304/);
    f = header({ t: { dtype: 'F32', shape: Array(1000).fill(2 ** 40), data_offsets: [0, 4] } }, Buffer.alloc(4));
    refuses(() => readSafetensors(f), f, 't.data_offsets', /cover 4 bytes/);
    const raw = '{"__metadata__": {"__proto__": "x", "format": "pt"}}';
    f = header(raw);
    assert.deepEqual(Object.keys(readSafetensors(f).metadata), ['__proto__', 'format']);
  });

  it('weight_map: an object of string → plain file name in the folder', () => {
    const dir = fresh('index');
    fs.mkdirSync(dir);
    const index = path.join(dir, 'model.safetensors.index.json');
    const cases: Array<[string, string | undefined, RegExp]> = [
      ['{"weight_map": {"a": "../x.safetensors"}}', 'weight_map.a', /must be a file name in the model folder/],
      ['{"weight_map": {"a": "/etc/passwd"}}', 'weight_map.a', /file name in the model folder/],
      ['{"weight_map": {"a": "sub/x.safetensors"}}', 'weight_map.a', /file name in the model folder/],
      ['{"weight_map": {"a": 5}}', 'weight_map.a', /shard file name \(a string\), got 5/],
      ['{"weight_map": ["x"]}', 'weight_map', /object of tensor name → shard file/],
      ['[]', undefined, /JSON object with a weight_map/],
      ['{"weight_map": {}}', 'weight_map', /lists no tensors/],
    ];
    for (const [text, field, msg] of cases) {
      fs.writeFileSync(index, text);
      refuses(() => readShardIndex(index), index, field, msg);
    }
    fs.writeFileSync(index, '\uFEFF{"weight_map": {"a": "m.safetensors"}}');
    assert.deepEqual([...readShardIndex(index)], [['a', 'm.safetensors']]);
  });
});

describe('tokenizer.json / tokenizer_config.json', () => {
  let dir: string;
  let tok: string;
  let good: string;
  before(() => {
    dir = fresh('tok');
    writeRandomGPT2(dir, { seed: 1 });
    tok = path.join(dir, 'tokenizer.json');
    good = fs.readFileSync(tok, 'utf8');
  });

  it('library exceptions become errors naming tokenizer.json, without a stack', () => {
    const j = JSON.parse(good);
    for (const broken of [{ ...j, model: 5 }, { ...j, model: { ...j.model, vocab: 5, merges: 'x' } }, { ...j, decoder: [] }, { ...j, added_tokens: 3 }, { ...j, added_tokens: [null] }]) {
      fs.writeFileSync(tok, JSON.stringify(broken));
      assert.throws(() => loadTokenizer(dir), (e: unknown) => {
        assert.ok(e instanceof LoraStudioError, String(e));
        assert.equal(e.file, tok);
        assert.doesNotMatch(e.message, /\n\s+at /);
        return true;
      });
    }
    fs.writeFileSync(tok, good);
    const hi = loadTokenizer(dir).encode('hi');
    fs.writeFileSync(tok, `\uFEFF${good}`);
    const t = loadTokenizer(dir);
    assert.deepEqual(t.encode('hi'), hi);
    assert.equal(t.decode([]), '');
  });

  it('tokenizer_config.json with wrong types names the field', () => {
    fs.writeFileSync(tok, good);
    const cfg = path.join(dir, 'tokenizer_config.json');
    const cases: Array<[unknown, string | undefined, RegExp]> = [
      [{ pad_token: 5 }, 'pad_token', /must be a token/],
      [{ model_max_length: 'x' }, 'model_max_length', /positive number, got "x"/],
      [{ additional_special_tokens: 'x' }, 'additional_special_tokens', /list of tokens/],
      [{ clean_up_tokenization_spaces: 'no' }, 'clean_up_tokenization_spaces', /true or false/],
      [[], undefined, /JSON object/],
    ];
    try {
      for (const [c, field, msg] of cases) {
        fs.writeFileSync(cfg, JSON.stringify(c));
        refuses(() => loadTokenizer(dir), cfg, field as string, msg);
      }
      fs.writeFileSync(cfg, JSON.stringify({ eos_token: { content: '<|endoftext|>', __type: 'AddedToken' }, model_max_length: 1e30 }));
      assert.equal(loadTokenizer(dir).encode('hi').length, 2);
    } finally {
      fs.rmSync(cfg, { force: true });
    }
  });
});
