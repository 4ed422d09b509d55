/// <reference types="mocha" />
/**
 * Last: no trainer process is left. While the editor runs, only the one idle trainer child may exist (not the
 * killed one, not the merge CLI); shutting the extension down (what deactivate() does) ends it. The session
 * runner then checks again after the editor itself has stopped.
 */
import * as assert from 'node:assert/strict';
import { loraContext, trainerProcesses, waitFor, revealNotifications } from './helpers';

suite('shutdown', () => {
  teardown(revealNotifications);

  test('no trainer process is left', async () => {
    const { extension, ctx } = await loraContext();
    assert.equal(ctx.runs.isActive, false, 'a run is still going');
    const before = trainerProcesses(extension.extensionPath);
    const child = ctx.client.pid;
    assert.deepEqual(before.map((p) => p.pid), child ? [child] : [], `stray trainer processes: ${JSON.stringify(before)}`);
    await ctx.shutdown();
    await waitFor('every trainer process to exit', () => trainerProcesses(extension.extensionPath).length === 0 || undefined, 15_000);
  });
});
