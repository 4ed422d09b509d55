/**
 * The Modules view's pure logic over a REAL InspectResult (the trainer's inspect on a folder written by
 * writeRandomGPT2): the tree mirrors named_modules(), checkbox propagation, the attention filter, selection →
 * target_modules (list, or the active regex the trainer resolved), and the PEFT-line/warning text. What a
 * target_modules value selects is the trainer's rule: test/unit/lora/select.test.ts.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inspect } from '../../../trainer/commands/inspect';
import { LORA_DEFAULTS } from '../../../trainer/lora/config';
import { writeRandomGPT2 } from '../../../trainer/models/gpt2/random_init';
import type { InspectResult } from '../../../trainer/protocol';
import { selectTargets } from '../../../trainer/lora/select';
import {
  applyCheck, applyChecks, attentionNames, buildTree, checkState, headWarning, nodeDescription, regexFromList, shapeText, specFromSelection,
  viewText, type ActiveRegex, type ModuleTree,
} from '../../../extension/modules/treeModel';

describe('Modules tree model', () => {
  let tmp = '';
  let causal: InspectResult;
  let cls: InspectResult;
  let tree: ModuleTree;
  let clsTree: ModuleTree;

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-tree-'));
    writeRandomGPT2(path.join(tmp, 'causal'), { config: { n_layer: 2 } });
    writeRandomGPT2(path.join(tmp, 'cls'), { task: 'seq-cls', num_labels: 3, config: { n_layer: 2 } });
    causal = inspect({ modelDir: path.join(tmp, 'causal'), lora: { ...LORA_DEFAULTS, target_modules: ['c_attn'] } });
    cls = inspect({ modelDir: path.join(tmp, 'cls'), lora: { ...LORA_DEFAULTS, target_modules: ['c_attn'] } });
    tree = buildTree(causal.modules);
    clsTree = buildTree(cls.modules);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('mirrors named_modules(): transformer › h › 0 › attn › c_attn, every module once', () => {
    assert.equal(tree.root.module.type, 'GPT2LMHeadModel');
    assert.deepEqual(tree.root.children.map((c) => c.label), ['transformer', 'lm_head']);
    const path_ = ['transformer', 'h', '0', 'attn', 'c_attn'];
    let node = tree.root;
    for (const label of path_) {
      const next = node.children.find((c) => c.label === label);
      assert.ok(next, `missing ${label} under ${node.name || '(root)'}`);
      node = next;
    }
    assert.equal(node.name, 'transformer.h.0.attn.c_attn');
    assert.equal(node.module.type, 'Conv1D');
    assert.equal(node.adaptable, true);
    assert.equal(node.children.length, 0);
    // every module appears exactly once
    assert.equal(tree.byName.size, causal.modules.length);
    const walk = (n: typeof tree.root): string[] => [n.name, ...n.children.flatMap(walk)];
    assert.deepEqual(walk(tree.root), causal.modules.map((m) => m.name));
  });

  it('parameter counts add up: the root holds every parameter once', () => {
    const total = causal.modules.reduce((s, m) => s + m.params, 0);
    assert.equal(tree.root.totalParams, total);
    const cAttn = tree.byName.get('transformer.h.0.attn.c_attn')!;
    assert.equal(cAttn.totalParams, 32 * 96 + 96);
    const attn = tree.byName.get('transformer.h.0.attn')!;
    assert.equal(attn.totalParams, cAttn.totalParams + tree.byName.get('transformer.h.0.attn.c_proj')!.totalParams);
  });

  it('adaptable leaves are exactly the Linear/Conv1D modules', () => {
    const expected = causal.modules.filter((m) => m.type === 'Linear' || m.type === 'Conv1D').map((m) => m.name);
    assert.deepEqual(tree.adaptable, expected);
    assert.equal(tree.adaptable.length, 2 * 4 + 1); // c_attn, c_proj, mlp.c_fc, mlp.c_proj per block + lm_head
  });

  it('node description: type, shape in→out, parameters, and k/n on parents', () => {
    const sel = new Set(['transformer.h.0.attn.c_attn']);
    assert.equal(nodeDescription(tree.byName.get('transformer.h.0.attn.c_attn')!, sel), 'Conv1D · 32→96 · 3,168');
    assert.equal(nodeDescription(tree.byName.get('transformer.h.0.attn')!, sel), 'GPT2Attention · 4,224 · 1/2');
    assert.match(nodeDescription(tree.byName.get('lm_head')!, sel), /^Linear · 32→257 · 0 ?|^Linear · 32→257 · tied to/);
    assert.match(nodeDescription(tree.byName.get('transformer.wte')!, sel), /^Embedding · 257×32 · 8,224/);
    // norms show their one dimension, GPT-2's LayerNorm and the Llama family's RMSNorm alike
    assert.equal(shapeText({ name: 'model.norm', type: 'LlamaRMSNorm', in_features: 576, out_features: 576, params: 576, weight_keys: [] }), '[576]');
    assert.equal(shapeText(tree.byName.get('transformer.ln_f')!.module), '[32]');
  });

  it('checkbox propagation: parent checked only when all children are; checking a parent checks its leaves', () => {
    const attn = tree.byName.get('transformer.h.0.attn')!;
    const block = tree.byName.get('transformer.h.0')!;
    let sel = applyCheck(new Set(), tree.byName.get('transformer.h.0.attn.c_attn')!, true);
    assert.deepEqual(checkState(attn, sel), { checked: false, k: 1, n: 2 });
    sel = applyCheck(sel, tree.byName.get('transformer.h.0.attn.c_proj')!, true);
    assert.deepEqual(checkState(attn, sel), { checked: true, k: 2, n: 2 });
    assert.deepEqual(checkState(block, sel), { checked: false, k: 2, n: 4 });
    sel = applyCheck(sel, block, true);
    assert.deepEqual(checkState(block, sel), { checked: true, k: 4, n: 4 });
    assert.deepEqual([...sel].sort(), tree.byName.get('transformer.h.0')!.adaptableNames.slice().sort());
    sel = applyCheck(sel, tree.byName.get('transformer.h.0.mlp.c_fc')!, false);
    assert.equal(checkState(block, sel).checked, false);
    assert.equal(checkState(attn, sel).checked, true);
    // unchecking a parent clears everything under it only
    sel = applyChecks(sel, [[tree.byName.get('transformer.h.1.attn.c_attn')!, true], [block, false]]);
    assert.deepEqual([...sel], ['transformer.h.1.attn.c_attn']);
    // a module with no adaptable descendant never reads as checked
    assert.deepEqual(checkState(tree.byName.get('transformer.ln_f')!, sel), { checked: false, k: 0, n: 0 });
  });

  it('attention filter: the Linear/Conv1D modules of the attention blocks', () => {
    assert.deepEqual(attentionNames(tree), ['transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj', 'transformer.h.1.attn.c_attn', 'transformer.h.1.attn.c_proj']);
  });

  it('selection → target_modules: the regex while it still describes the selection, else full names in order', () => {
    const pattern = '.*\\.attn\\.c_attn';
    const s = selectTargets(causal.modules, pattern);
    const regex: ActiveRegex = { pattern: s.regex!, selected: s.selected };
    const sel = new Set(s.selected);
    assert.equal(specFromSelection(tree, sel, regex), pattern);
    const more = applyCheck(sel, tree.byName.get('lm_head')!, true);
    assert.deepEqual(specFromSelection(tree, more, regex), ['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_attn', 'lm_head']);
    assert.deepEqual(specFromSelection(tree, new Set(['transformer.h.1.mlp.c_fc', 'transformer.h.0.attn.c_attn'])), ['transformer.h.0.attn.c_attn', 'transformer.h.1.mlp.c_fc']);
    assert.deepEqual(specFromSelection(tree, new Set()), []);
  });

  it('regexFromList matches exactly the listed names, and the trainer resolves the spec to the same targets', () => {
    const lists = [
      ['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_attn'],
      ['transformer.h.0.attn.c_attn', 'transformer.h.1.mlp.c_proj', 'lm_head'],
      ['transformer.h.1.mlp.c_fc'],
    ];
    for (const list of lists) {
      const re = regexFromList(list);
      assert.deepEqual(selectTargets(causal.modules, re).selected, list, re);
      const viaTrainer = inspect({ modelDir: path.join(tmp, 'causal'), lora: { ...LORA_DEFAULTS, target_modules: re } });
      assert.deepEqual(viaTrainer.targets.map((t) => t.name), list);
      const viaList = inspect({ modelDir: path.join(tmp, 'causal'), lora: { ...LORA_DEFAULTS, target_modules: specFromSelection(tree, new Set(list)) } });
      assert.deepEqual(viaList.targets.map((t) => t.name), list);
    }
    assert.equal(regexFromList(['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_attn']), 'transformer\\.h\\.(?:0|1)\\.attn\\.c_attn');
  });

  it('view text: the PEFT line from inspect, k/n and trainable% in the description', () => {
    const sel = new Set(causal.targets.map((t) => t.name));
    const t = viewText({ tree, selected: sel, task: 'causal-lm', inspect: causal });
    assert.equal(t.message.split('\n')[0], causal.line);
    assert.match(t.message, /^trainable params: [\d,]+ \|\| all params: [\d,]+ \|\| trainable%: \d+\.\d{4}/);
    assert.equal(t.description, `2/9 targets · ${/trainable%: ([\d.]+)/.exec(causal.line)![1]}%`);
    // PEFT's forced fan_in_fan_out note for Conv1D is not shown in the view
    assert.ok(!t.warnings.some((w) => w.startsWith('fan_in_fan_out')));
  });

  it('view text: empty selection, pattern matching nothing, pending and failed inspect', () => {
    assert.match(viewText({ tree, selected: new Set(), task: 'causal-lm' }).message, /^No LoRA target selected/);
    const empty = viewText({ tree, selected: new Set(), task: 'causal-lm', emptyRegex: 'c_attn' });
    assert.match(empty.warnings[0], /"c_attn" matches no Linear\/Conv1D module/);
    const unmatched = viewText({ tree, selected: new Set(['lm_head']), task: 'causal-lm', unmatched: ['c_atn'] });
    assert.ok(unmatched.warnings.some((w) => w.includes('"c_atn" matches no module')));
    assert.match(viewText({ tree, selected: new Set(['lm_head']), task: 'causal-lm' }).message, /^Computing/);
    assert.match(viewText({ tree, selected: new Set(['lm_head']), task: 'causal-lm', inspectError: 'boom' }).message, /^PEFT line unavailable: boom/);
    assert.match(viewText({ tree, selected: new Set(['lm_head']), task: 'causal-lm', noRunConfig: true }).message, /New Run Config/);
  });

  it('seq-cls: warns when the head `score` is neither trained nor saved, not when PEFT adds it', () => {
    const sel = new Set(['transformer.h.0.attn.c_attn']);
    assert.equal(headWarning('seq-cls', null, sel), undefined); // PEFT's default adds score
    assert.equal(headWarning('seq-cls', ['score'], sel), undefined);
    assert.equal(headWarning('causal-lm', [], sel), undefined);
    assert.equal(headWarning('seq-cls', [], new Set([...sel, 'score'])), undefined); // LoRA on the head trains it
    assert.match(headWarning('seq-cls', [], sel)!, /neither trained nor saved/);
    // with the trainer's own warning present, the view shows one warning, not two
    const r = inspect({ modelDir: path.join(tmp, 'cls'), task: 'seq-cls', lora: { ...LORA_DEFAULTS, target_modules: ['c_attn'], modules_to_save: [] }, explicitModulesToSave: true });
    assert.ok(r.warnings.some((w) => w.includes('neither trained nor saved')));
    const t = viewText({ tree: clsTree, selected: sel, task: 'seq-cls', modules_to_save: [], inspect: r });
    assert.equal(t.warnings.filter((w) => w.includes('neither trained nor saved')).length, 1);
    assert.ok(clsTree.byName.get('score')!.module.is_head);
  });
});
