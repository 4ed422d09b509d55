/// <reference types="mocha" />
/**
 * The Modules view: opening the tiny model lists its modules as PyTorch's named_modules() names them; checking
 * boxes changes the PEFT line and lora.target_modules of the run config; editing the run config changes the tree.
 *
 * The tiny model (test/vscode/fixture.ts): GPT-2, vocab 257, n_positions 64, n_embd 32, 2 layers, lm_head tied
 * to wte: 35,744 parameters. LoRA r=4 adds r·(in+out) per module: c_attn (32→96) 512, attn.c_proj (32→32) 256,
 * c_fc (32→128) 640, mlp.c_proj (128→32) 640.
 */
import * as vscode from 'vscode';
import * as assert from 'node:assert/strict';
import { allNodes, fixture, loraContext, modulesView, readJson, waitFor, revealNotifications } from './helpers';

/** GPT2LMHeadModel's named_modules() for n_layer=2, without the root "". */
const EXPECTED_NAMES = [
  'transformer', 'transformer.wte', 'transformer.wpe', 'transformer.drop', 'transformer.h',
  ...[0, 1].flatMap((i) => [
    `transformer.h.${i}`, `transformer.h.${i}.ln_1`, `transformer.h.${i}.attn`, `transformer.h.${i}.attn.c_attn`,
    `transformer.h.${i}.attn.c_proj`, `transformer.h.${i}.attn.attn_dropout`, `transformer.h.${i}.attn.resid_dropout`,
    `transformer.h.${i}.ln_2`, `transformer.h.${i}.mlp`, `transformer.h.${i}.mlp.c_fc`, `transformer.h.${i}.mlp.c_proj`,
    `transformer.h.${i}.mlp.act`, `transformer.h.${i}.mlp.dropout`,
  ]),
  'transformer.ln_f', 'lm_head',
];

const BASE_PARAMS = 35_744;

/** PEFT's line for `trainable` LoRA parameters on the tiny model. */
function peftLine(trainable: number): string {
  const all = BASE_PARAMS + trainable;
  return `trainable params: ${trainable.toLocaleString('en-US')} || all params: ${all.toLocaleString('en-US')} || trainable%: ${((100 * trainable) / all).toFixed(4)}`;
}

function targetsInConfig(file: string): unknown {
  return (readJson(file).lora as Record<string, unknown>).target_modules;
}

const sorted = (v: unknown) => (Array.isArray(v) ? [...v].sort() : v);

