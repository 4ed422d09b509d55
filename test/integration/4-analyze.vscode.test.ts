/// <reference types="mocha" />
/**
 * The Analyze panel and the run comparison, on the runs 3-training.vscode.test.ts left in the fixture workspace
 * (runs/short: 8 steps, c_proj of both blocks at r=4, with eval; runs/long: stopped and resumed, no eval). The
 * commands take their answers as an argument and return the panel; the page reports what it drew
 * ("rendered"), which is what is checked here. Screenshots of both pages are the e2e suite's.
 */
import * as vscode from 'vscode';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ChartPanel } from '../../extension/analyze/panel';
import { clearNotifications, expectNotification, fixture, loraContext, revealNotifications, waitFor } from './helpers';

type Panel = ChartPanel<never>;

async function rendered(panel: Panel | undefined, what: string): Promise<Record<string, number>> {
  assert.ok(panel, `${what}: the command returned no panel`);
  return waitFor(`${what} to be drawn`, () => panel.rendered, 60_000);
}

suite('analyze and compare', () => {
  teardown(revealNotifications);

  test('Analyze Adapter shows the run\'s adapter: ‖ΔW‖_F per module, its spectrum, φ against a checkpoint, amplification', async () => {
    const f = fixture();
    await loraContext();
    const adapter = path.join(f.workspace, 'runs', 'short');
    assert.ok(fs.existsSync(path.join(adapter, 'adapter_model.safetensors')), 'the short run of 3-training left no adapter');
    const panel = (await vscode.commands.executeCommand('loraStudio.analyzeAdapter', {
      adapter, compare: path.join(adapter, 'checkpoint-4'), base: f.modelDir,
    })) as Panel | undefined;
    const drawn = await rendered(panel, 'the analysis');
    // c_proj of both blocks (attn and mlp): 4 modules, r = 4, φ 4 × 4, one amplification row each
    assert.deepEqual(drawn, { heatmap: 4, spectrum: 4, phi: 16, amplification: 4 });
    assert.equal(panel!.panel.viewType, 'loraStudio.analyze');
    assert.match(panel!.panel.title, /Analysis: short vs checkpoint-4/);
    const tab = vscode.window.tabGroups.all.flatMap((g) => g.tabs).find((t) => t.input instanceof vscode.TabInputWebview && t.input.viewType.endsWith('loraStudio.analyze'));
    assert.ok(tab, 'no Analyze tab in the editor');
  });

  test('a CLI error shows in the panel with the file it names', async () => {
    await loraContext();
    const f = fixture();
    const bad = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-bad-adapter-'));
    try {
      fs.copyFileSync(path.join(f.workspace, 'runs', 'short', 'adapter_config.json'), path.join(bad, 'adapter_config.json'));
      fs.writeFileSync(path.join(bad, 'adapter_model.safetensors'), Buffer.from([1, 2, 3]));
      const panel = (await vscode.commands.executeCommand('loraStudio.analyzeAdapter', { adapter: bad })) as Panel | undefined;
      assert.deepEqual(await rendered(panel, 'the error'), { error: 1 });
      expectNotification(/Analyzing lora-bad-adapter-.*adapter_model\.safetensors/, 'the CLI error of a broken adapter');
      await clearNotifications();
    } finally {
      fs.rmSync(bad, { recursive: true, force: true });
    }
  });

  test('Compare Runs overlays two runs and lists what differs in their run configs', async () => {
    const f = fixture();
    await loraContext();
    const runs = [path.join(f.workspace, 'runs', 'short'), path.join(f.workspace, 'runs', 'long')];
    const panel = (await vscode.commands.executeCommand('loraStudio.compareRuns', { runs })) as Panel | undefined;
    const drawn = await rendered(panel, 'the comparison');
    assert.equal(drawn.runs, 2);
    // train loss, and the short run's eval loss and perplexity (the long run has no eval)
    assert.equal(drawn.charts, 3);
    assert.ok(drawn.diff >= 3, `only ${drawn.diff} differing fields (output_dir, num_train_epochs, learning_rate, … differ)`);
    assert.equal(panel!.panel.viewType, 'loraStudio.compareRuns');
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  });
});
