/// <reference types="mocha" />
/**
 * A Llama-family model in the editor (issue 13's editor check): the fixture's tiny random Llama
 * (test/vscode/fixture.ts: `llama/`, `llama.lora-run.json`) opens in the Modules view with LlamaForCausalLM's
 * named_modules() names; ticking q_proj and v_proj (and unticking o_proj, the run config's starting target)
 * gives PEFT's line for them and writes them to lora.target_modules; a short run (4 steps) then trains exactly those
 * modules and writes their PEFT adapter.
 *
 * The tiny Llama: hidden 32, intermediate 48, 2 layers, 4 heads, 2 KV heads (head_dim 8), lm_head not tied, no
 * biases. LoRA r=4 adds r·(in+out) per module: q_proj (32→32) 256, v_proj (32→16) 192, o_proj (32→32) 256.
 */
import * as vscode from 'vscode';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import type { TrainEvent } from '../../trainer/protocol';
import {
  activateRunConfig, allNodes, expectNotification, fixture, loraContext, modulesView, readJson, recordEvents, revealNotifications, safetensorsHeader,
  waitFor, waitForState,
} from './helpers';

/** LlamaForCausalLM's named_modules() for num_hidden_layers=2 (transformers' modeling_llama.py), without the root "". */
const EXPECTED_NAMES = [
  'model', 'model.embed_tokens', 'model.layers',
  ...[0, 1].flatMap((i) => [
    `model.layers.${i}`, `model.layers.${i}.self_attn`, `model.layers.${i}.self_attn.q_proj`, `model.layers.${i}.self_attn.k_proj`,
    `model.layers.${i}.self_attn.v_proj`, `model.layers.${i}.self_attn.o_proj`, `model.layers.${i}.mlp`, `model.layers.${i}.mlp.gate_proj`,
    `model.layers.${i}.mlp.up_proj`, `model.layers.${i}.mlp.down_proj`, `model.layers.${i}.mlp.act_fn`, `model.layers.${i}.input_layernorm`,
    `model.layers.${i}.post_attention_layernorm`,
  ]),
  'model.norm', 'model.rotary_emb', 'lm_head',
];

const QV_TARGETS = [0, 1].flatMap((i) => [`model.layers.${i}.self_attn.q_proj`, `model.layers.${i}.self_attn.v_proj`]);
/** LoRA r=4 on q_proj and v_proj of both layers */
const QV_TRAINABLE = 2 * (4 * (32 + 32) + 4 * (32 + 16));

interface TinyLlamaConfig {
  vocab_size: number; hidden_size: number; intermediate_size: number; num_hidden_layers: number;
  num_attention_heads: number; num_key_value_heads: number; tie_word_embeddings: boolean;
}

/** The model's parameter count, from config.json by Llama's shapes (bias-free Linear layers, RMSNorm weights). */
function llamaParams(c: TinyLlamaConfig): number {
  const h = c.hidden_size;
  const kv = (h / c.num_attention_heads) * c.num_key_value_heads;
  const layer = h * h + 2 * h * kv + h * h + 3 * h * c.intermediate_size + 2 * h;
  return c.vocab_size * h + c.num_hidden_layers * layer + h + (c.tie_word_embeddings ? 0 : c.vocab_size * h);
}

function llamaPaths(): { dir: string; config: string } {
  const { workspace } = fixture();
  return { dir: path.join(workspace, 'llama'), config: path.join(workspace, 'llama.lora-run.json') };
}

/** PEFT's line for `trainable` LoRA parameters on the tiny Llama. */
function peftLine(trainable: number): string {
  const all = llamaParams(readJson(path.join(llamaPaths().dir, 'config.json')) as unknown as TinyLlamaConfig) + trainable;
  return `trainable params: ${trainable.toLocaleString('en-US')} || all params: ${all.toLocaleString('en-US')} || trainable%: ${((100 * trainable) / all).toFixed(4)}`;
}

const sorted = (v: unknown) => (Array.isArray(v) ? [...v].sort() : v);
const targetsInConfig = (file: string) => sorted((readJson(file).lora as Record<string, unknown>).target_modules);
const stateOf = (item: vscode.TreeItem) => (typeof item.checkboxState === 'object' ? item.checkboxState.state : item.checkboxState);
const of = <K extends TrainEvent['event']>(events: TrainEvent[], kind: K) => events.filter((e): e is Extract<TrainEvent, { event: K }> => e.event === kind);

/** [in, out] features of the targeted modules */
const FEATURES: Record<string, [number, number]> = { q_proj: [32, 32], v_proj: [32, 16] };