suite('Modules view', () => {
  teardown(revealNotifications);

  test('Open Model fills the tree with the model\'s module names', async () => {
    const f = fixture();
    const { ctx } = await loraContext();
    await vscode.commands.executeCommand('workbench.view.extension.loraStudio');
    await vscode.commands.executeCommand('loraStudio.openModel', f.modelDir);
    assert.equal(ctx.modules.openModel?.ref, f.modelDir);
    const view = modulesView(ctx);
    const nodes = allNodes(view);
    assert.deepEqual(nodes.map((n) => n.name), EXPECTED_NAMES);
    assert.deepEqual(view.roots().map((n) => n.label), ['transformer', 'lm_head']);

    const byName = new Map(nodes.map((n) => [n.name, n]));
    const cAttn = view.item(byName.get('transformer.h.0.attn.c_attn')!);
    assert.equal(cAttn.label, 'c_attn');
    assert.match(String(cAttn.description), /Conv1D/);
    assert.match(String(cAttn.description), /3,168/, 'c_attn holds 32·96 + 96 parameters');
    // the run config targets c_attn: checked; c_proj: not; LayerNorm has no checkbox
    assert.equal(cAttn.checkboxState && typeof cAttn.checkboxState === 'object' ? cAttn.checkboxState.state : cAttn.checkboxState, vscode.TreeItemCheckboxState.Checked);
    const cProj = view.item(byName.get('transformer.h.0.attn.c_proj')!);
    assert.equal(typeof cProj.checkboxState === 'object' ? cProj.checkboxState.state : cProj.checkboxState, vscode.TreeItemCheckboxState.Unchecked);
    assert.equal(view.item(byName.get('transformer.h.0.ln_1')!).checkboxState, undefined);
    // a parent with some of its modules checked is not checked
    const attn = view.item(byName.get('transformer.h.0.attn')!);
    assert.equal(typeof attn.checkboxState === 'object' ? attn.checkboxState.state : attn.checkboxState, vscode.TreeItemCheckboxState.Unchecked);

    await waitFor('the PEFT line for c_attn', () => view.message().split('\n')[0] === peftLine(2 * 512) || undefined, 30_000);
    assert.match(view.description(), /^2\/\d+ targets/);
  });

  test('checking modules updates the PEFT line and lora.target_modules', async () => {
    const f = fixture();
    const { ctx } = await loraContext();
    const view = modulesView(ctx);
    const byName = new Map(allNodes(view).map((n) => [n.name, n]));
    view.click([byName.get('transformer.h.0.mlp.c_fc')!, byName.get('transformer.h.1.mlp.c_fc')!], true);

    const expected = ['transformer.h.0.attn.c_attn', 'transformer.h.0.mlp.c_fc', 'transformer.h.1.attn.c_attn', 'transformer.h.1.mlp.c_fc'];
    await waitFor('the PEFT line for c_attn + c_fc', () => view.message().split('\n')[0] === peftLine(2 * 512 + 2 * 640) || undefined, 30_000);
    assert.match(view.description(), /^4\/\d+ targets/);
    await waitFor('lora.target_modules in lora-run.json', () => JSON.stringify(sorted(targetsInConfig(f.shortConfig))) === JSON.stringify(expected) || undefined, 15_000);

    // unchecking a parent unchecks every module under it
    view.click([byName.get('transformer.h.1')!], false);
    await waitFor('the PEFT line without layer 1', () => view.message().split('\n')[0] === peftLine(512 + 640) || undefined, 30_000);
    await waitFor('lora.target_modules without layer 1', () =>
      JSON.stringify(sorted(targetsInConfig(f.shortConfig))) === JSON.stringify(['transformer.h.0.attn.c_attn', 'transformer.h.0.mlp.c_fc']) || undefined, 15_000);
  });

  test('editing lora.target_modules in the run config updates the tree', async () => {
    const f = fixture();
    const { ctx } = await loraContext();
    const view = modulesView(ctx);
    // the view ignores file events for a moment after its own write (its echo); a person types later than that
    await new Promise((r) => setTimeout(r, 1500));
    const doc = await vscode.workspace.openTextDocument(f.shortConfig);
    const cfg = JSON.parse(doc.getText()) as { lora: Record<string, unknown> };
    cfg.lora.target_modules = ['c_proj'];
    const edit = new vscode.WorkspaceEdit();
    edit.replace(doc.uri, new vscode.Range(doc.positionAt(0), doc.positionAt(doc.getText().length)), JSON.stringify(cfg, null, 2) + '\n');
    assert.ok(await vscode.workspace.applyEdit(edit));
    assert.ok(await doc.save());
    // c_proj matches attn.c_proj and mlp.c_proj in both layers
    await waitFor('the PEFT line for c_proj', () => view.message().split('\n')[0] === peftLine(2 * 256 + 2 * 640) || undefined, 30_000);
    const checked = allNodes(view).filter((n) => {
      const s = view.item(n).checkboxState;
      return n.adaptable && (typeof s === 'object' ? s.state : s) === vscode.TreeItemCheckboxState.Checked;
    }).map((n) => n.name);
    assert.deepEqual(checked, ['transformer.h.0.attn.c_proj', 'transformer.h.0.mlp.c_proj', 'transformer.h.1.attn.c_proj', 'transformer.h.1.mlp.c_proj']);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  });

  test('a regex filter is resolved by the trainer; a catastrophic one is stopped while the editor stays responsive', async () => {
    const f = fixture();
    const { ctx } = await loraContext();
    const view = modulesView(ctx);
    // the selection as the tree writes it (full names), to put back at the end
    const before = ctx.modules.targetSpec();
    assert.ok(Array.isArray(before) && before.length > 0, `a list selection to start from, got ${JSON.stringify(before)}`);

    assert.equal(await ctx.modules.applyFilter({ kind: 'regex', pattern: 'transformer\\.h\\.1\\.mlp\\.c_.*' }), true);
    assert.equal(ctx.modules.targetSpec(), 'transformer\\.h\\.1\\.mlp\\.c_.*');
    await waitFor('the PEFT line for layer 1\'s MLP', () => view.message().split('\n')[0] === peftLine(640 + 640) || undefined, 30_000);

    // (.*)*X backtracks for minutes on these names. The extension host never runs it: the trainer stops it after
    // its time limit and answers with an error; meanwhile the host's event loop keeps turning.
    let ticks = 0;
    const timer = setInterval(() => ticks++, 50);
    const t0 = Date.now();
    const applied = await ctx.modules.applyFilter({ kind: 'regex', pattern: '(.*)*X' });
    clearInterval(timer);
    const took = Date.now() - t0;
    assert.equal(applied, false);
    assert.ok(took < 15_000, `the refusal took ${took} ms`);
    assert.ok(ticks >= Math.floor(took / 50) / 2, `the extension host's event loop stalled: ${ticks} ticks in ${took} ms`);
    assert.equal(ctx.modules.targetSpec(), 'transformer\\.h\\.1\\.mlp\\.c_.*', 'a refused pattern leaves the selection as it was');

    assert.equal(await ctx.modules.selectSpec(before, 'the test\'s previous target_modules'), true);
    await waitFor('lora.target_modules restored', () => JSON.stringify(sorted(targetsInConfig(f.shortConfig))) === JSON.stringify(sorted(before)) || undefined, 15_000);
  });
});
