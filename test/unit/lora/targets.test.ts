/**
 * PEFT's target matching over the GPT-2 module table: regex full match, list exact/.suffix, all-linear,
 * exclude_modules, per-module rank/alpha, unsupported module types, modules_to_save, fan_in_fan_out.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LoraStudioError } from '../../../trainer/errors';
import { LORA_DEFAULTS, type LoraConfig } from '../../../trainer/lora/config';
import { parseConfig } from '../../../trainer/models/gpt2/config';
import { namedModules } from '../../../trainer/models/gpt2/modules';
import { GPT2_FAMILY } from '../../../trainer/models/gpt2/family';
import { FAN_IN_FAN_OUT_WARNING, resolveTargets } from '../../../trainer/lora/targets';

const SMALL = parseConfig({ model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12, activation_function: 'gelu_new' }, 'config.json');
const causal = namedModules(SMALL, 'causal-lm', 2);
const seqcls = namedModules(SMALL, 'seq-cls', 2);
const lora = (o: Partial<LoraConfig>): LoraConfig => ({ ...LORA_DEFAULTS, fan_in_fan_out: true, ...o });
const layers = (suffix: string) => Array.from({ length: 12 }, (_, i) => `transformer.h.${i}.${suffix}`);
const names = (r: { targets: Array<{ name: string }> }) => r.targets.map((t) => t.name);

/** Asserts a LoraStudioError on `field` whose message matches every pattern. */
function throwsStudio(fn: () => unknown, field: string, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof LoraStudioError, String(e));
    assert.equal(e.field, field);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