suite('a Llama model', () => {
  teardown(revealNotifications);

  test('Open Model lists a Llama\'s modules; ticking q_proj and v_proj gives PEFT\'s line and lora.target_modules', async () => {
    const llama = llamaPaths();
    const { ctx } = await loraContext();
    await vscode.commands.executeCommand('workbench.view.extension.loraStudio');
    await activateRunConfig(ctx, llama.config);
    await vscode.commands.executeCommand('loraStudio.openModel', llama.dir);
    await waitFor('the Llama to be the open model', () => ctx.modules.openModel?.ref === llama.dir || undefined, 30_000);
    assert.equal(ctx.store.uri?.fsPath, llama.config);
    assert.equal(readJson(llama.config).model, './llama', 'opening the run config\'s own model leaves "model" as it was');

    const view = modulesView(ctx);
    await waitFor('the Llama\'s module tree', () => allNodes(view).some((n) => n.name === 'model.layers.0.self_attn.q_proj') || undefined, 30_000);
    const nodes = allNodes(view);
    assert.deepEqual(nodes.map((n) => n.name), EXPECTED_NAMES);
    assert.deepEqual(view.roots().map((n) => n.label), ['model', 'lm_head']);
    const byName = new Map(nodes.map((n) => [n.name, n]));
    const node = (name: string) => {
      const n = byName.get(name);
      assert.ok(n, `no ${name} in the tree`);
      return n;
    };
    const vProj = view.item(node('model.layers.0.self_attn.v_proj'));
    assert.equal(vProj.label, 'v_proj');
    assert.match(String(vProj.description), /Linear/);
    assert.match(String(vProj.description), /512/, 'v_proj holds 32·16 parameters (2 KV heads of 8)');
    assert.equal(view.item(node('model.layers.0.input_layernorm')).checkboxState, undefined, 'RMSNorm takes no LoRA');
    // the run config starts with o_proj
    assert.equal(stateOf(view.item(node('model.layers.1.self_attn.o_proj'))), vscode.TreeItemCheckboxState.Checked);
    assert.equal(stateOf(view.item(node('model.layers.1.self_attn.q_proj'))), vscode.TreeItemCheckboxState.Unchecked);
    await waitFor('the PEFT line for o_proj', () => view.message().split('\n')[0] === peftLine(2 * 256) || undefined, 30_000);

    view.click(QV_TARGETS.map(node), true);
    view.click([0, 1].map((i) => node(`model.layers.${i}.self_attn.o_proj`)), false);
    await waitFor(`the PEFT line for q_proj + v_proj (${peftLine(QV_TRAINABLE)}; shown: ${view.message().split('\n')[0]})`,
      () => view.message().split('\n')[0] === peftLine(QV_TRAINABLE) || undefined, 30_000);
    assert.match(view.description(), /^4\/\d+ targets/);
    await waitFor('lora.target_modules in llama.lora-run.json', () => JSON.stringify(targetsInConfig(llama.config)) === JSON.stringify(QV_TARGETS) || undefined, 15_000);
    const checked = allNodes(view).filter((n) => n.adaptable && stateOf(view.item(n)) === vscode.TreeItemCheckboxState.Checked).map((n) => n.name);
    assert.deepEqual(checked, QV_TARGETS);
  });

  test('a short run on the Llama trains q_proj and v_proj and writes their PEFT adapter', async () => {
    const llama = llamaPaths();
    const { ctx } = await loraContext();
    await activateRunConfig(ctx, llama.config);
    assert.deepEqual(targetsInConfig(llama.config), QV_TARGETS, 'the previous test ticked q_proj and v_proj');
    const rec = recordEvents(ctx);
    try {
      await vscode.commands.executeCommand('loraStudio.startTraining');
      const status = await waitForState(ctx, ['done', 'failed']);
      assert.equal(status.state, 'done', `the run ended ${status.state}: ${JSON.stringify(of(rec.events, 'error'))}`);
      await waitFor('the done event', () => of(rec.events, 'done').length > 0 || undefined, 10_000);
    } finally {
      rec.dispose();
    }
    const out = path.join(fixture().workspace, 'runs', 'llama');
    const [start] = of(rec.events, 'start');
    assert.ok(start, 'no start event');
    assert.equal(start.output_dir, out);
    assert.equal(start.trainable_params, QV_TRAINABLE, 'the run trains the modules ticked in the Modules view');
    assert.equal(start.all_params, llamaParams(readJson(path.join(llama.dir, 'config.json')) as unknown as TinyLlamaConfig) + QV_TRAINABLE);
    assert.equal(start.total_steps, 4);
    const steps = of(rec.events, 'step');
    assert.deepEqual(steps.map((s) => s.step), [1, 2, 3, 4]);
    for (const s of steps) assert.ok(Number.isFinite(s.loss) && s.loss > 0, `bad step event ${JSON.stringify(s)}`);
    const evals = of(rec.events, 'eval');
    assert.equal(evals.length, 1);
    assert.ok(Number.isFinite(evals[0].metrics.eval_loss), `bad eval event ${JSON.stringify(evals[0])}`);
    assert.equal(of(rec.events, 'done')[0].global_step, 4);

    const cfg = readJson(path.join(out, 'adapter_config.json'));
    assert.equal(cfg.peft_type, 'LORA');
    assert.equal(cfg.task_type, 'CAUSAL_LM');
    assert.equal(cfg.r, 4);
    assert.equal(cfg.fan_in_fan_out, false, 'Llama\'s modules are nn.Linear');
    assert.deepEqual(sorted(cfg.target_modules), QV_TARGETS);
    const header = safetensorsHeader(path.join(out, 'adapter_model.safetensors'));
    const keys = Object.keys(header).filter((k) => k !== '__metadata__').sort();
    assert.deepEqual(keys, QV_TARGETS.flatMap((m) => [`base_model.model.${m}.lora_A.weight`, `base_model.model.${m}.lora_B.weight`]).sort());
    for (const m of QV_TARGETS) {
      const [inF, outF] = FEATURES[m.split('.').at(-1)!];
      assert.deepEqual(header[`base_model.model.${m}.lora_A.weight`].shape, [4, inF]);
      assert.deepEqual(header[`base_model.model.${m}.lora_B.weight`].shape, [outF, 4]);
    }
    expectNotification(/Training finished after 4 steps/, 'the end of the Llama run');
  });
});
