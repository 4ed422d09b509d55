/**
 * selectTargets: what a target_modules value selects for a picker (the editor's Modules view), with PEFT's rules,
 * over a REAL module table (inspect of a folder written by writeRandomGPT2). It must agree with resolveTargets
 * (which training uses) wherever resolveTargets accepts the value, and a catastrophic regex is stopped, not run.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inspect } from '../../../trainer/commands/inspect';
import type { InspectResult } from '../../../trainer/protocol';
import { LORA_DEFAULTS } from '../../../trainer/lora/config';
import { selectTargets } from '../../../trainer/lora/select';
import { GPT2_FAMILY } from '../../../trainer/models/gpt2/family';
import { LoraStudioError } from '../../../trainer/errors';
import { writeRandomGPT2 } from '../../../trainer/models/gpt2/random_init';

describe('selectTargets (the Modules view asks the trainer)', () => {
  let tmp = '';
  let causal: InspectResult;

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-select-'));
    writeRandomGPT2(path.join(tmp, 'causal'), { config: { n_layer: 2 } });
    causal = inspect({ modelDir: path.join(tmp, 'causal'), lora: { ...LORA_DEFAULTS, target_modules: ['c_attn'] } });
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('list (exact or .suffix), regex (full match), all-linear (no head), null = PEFT default c_attn', () => {
    const m = causal.modules;
    assert.deepEqual(selectTargets(m, ['c_attn']).selected, ['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_attn']);
    assert.deepEqual(selectTargets(m, null, {}, { model_type: 'gpt2', target_modules: GPT2_FAMILY.defaultTargetModules }).selected, ['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_attn']);
    assert.deepEqual(selectTargets(m, ['attn.c_proj', 'transformer.h.1.mlp.c_fc']).selected, [
      'transformer.h.0.attn.c_proj', 'transformer.h.1.attn.c_proj', 'transformer.h.1.mlp.c_fc',
    ]);
    const re = selectTargets(m, 'transformer\\.h\\.1\\..*c_proj');
    assert.equal(re.regex, 'transformer\\.h\\.1\\..*c_proj');
    assert.deepEqual(re.selected, ['transformer.h.1.attn.c_proj', 'transformer.h.1.mlp.c_proj']);
    const all = selectTargets(m, 'all-linear');
    assert.equal(all.selected.length, 8);
    assert.ok(!all.selected.includes('lm_head'));
    // a regex must match the WHOLE name, as PEFT's re.fullmatch: "c_attn" alone matches nothing
    assert.deepEqual(selectTargets(m, 'c_attn'), { selected: [], regex: 'c_attn', unmatched: ['c_attn'], not_adaptable: [] });
  });

  it('reports entries that matched nothing and matches that cannot take LoRA', () => {
    const bad = selectTargets(causal.modules, ['c_atn', 'c_fc', 'ln_1']);
    assert.deepEqual(bad.unmatched, ['c_atn']);
    assert.deepEqual(bad.not_adaptable, ['transformer.h.0.ln_1', 'transformer.h.1.ln_1']);
    const re = selectTargets(causal.modules, 'transformer\\.h\\.0\\.attn.*');
    assert.deepEqual(re.selected, ['transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj']);
    assert.ok(re.not_adaptable.includes('transformer.h.0.attn'));
    assert.ok(re.not_adaptable.includes('transformer.h.0.attn.attn_dropout'));
  });

  it("Python's spellings: (?i), (?P<name>…), \\A…\\Z; an invalid pattern is a named error", () => {
    assert.equal(selectTargets(causal.modules, '(?i)TRANSFORMER\\.H\\.0\\.ATTN\\.C_ATTN').selected.length, 1);
    assert.equal(selectTargets(causal.modules, '\\Atransformer\\.h\\.(?P<i>\\d)\\.attn\\.c_attn\\Z').selected.length, 2);
    assert.throws(() => selectTargets(causal.modules, '('), (e: unknown) => e instanceof LoraStudioError && e.field === 'target_modules' && /not a valid regular expression/.test(e.message));
  });

  it('agrees with resolveTargets (training) wherever training accepts the value', () => {
    for (const spec of [['c_attn', 'c_fc'], 'transformer\\.h\\.0\\..*c_.*', 'all-linear', '.*\\.mlp\\.c_fc'] as const) {
      const picked = selectTargets(causal.modules, spec as string | string[]).selected;
      const trained = inspect({ modelDir: path.join(tmp, 'causal'), lora: { ...LORA_DEFAULTS, target_modules: spec as string | string[] } }).targets.map((t) => t.name);
      assert.deepEqual(picked, trained, JSON.stringify(spec));
    }
  });

  it('a catastrophic regex is stopped after the time limit with a named error, not run to the end', () => {
    const t0 = Date.now();
    assert.throws(() => selectTargets(causal.modules, '(.*)*X'), (e: unknown) => e instanceof LoraStudioError && e.field === 'target_modules' && /backtracks catastrophically/.test(e.message));
    // the limit is 2 s; without it this pattern runs for minutes on these names
    assert.ok(Date.now() - t0 < 6000, `took ${Date.now() - t0} ms`);
  });
});