describe('resolveTargets: target_modules', () => {
  it('list entry "c_attn" matches the 12 attn.c_attn modules by suffix', () => {
    const r = resolveTargets(causal, lora({ target_modules: ['c_attn'] }), 'causal-lm');
    assert.deepEqual(names(r), layers('attn.c_attn'));
    assert.deepEqual(r.matched_by_entry, { c_attn: layers('attn.c_attn') });
    assert.deepEqual(r.targets[0], { name: 'transformer.h.0.attn.c_attn', type: 'Conv1D', in_features: 768, out_features: 2304, r: 8, lora_alpha: 8, scaling: 1 });
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.modules_to_save, []);
  });

  it('list entry "c_proj" matches BOTH attn.c_proj and mlp.c_proj (suffix rule), in named_modules order', () => {
    const r = resolveTargets(causal, lora({ target_modules: ['c_proj'] }), 'causal-lm');
    assert.equal(r.targets.length, 24);
    assert.deepEqual(names(r).slice(0, 4), ['transformer.h.0.attn.c_proj', 'transformer.h.0.mlp.c_proj', 'transformer.h.1.attn.c_proj', 'transformer.h.1.mlp.c_proj']);
    const mlp = r.targets.find((t) => t.name === 'transformer.h.3.mlp.c_proj');
    assert.deepEqual([mlp?.in_features, mlp?.out_features], [3072, 768]);
  });

  it('the suffix rule works at dot boundaries only: "proj" and "attn.c" match nothing', () => {
    throwsStudio(() => resolveTargets(causal, lora({ target_modules: ['proj'] }), 'causal-lm'), 'target_modules', /matched no module/);
    throwsStudio(() => resolveTargets(causal, lora({ target_modules: ['attn.c'] }), 'causal-lm'), 'target_modules', /matched no module/);
  });

  it('list entries may be exact full names or multi-part suffixes', () => {
    const r = resolveTargets(causal, lora({ target_modules: ['transformer.h.3.mlp.c_fc', 'attn.c_proj'] }), 'causal-lm');
    assert.deepEqual(new Set(names(r)), new Set(['transformer.h.3.mlp.c_fc', ...layers('attn.c_proj')]));
    assert.deepEqual(r.matched_by_entry?.['transformer.h.3.mlp.c_fc'], ['transformer.h.3.mlp.c_fc']);
  });

  it('a string is a regex that must match the WHOLE name: "c_attn" matches nothing, with close names in the error', () => {
    throwsStudio(
      () => resolveTargets(causal, lora({ target_modules: 'c_attn' }), 'causal-lm'),
      'target_modules',
      /whole module name/i,
      /transformer\.h\.0\.attn\.c_attn/,
      /\["c_attn"\]/,
    );
  });

  it('regex transformer\\.h\\..*\\.attn\\.c_.* matches c_attn and attn.c_proj in every layer only', () => {
    const r = resolveTargets(causal, lora({ target_modules: 'transformer\\.h\\..*\\.attn\\.c_.*' }), 'causal-lm');
    const want = Array.from({ length: 12 }, (_, i) => [`transformer.h.${i}.attn.c_attn`, `transformer.h.${i}.attn.c_proj`]).flat();
    assert.deepEqual(names(r), want);
  });

  it('regex over layer numbers, and Python named groups are accepted', () => {
    const r = resolveTargets(causal, lora({ target_modules: 'transformer\\.h\\.(1|10)\\.mlp\\.c_fc' }), 'causal-lm');
    assert.deepEqual(names(r), ['transformer.h.1.mlp.c_fc', 'transformer.h.10.mlp.c_fc']);
    const p = resolveTargets(causal, lora({ target_modules: '.*\\.(?P<kind>c_fc)' }), 'causal-lm');
    assert.deepEqual(names(p), layers('mlp.c_fc'));
  });

  it('an invalid regex is a LoraStudioError naming target_modules and the regex error', () => {
    throwsStudio(() => resolveTargets(causal, lora({ target_modules: 'transformer\\.h\\.(0' }), 'causal-lm'), 'target_modules', /not a valid regular expression/, /transformer/);
  });

  it('"all-linear" takes every Conv1D and leaves out the head (lm_head / score)', () => {
    const r = resolveTargets(causal, lora({ target_modules: 'all-linear' }), 'causal-lm');
    assert.equal(r.targets.length, 48);
    assert.ok(!names(r).includes('lm_head'));
    assert.ok(r.targets.every((t) => t.type === 'Conv1D'));
    const s = resolveTargets(seqcls, lora({ target_modules: 'all-linear' }), 'seq-cls');
    assert.equal(s.targets.length, 48);
    assert.ok(!names(s).includes('score'));
    assert.deepEqual(s.modules_to_save, ['score']);
  });

  it('exclude_modules removes matches (list by suffix, string by full-match regex)', () => {
    const r = resolveTargets(causal, lora({ target_modules: ['c_proj'], exclude_modules: ['mlp.c_proj'] }), 'causal-lm');
    assert.deepEqual(names(r), layers('attn.c_proj'));
    const s = resolveTargets(causal, lora({ target_modules: 'all-linear', exclude_modules: 'transformer\\.h\\.([0-9]|10)\\..*' }), 'causal-lm');
    assert.deepEqual(names(s), ['transformer.h.11.attn.c_attn', 'transformer.h.11.attn.c_proj', 'transformer.h.11.mlp.c_fc', 'transformer.h.11.mlp.c_proj']);
    assert.deepEqual(s.matched_by_entry?.['all-linear'], names(s));
    throwsStudio(() => resolveTargets(causal, lora({ target_modules: ['c_attn'], exclude_modules: ['c_attn'] }), 'causal-lm'), 'exclude_modules', /no modules are left/);
  });

  it('rank_pattern / alpha_pattern set r and lora_alpha per module; scaling = alpha / r', () => {
    const r = resolveTargets(causal, lora({ target_modules: ['c_attn', 'c_fc'], r: 8, lora_alpha: 16, rank_pattern: { 'h\\.0\\.attn\\.c_attn': 4 }, alpha_pattern: { c_fc: 64 } }), 'causal-lm');
    const by = new Map(r.targets.map((t) => [t.name, t]));
    assert.deepEqual(by.get('transformer.h.0.attn.c_attn'), { name: 'transformer.h.0.attn.c_attn', type: 'Conv1D', in_features: 768, out_features: 2304, r: 4, lora_alpha: 16, scaling: 4 });
    assert.equal(by.get('transformer.h.1.attn.c_attn')?.r, 8);
    assert.equal(by.get('transformer.h.1.attn.c_attn')?.scaling, 2);
    assert.equal(by.get('transformer.h.5.mlp.c_fc')?.lora_alpha, 64);
    assert.equal(by.get('transformer.h.5.mlp.c_fc')?.scaling, 8);
  });

  it('use_rslora scales by alpha / sqrt(r)', () => {
    const r = resolveTargets(causal, lora({ target_modules: ['c_attn'], r: 16, lora_alpha: 8, use_rslora: true, rank_pattern: { 'h\\.1\\.attn\\.c_attn': 4 } }), 'causal-lm');
    assert.equal(r.targets[0].scaling, 2); // 8 / sqrt(16)
    assert.equal(r.targets[1].r, 4);
    assert.equal(r.targets[1].scaling, 4); // 8 / sqrt(4)
  });

  it('an unsupported module type is an error naming the module and its type (only Linear and Conv1D)', () => {
    throwsStudio(() => resolveTargets(causal, lora({ target_modules: ['ln_1'] }), 'causal-lm'), 'target_modules', /transformer\.h\.0\.ln_1 \(LayerNorm\)/, /Linear/, /Conv1D/);
    throwsStudio(() => resolveTargets(causal, lora({ target_modules: ['wte'] }), 'causal-lm'), 'target_modules', /transformer\.wte \(Embedding\)/);
    throwsStudio(() => resolveTargets(causal, lora({ target_modules: '.*attn' }), 'causal-lm'), 'target_modules', /transformer\.h\.0\.attn \(GPT2Attention\)/);
  });

  it('a list entry that matches nothing while others do is a warning naming it', () => {
    const r = resolveTargets(causal, lora({ target_modules: ['c_attn', 'q_proj', 'c_atn'] }), 'causal-lm');
    assert.equal(r.targets.length, 12);
    assert.equal(r.warnings.length, 2);
    assert.match(r.warnings[0], /"q_proj" matched no module/);
    assert.match(r.warnings[1], /"c_atn" matched no module.*c_attn/);
    assert.deepEqual(r.matched_by_entry?.q_proj, []);
  });

  it('target_modules null uses PEFT\'s gpt2 default ["c_attn"], with a note', () => {
    const r = resolveTargets(causal, lora({ target_modules: null }), 'causal-lm', { defaults: { model_type: 'gpt2', target_modules: GPT2_FAMILY.defaultTargetModules } });
    assert.deepEqual(names(r), layers('attn.c_attn'));
    assert.match(r.warnings[0], /default.*c_attn/);
  });

  it('fan_in_fan_out=false on a Conv1D target is forced true with PEFT\'s warning', () => {
    const r = resolveTargets(causal, lora({ target_modules: ['c_attn'], fan_in_fan_out: false }), 'causal-lm');
    assert.equal(r.fan_in_fan_out, true);
    assert.deepEqual(r.warnings, [FAN_IN_FAN_OUT_WARNING]);
    assert.equal(FAN_IN_FAN_OUT_WARNING, 'fan_in_fan_out is set to False but the target module is `Conv1D`. Setting fan_in_fan_out to True.');
    assert.deepEqual(resolveTargets(causal, lora({ target_modules: ['c_attn'], fan_in_fan_out: true }), 'causal-lm').warnings, []);
  });

  it('names the file in errors when given', () => {
    assert.throws(() => resolveTargets(causal, lora({ target_modules: ['nope'] }), 'causal-lm', { file: 'run.json' }), (e: unknown) => e instanceof LoraStudioError && e.file === 'run.json');
  });
});

