/// <reference types="mocha" />
/**
 * Activation and the command table: the extension activates by itself on a workspace that holds a run config,
 * and every command package.json contributes is registered (and nothing the table registers is missing there).
 */
import * as vscode from 'vscode';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fixture, loraContext, revealNotifications, waitFor } from './helpers';

suite('activation', () => {
  teardown(revealNotifications);

  test('activates on a workspace with lora-run.json and hands its context to the tests', async () => {
    const f = fixture();
    const { extension, ctx } = await loraContext();
    assert.equal(extension.isActive, true);
    assert.equal(extension.packageJSON.name, 'lora-studio');
    // the built extension: its bundle and the trainer bundles are there, not the sources
    for (const p of ['dist/extension/main.js', 'dist/trainer/main.js', 'dist/trainer/cli.js']) {
      assert.ok(fs.existsSync(path.join(extension.extensionPath, p)), `${p} is missing in ${extension.extensionPath}`);
    }
    console.log(`  extension at ${extension.extensionPath} (${vscode.env.appName}, ${vscode.env.uiKind === vscode.UIKind.Web ? 'web' : 'desktop'} UI, Node ${process.versions.node})`);
    // it found the run config by itself: lora-run.json at the root, before long.lora-run.json
    await waitFor('the run config to be found', () => ctx.store.uri, 15_000);
    assert.equal(ctx.store.uri?.fsPath, f.shortConfig);
    assert.equal(vscode.workspace.isTrusted, true, 'this session opens a trusted workspace');
  });

  test('registers every command that package.json contributes', async () => {
    const { extension } = await loraContext();
    const contributed = (extension.packageJSON.contributes.commands as Array<{ command: string }>).map((c) => c.command);
    assert.ok(contributed.length >= 13, `only ${contributed.length} commands contributed`);
    const registered = new Set(await vscode.commands.getCommands(true));
    const missing = contributed.filter((c) => !registered.has(c));
    assert.deepEqual(missing, [], `contributed but not registered: ${missing.join(', ')}`);
    // the workbench adds view commands of its own (loraStudio.modules.focus, …)
    const viewCommand = /^loraStudio\.modules\.(focus|resetViewLocation|toggleVisibility|removeView|open)$/;
    const ours = [...registered].filter((c) => c.startsWith('loraStudio.') && !viewCommand.test(c));
    const extra = ours.filter((c) => !contributed.includes(c));
    assert.deepEqual(extra, [], `registered but not in contributes.commands: ${extra.join(', ')}`);
  });

  test('the LoRA Studio views and settings are contributed', async () => {
    const { extension } = await loraContext();
    const c = extension.packageJSON.contributes;
    assert.ok(c.views.loraStudio.some((v: { id: string }) => v.id === 'loraStudio.modules'));
    const cfg = vscode.workspace.getConfiguration('loraStudio');
    assert.equal(cfg.get('backend'), 'auto');
    assert.equal(typeof cfg.get('metricsThrottleMs'), 'number');
    // the Modules view can be shown (its view container and view are known to the workbench)
    await vscode.commands.executeCommand('loraStudio.modules.focus');
  });
});
