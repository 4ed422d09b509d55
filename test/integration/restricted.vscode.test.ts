/// <reference types="mocha" />
/**
 * Restricted Mode (run in a session of its own, with workspace trust on and the folder not trusted): the
 * extension activates and the Modules view works, but every command that runs the trainer on workspace files
 * refuses, says why, and starts nothing.
 */
import * as vscode from 'vscode';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { allNodes, clearNotifications, expectNotification, fixture, loraContext, modulesView, trainerProcesses, waitFor, revealNotifications } from './helpers';

/** Runs a command that answers with a warning and waits for a click; closes the warning. */
async function refused(command: string, arg?: unknown): Promise<void> {
  let settled = false;
  const p = Promise.resolve(vscode.commands.executeCommand(command, arg)).finally(() => (settled = true));
  await new Promise((r) => setTimeout(r, 1500));
  while (!settled) {
    await clearNotifications();
    await new Promise((r) => setTimeout(r, 300));
  }
  await p;
}

suite('Restricted Mode', function () {
  teardown(revealNotifications);

  suiteSetup(function () {
    if (vscode.workspace.isTrusted) {
      console.log('  skipped: this workspace is trusted (the Restricted Mode session opens an untrusted one)');
      this.skip();
    }
  });

  test('the extension activates in an untrusted workspace, and the Modules view works', async () => {
    const f = fixture();
    const { ctx } = await loraContext();
    assert.equal(ctx.trusted, false);
    await vscode.commands.executeCommand('loraStudio.openModel', f.modelDir);
    assert.equal(allNodes(modulesView(ctx)).length, 33);
  });

  test('Start, Resume, Merge, Evaluate and Try are refused with the reason, and nothing runs', async () => {
    const f = fixture();
    const { ctx } = await loraContext();
    const out = path.join(f.workspace, 'runs', 'short');
    for (const [command, what] of [['loraStudio.startTraining', 'Training'], ['loraStudio.resumeTraining', 'Resuming training']] as const) {
      await refused(command);
      assert.equal(ctx.runs.status().state, 'idle', `${command} started a run`);
      assert.equal(ctx.runs.isActive, false);
      expectNotification(new RegExp(`^${what} is disabled in Restricted Mode`), command);
    }
    const merged = path.join(f.workspace, 'merged');
    await refused('loraStudio.mergeAdapter', { base: f.modelDir, adapter: f.modelDir, out: merged });
    expectNotification(/^Merging is disabled in Restricted Mode/, 'loraStudio.mergeAdapter');
    await refused('loraStudio.evaluateAdapter');
    expectNotification(/^Evaluating an adapter is disabled in Restricted Mode/, 'loraStudio.evaluateAdapter');
    await refused('loraStudio.tryAdapter');
    expectNotification(/^Trying an adapter is disabled in Restricted Mode/, 'loraStudio.tryAdapter');
    // the dashboard's Start button goes to the run manager directly: it refuses too
    await ctx.runs.startTraining();
    await clearNotifications();
    assert.equal(ctx.runs.isActive, false);
    assert.ok(!fs.existsSync(out), 'a training run wrote its output folder');
    assert.ok(!fs.existsSync(merged), 'a merge wrote its output folder');
  });

  test('no trainer process is left', async () => {
    const { extension, ctx } = await loraContext();
    await ctx.shutdown();
    await waitFor('every trainer process to exit', () => trainerProcesses(extension.extensionPath).length === 0 || undefined, 15_000);
  });
});