describe('resolveTargets: modules_to_save', () => {
  it('seq-cls defaults modules_to_save to ["score"] (PEFT does this for SEQ_CLS)', () => {
    const r = resolveTargets(seqcls, lora({ target_modules: ['c_attn'] }), 'seq-cls');
    assert.deepEqual(r.modules_to_save, ['score']);
    assert.deepEqual(r.warnings, []);
  });

  it('an explicit modules_to_save without score warns that the head stays random and frozen', () => {
    const r = resolveTargets(seqcls, lora({ target_modules: ['c_attn'], modules_to_save: [] }), 'seq-cls', { explicitModulesToSave: true });
    assert.deepEqual(r.modules_to_save, []);
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0], /`score`.*neither trained nor saved.*randomly initialised and frozen/);
    const ln = resolveTargets(seqcls, lora({ target_modules: ['c_attn'], modules_to_save: ['ln_f'] }), 'seq-cls');
    assert.deepEqual(ln.modules_to_save, ['transformer.ln_f']);
    assert.match(ln.warnings.join('\n'), /neither trained nor saved/);
  });

  it('a non-explicit list (e.g. from defaults) gets score added, as PEFT does for SEQ_CLS', () => {
    const r = resolveTargets(seqcls, lora({ target_modules: ['c_attn'], modules_to_save: ['ln_f'] }), 'seq-cls', { explicitModulesToSave: false });
    assert.deepEqual(r.modules_to_save, ['transformer.ln_f', 'score']);
    assert.deepEqual(r.warnings, []);
  });

  it('entries match exactly or as .suffix; causal-lm default is none', () => {
    const r = resolveTargets(causal, lora({ target_modules: ['c_attn'], modules_to_save: ['ln_2', 'transformer.wpe'] }), 'causal-lm');
    assert.deepEqual(r.modules_to_save, [...layers('ln_2'), 'transformer.wpe'].sort((a, b) => causal.findIndex((m) => m.name === a) - causal.findIndex((m) => m.name === b)));
    const missing = resolveTargets(causal, lora({ target_modules: ['c_attn'], modules_to_save: ['lm_hed'] }), 'causal-lm');
    assert.deepEqual(missing.modules_to_save, []);
    assert.match(missing.warnings[0], /"lm_hed" matched no module.*lm_head/);
  });

  it('a module that is both a target and in modules_to_save is an error', () => {
    throwsStudio(() => resolveTargets(causal, lora({ target_modules: ['c_attn'], modules_to_save: ['transformer.h.2.attn.c_attn'] }), 'causal-lm'), 'modules_to_save', /transformer\.h\.2\.attn\.c_attn is both/);
    throwsStudio(() => resolveTargets(seqcls, lora({ target_modules: ['score'] }), 'seq-cls'), 'modules_to_save', /score is both/);
    // a target inside a saved container counts too
    throwsStudio(() => resolveTargets(causal, lora({ target_modules: ['c_attn'], modules_to_save: ['transformer.h.0.attn'] }), 'causal-lm'), 'modules_to_save', /transformer\.h\.0\.attn\.c_attn is both.*transformer\.h\.0\.attn/);
  });
});
