/**
 * End to end, as a person uses it: the real workbench (code-server) in Chromium, the extension installed from
 * the .vsix, the real trainer. Ten steps, in order; a step fails the test and the later ones are skipped.
 *
 *  1. open the LoRA Studio sidebar;          5. see the loss chart gain points and the step counter advance;
 *  2. open the tiny model;                   6. stop;
 *  3. tick two modules, see the PEFT line;   7. run "Merge Adapter into Model…" from the command palette;
 *  4. open the dashboard, press Start;       8. check that the output folder exists.
 *
 * Then 9. "Analyze Adapter…" on the run's checkpoint (and Save PNG of its heatmap), 10. "Compare Runs…" of this run
 * and a second one the CLI trains beside the editor.
 *
 * Screenshots of the sidebar, the dashboard, the Analyze panel and the comparison, dark theme then light, go to
 * test-results/e2e/. Any error in a webview's console (the dashboard's, the Analyze or Compare page's, a CSP
 * violation) fails the run. Run it with `npm run test:e2e`.
 */
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BrowserContext, ConsoleMessage, Frame, Locator, Page } from 'playwright-core';
import { writeFixture, type Fixture } from '../vscode/fixture';
import { CodeServer, REPO, RESULTS, Scratch, closeSession, launchBrowser, tools } from '../vscode/session';
import { frameWith, isWebviewUrl, recordNotifications, watchWebviewErrors, workbenchReady } from '../vscode/workbench';

const OUT = path.join(RESULTS, 'e2e');
const EXTENSION_ID = 'lora-studio.lora-studio';
const DARK = 'Default Dark Modern';
const LIGHT = 'Default Light Modern';

/** PEFT's line for the tiny model (35,744 parameters) with `trainable` LoRA parameters (see 2-modules.vscode.test.ts). */
function peftLine(trainable: number): string {
  const all = 35_744 + trainable;
  return `trainable params: ${trainable.toLocaleString('en-US')} || all params: ${all.toLocaleString('en-US')} || trainable%: ${((100 * trainable) / all).toFixed(4)}`;
}

let scratch: Scratch;
let fx: Fixture;
let server: CodeServer;
let context: BrowserContext;
let page: Page;
let notes: ReturnType<typeof recordNotifications>;
let blocked: string[] = [];
const webviewErrors: string[] = [];
const consoleLog: string[] = [];
let broken: string | undefined;
let dashboard: Frame | undefined;

const t0 = Date.now();
const say = (s: string) => console.log(`[e2e ${((Date.now() - t0) / 1000).toFixed(1)}s] ${s}`);

async function shot(name: string, what?: Locator): Promise<void> {
  const file = path.join(OUT, `${name}.png`);
  if (what) await what.screenshot({ path: file });
  else await page.screenshot({ path: file });
  say(`screenshot ${path.relative(REPO, file)}`);
}

/** One step: skipped once an earlier step failed; a failure leaves a screenshot. */
function step(name: string, body: () => Promise<void>): void {
  test(name, async (t) => {
    if (broken) {
      t.skip(`an earlier step failed: ${broken}`);
      return;
    }
    try {
      await body();
      assert.deepEqual(webviewErrors, [], 'errors in the webview console');
    } catch (e) {
      broken = name;
      await shot(`failed-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`).catch(() => undefined);
      throw e;
    }
  });
}

// ---- workbench helpers ----

const sidebar = () => page.locator('.part.sidebar');
const modulesTree = () => sidebar().locator('.customview-tree');
const quickInput = () => page.locator('.quick-input-widget');
const quickInputBox = () => page.locator('.quick-input-widget .quick-input-box input');

/** Runs a command from the palette (F1). The palette's list is built when it opens, so it retries. */
async function palette(title: string): Promise<void> {
  const exact = new RegExp(`^${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  const row = page.locator('.quick-input-list .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: exact }) }).first();
  for (let attempt = 1; ; attempt++) {
    // a quick input that is still closing (the previous command's) would take the F1 and then vanish under the
    // fill, leaving it inert: wait until it is gone
    await quickInput().waitFor({ state: 'hidden', timeout: 5_000 }).catch(() => undefined);
    await page.keyboard.press('F1');
    try {
      await quickInputBox().waitFor({ state: 'visible', timeout: 10_000 });
      await quickInputBox().fill(`>${title}`, { timeout: 5_000 });
      await row.waitFor({ timeout: 5_000 });
      await row.click();
      return;
    } catch (e) {
      if (attempt >= 5) throw e;
      await page.keyboard.press('Escape');
      await page.waitForTimeout(1_000);
    }
  }
}

/** Picks the quick-pick row that contains `text`. */
async function pick(text: string | RegExp): Promise<void> {
  const row = page.locator('.quick-input-widget .quick-input-list .monaco-list-row', { hasText: text }).first();
  await row.waitFor({ timeout: 15_000 });
  await row.click();
}

/**
 * Answers the workbench's own file dialog (VS Code for the web's "simple file dialog": a quick input holding a
 * path) with `target` and presses its OK button, which carries the dialog's label (`okLabel`). A folder is typed
 * with a trailing slash, so that the dialog first moves into it.
 */
async function fileDialog(target: string, okLabel: string): Promise<void> {
  await quickInputBox().waitFor({ state: 'visible', timeout: 15_000 });
  // the dialog fills in its start folder a moment after it opens: type once that has happened
  await expectSoon('the dialog\'s start folder', async () => (await quickInputBox().inputValue()).startsWith('/'), 15_000);
  await expectSoon(`the dialog to hold ${target}`, async () => {
    await quickInputBox().fill(target);
    await page.waitForTimeout(300);
    return (await quickInputBox().inputValue()) === target;
  }, 15_000);
  // (the web's save dialog labels it plain "OK")
  const ok = quickInput().getByRole('button', { name: new RegExp(`^(${okLabel}|OK)$`) });
  await ok.waitFor({ timeout: 10_000 });
  await page.waitForTimeout(700); // the dialog reads the folder as the path is typed
  const title = await quickInput().locator('.quick-input-title').innerText();
  await ok.click();
  // done when the dialog closes, or when the next one (another title) takes its place
  await expectSoon(`the dialog "${title}" to close`, async () =>
    !(await quickInput().isVisible()) || (await quickInput().locator('.quick-input-title').innerText()) !== title, 15_000);
}

interface Row {
  index: number;
  level: number;
  name: string;
  label: string;
  expanded: string | null;
  checked: string | null;
}

/** The Modules tree's rendered rows, with full module names rebuilt from their levels. */
async function treeRows(): Promise<Row[]> {
  const raw = await modulesTree().locator('.monaco-list-row[aria-level]').evaluateAll((rows) => rows.map((r) => ({
    index: Number(r.getAttribute('data-index')),
    level: Number(r.getAttribute('aria-level')),
    label: (r.querySelector('.label-name')?.textContent ?? '').trim(),
    expanded: r.getAttribute('aria-expanded'),
    checked: r.querySelector('.custom-view-tree-node-item-checkbox')?.getAttribute('aria-checked') ?? null,
  })));
  raw.sort((a, b) => a.index - b.index);
  const stack: string[] = [];
  return raw.map((r) => {
    stack.length = r.level - 1;
    stack.push(r.label);
    return { ...r, name: stack.join('.') };
  });
}

async function row(name: string): Promise<{ row: Row; el: Locator }> {
  let found: Row | undefined;
  await expectSoon(`tree row ${name}`, async () => (found = (await treeRows()).find((r) => r.name === name)) !== undefined);
  return { row: found!, el: modulesTree().locator(`.monaco-list-row[data-index="${found!.index}"]`) };
}

async function expand(name: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const r = await row(name);
    if (r.row.expanded === 'true') return;
    // a click on the twistie; then, as a person would when that did not take, select the row and press →
    if (attempt === 1) await r.el.locator('.monaco-tl-twistie').click();
    else {
      await r.el.locator('.label-name').click();
      await page.keyboard.press('ArrowRight');
    }
    try {
      await expectSoon(`${name} to expand`, async () => (await row(name)).row.expanded === 'true', 3_000);
      return;
    } catch (e) {
      if (attempt >= 4) throw e;
    }
  }
}

async function expectSoon(what: string, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await page.waitForTimeout(200);
  }
}

/** The text of the Modules view's message (the PEFT line and warnings). */
const viewMessage = () => sidebar().locator('.tree-explorer-viewlet-tree-view .message, .customview-tree .message').first().innerText().catch(() => '');

/** The step number at the right end of the train-loss chart (uPlot's legend, with the cursor there). */
async function lastPlottedStep(frame: Frame): Promise<number> {
  const over = frame.locator('.chart', { hasText: 'Train loss' }).locator('.u-over');
  const box = await over.boundingBox();
  if (!box) return NaN;
  await over.hover({ position: { x: box.width - 2, y: box.height / 2 } });
  const v = await frame.locator('.chart', { hasText: 'Train loss' }).locator('.u-legend .u-series').first().locator('.u-value').innerText();
  return Number(v.replace(/,/g, ''));
}

/** Picks a colour theme with "Preferences: Color Theme", as a person does. */
/** Dismisses the notification toasts, so that they do not cover a screenshot (the recorder has seen them). */
async function clearNotifications(): Promise<void> {
  await palette('Notifications: Clear All Notifications');
  await page.locator('.notification-toast').first().waitFor({ state: 'hidden', timeout: 5_000 }).catch(() => undefined);
}

async function setTheme(theme: string): Promise<void> {
  await palette('Preferences: Color Theme');
  const label = theme.replace(/^Default /, '');
  await expectSoon('the theme picker', async () => /theme/i.test((await quickInputBox().getAttribute('placeholder')) ?? '') && (await quickInputBox().isEditable()), 15_000);
  await quickInputBox().fill(label);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: label }).first().waitFor({ timeout: 10_000 });
  await page.keyboard.press('Enter');
  const cls = theme === LIGHT ? 'vs' : 'vs-dark';
  await page.waitForFunction((c) => document.querySelector('.monaco-workbench')?.classList.contains(c), cls, { timeout: 30_000 });
  await page.waitForTimeout(1_500); // the webview gets the new colours, and the charts redraw
}

// ---- the session ----

before(async () => {
  fs.rmSync(OUT, { recursive: true, force: true });
  fs.mkdirSync(OUT, { recursive: true });
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { name: string; version: string };
  const vsix = path.join(REPO, `${pkg.name}-${pkg.version}.vsix`);
  assert.ok(fs.existsSync(vsix), `${vsix} is missing: run \`npm run package\` (npm run test:e2e does)`);
  const t = tools();
  scratch = new Scratch('lora-e2e-');
  fx = writeFixture(scratch.path('workspace'), { e2e: true });
  server = await CodeServer.start(t, scratch, 'e2e', { trust: true, vsix, settings: { 'workbench.colorTheme': DARK } });
  server.installedExtension(EXTENSION_ID);
  say(`code-server on ${server.origin} (pid ${server.pid}), ${path.basename(vsix)} installed; workspace ${fx.workspace}`);
  const b = await launchBrowser(t, scratch, { viewport: { width: 1600, height: 1000 } });
  ({ context, page, blocked } = b);
  // errors of the dashboard's frames, reported with their frame; and any console error whose source is a webview's
  await watchWebviewErrors(context, (line) => webviewErrors.push(line));
  page.on('console', (m: ConsoleMessage) => {
    const where = m.location()?.url ?? '';
    const line = `[${m.type()}] ${m.text()} (${where})`;
    consoleLog.push(line);
    if (m.type() === 'error' && isWebviewUrl(where) && !webviewErrors.some((e) => e.includes(m.text()))) webviewErrors.push(line);
  });
  page.on('pageerror', (e) => consoleLog.push(`[pageerror] ${e.message}`));
  notes = recordNotifications(page);
  await page.goto(server.url(fx.workspace));
  await workbenchReady(page);
  say('workbench up');
});

after(async () => {
  const seen = (await notes?.stop()) ?? [];
  fs.writeFileSync(path.join(OUT, 'notifications.json'), JSON.stringify(seen, null, 2) + '\n');
  fs.writeFileSync(path.join(OUT, 'console.log'), consoleLog.join('\n') + '\n');
  if (server) fs.copyFileSync(server.logFile, path.join(OUT, 'code-server.log'));
  if (webviewErrors.length) console.log(`webview console errors:\n  ${webviewErrors.join('\n  ')}`);
  if (blocked.length) say(`refused ${blocked.length} request(s) to non-loopback hosts: ${[...new Set(blocked)].join(', ')}`);
  const left = scratch ? await closeSession({ browser: context, server }, scratch) : { trainers: [], others: [] };
  if (left.others.length) say(`stopped ${left.others.length} leftover process(es) by PID`);
  if (!broken && webviewErrors.length === 0) scratch?.remove();
  else if (scratch) say(`kept the scratch folder for a look: ${scratch.root}`);
  assert.deepEqual(left.trainers.map((p) => p.cmd), [], 'trainer processes outlived the editor');
});

// ---- the steps ----

step('1. open the LoRA Studio sidebar', async () => {
  const icon = page.locator('.activitybar [aria-label^="LoRA Studio"]').first();
  await icon.waitFor({ timeout: 60_000 });
  await icon.click();
  await sidebar().locator('.title-label', { hasText: 'LoRA Studio' }).waitFor({ timeout: 30_000 });
  // no model yet: the welcome view offers Open Model…
  await sidebar().getByRole('button', { name: 'Open Model…' }).waitFor({ timeout: 30_000 });
});

step('2. open the tiny model', async () => {
  await sidebar().getByRole('button', { name: 'Open Model…' }).click();
  await pick('Choose a model folder');
  await fileDialog(`${fx.modelDir}/`, 'Open Model');
  await (await row('transformer.h')).el.waitFor();
  await (await row('lm_head')).el.waitFor();
  // the run config follows: it now names the model, and the view shows PEFT's line for its default targets (c_attn)
  await expectSoon('"model" in lora-run.json', async () => {
    const model = JSON.parse(fs.readFileSync(fx.shortConfig, 'utf8')).model;
    return typeof model === 'string' && path.resolve(fx.workspace, model) === fx.modelDir;
  });
  await expectSoon('the PEFT line for c_attn', async () => (await viewMessage()).includes(peftLine(2 * 512)));
});

step('3. tick two modules and see the trainable-parameter line change', async () => {
  for (const layer of ['transformer.h', 'transformer.h.0', 'transformer.h.0.mlp', 'transformer.h.1', 'transformer.h.1.mlp']) await expand(layer);
  for (const [i, name] of ['transformer.h.0.mlp.c_fc', 'transformer.h.1.mlp.c_fc'].entries()) {
    const r = await row(name);
    assert.equal(r.row.checked, 'false');
    await r.el.locator('.custom-view-tree-node-item-checkbox').click();
    await expectSoon(`${name} checked`, async () => (await row(name)).row.checked === 'true');
    // the tick's round trip (the trainer's select, lora-run.json written, the tree refreshed) ends before the next
    // click: a click during the refresh can land on a row being replaced and be lost
    await expectSoon(`the PEFT line with ${i + 1} c_fc`, async () => (await viewMessage()).includes(peftLine(2 * 512 + (i + 1) * 640)), 30_000);
    await expectSoon(`${name} in lora-run.json`, async () => (JSON.parse(fs.readFileSync(fx.shortConfig, 'utf8')).lora.target_modules as string[]).includes(name));
  }
  await expectSoon('the PEFT line for c_attn + c_fc', async () => (await viewMessage()).includes(peftLine(2 * 512 + 2 * 640)), 30_000);
  await expectSoon('lora.target_modules in lora-run.json', async () => {
    const t = JSON.parse(fs.readFileSync(fx.shortConfig, 'utf8')).lora.target_modules as string[];
    return Array.isArray(t) && t.length === 4 && t.includes('transformer.h.1.mlp.c_fc');
  });
  say(`PEFT line: ${(await viewMessage()).split('\n')[0]}`);
  await shot('sidebar-dark', sidebar());
});

step('4. open the dashboard and press Start', async () => {
  await palette('LoRA: Show Dashboard');
  dashboard = await frameWith(page, 'vscode-button', 60_000);
  // the console watch sees this frame: a probe error logged in it must arrive (then it is set aside)
  await dashboard.evaluate(() => console.error('lora-e2e: console probe'));
  await expectSoon('the probe error from the webview console', async () => webviewErrors.some((e) => e.includes('lora-e2e: console probe')), 10_000);
  webviewErrors.splice(0, webviewErrors.length, ...webviewErrors.filter((e) => !e.includes('lora-e2e: console probe')));
  // enabled once the host has sent the run's status (the run config exists, nothing runs)
  const start = dashboard.locator('vscode-button:not([disabled])', { hasText: 'Start' });
  await start.waitFor({ timeout: 30_000 });
  await start.click();
  await dashboard.locator('.progress-text', { hasText: /^step \d+ \/ 8000/ }).waitFor({ timeout: 60_000 });
});

step('5. the loss chart gains points and the step counter advances', async () => {
  const f = dashboard!;
  const stepNow = async () => Number(/^step (\d+)/.exec(await f.locator('.progress-text').innerText())?.[1] ?? NaN);
  await f.locator('.chart', { hasText: 'Train loss' }).locator('.chart-empty').waitFor({ state: 'hidden', timeout: 30_000 });
  const s1 = await stepNow();
  const p1 = await lastPlottedStep(f);
  await page.waitForTimeout(2_500);
  const s2 = await stepNow();
  const p2 = await lastPlottedStep(f);
  say(`step counter ${s1} → ${s2}; last plotted step ${p1} → ${p2}`);
  assert.ok(s2 > s1, `the step counter did not advance (${s1} → ${s2})`);
  assert.ok(p1 >= 1 && p2 > p1, `the loss chart did not gain points (last plotted step ${p1} → ${p2})`);
  assert.equal((await f.locator('.backend').innerText()).trim(), 'WASM');
  // the smoothing slider, at TensorBoard's default unless the webview state kept another value
  assert.equal(await f.locator('#smoothing').inputValue(), '0.6');
  // no eval in this run: no eval charts, not blank panels
  assert.equal(await f.locator('.chart:not([hidden])', { hasText: 'Eval loss' }).count(), 0);
  await f.locator('.chart', { hasText: 'Gradient norm' }).waitFor({ timeout: 10_000 });
  assert.match(await f.locator('.peft').innerText(), new RegExp(peftLine(2 * 512 + 2 * 640).replace(/[|.]/g, '\\$&')));
  await page.mouse.move(0, 0);
  await clearNotifications();
  await shot('dashboard-dark', page.locator('.part.editor'));
  await shot('workbench-training-dark');
});

step('6. stop', async () => {
  const f = dashboard!;
  await f.locator('vscode-button:not([disabled])', { hasText: 'Stop' }).click();
  await f.locator('.outcome', { hasText: /^Stopped at step \d+/ }).waitFor({ timeout: 60_000 });
  const stoppedAt = Number(/Stopped at step (\d+)/.exec(await f.locator('.outcome').innerText())![1]);
  assert.ok(fs.existsSync(path.join(fx.workspace, 'runs', 'e2e', `checkpoint-${stoppedAt}`, 'adapter_model.safetensors')), `no checkpoint-${stoppedAt}`);
  say(`stopped at step ${stoppedAt}`);
  // the end-of-run notification (with its Analyze/Save buttons) arrives just after the dashboard's outcome; let it
  // arrive and clear it, so that it cannot land while the next step's quick pick is open
  await page.locator('.notification-toast', { hasText: /Training stopped at step \d+/ }).first().waitFor({ timeout: 15_000 });
  await clearNotifications();
});

step('7. Merge Adapter into Model… from the command palette', async () => {
  const checkpoint = fs.readdirSync(path.join(fx.workspace, 'runs', 'e2e')).filter((d) => d.startsWith('checkpoint-')).sort().at(-1)!;
  await palette('LoRA: Merge Adapter into Model…');
  await pick(/the open model/);
  // no finished adapter yet (the run was stopped): the adapter folder is chosen in the dialog
  await fileDialog(`${path.join(fx.workspace, 'runs', 'e2e', checkpoint)}/`, 'Use Adapter');
  // the output: the dialog proposes <model>-merged beside the model
  await quickInputBox().waitFor({ state: 'visible', timeout: 15_000 });
  assert.equal(await quickInputBox().inputValue(), path.join(fx.workspace, 'model-merged'));
  await fileDialog(path.join(fx.workspace, 'model-merged'), 'Create Merged Model');
  await expectSoon('the merge notification', async () => notes.seen.some((s) => /Merged model written to/.test(s)), 60_000);
  // the merge's progress notification ("Merging …" with Cancel) is gone by the time its result shows
  assert.equal(await page.locator('.notifications-toasts .notification-toast', { hasText: /^Merging / }).count(), 0, 'the merge progress notification is still up');
});

step('8. the output folder exists', async () => {
  const out = path.join(fx.workspace, 'model-merged');
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) assert.ok(fs.existsSync(path.join(out, f)), `${f} is missing in ${out}`);
  assert.ok(fs.existsSync(path.join(fx.modelDir, 'model.safetensors')));
  await shot('workbench-merged-dark');
});

/** The step's adapter checkpoint, as the run left it (the run was stopped: no final adapter in output_dir). */
const e2eCheckpoint = () => fs.readdirSync(path.join(fx.workspace, 'runs', 'e2e')).filter((d) => d.startsWith('checkpoint-')).sort().at(-1)!;

step('9. Analyze Adapter… from the palette, and Save PNG', async () => {
  await clearNotifications();
  await palette('LoRA: Analyze Adapter…');
  await pick(new RegExp(e2eCheckpoint()));
  await pick('None'); // no second adapter
  await pick(fx.modelDir); // the open model as the base
  const f = await frameWith(page, '.heatmap canvas', 90_000);
  await f.locator('.stats', { hasText: /stable rank/ }).waitFor({ timeout: 30_000 });
  await f.locator('table.amp tbody tr').first().waitFor({ timeout: 30_000 });
  // c_attn and c_fc of both blocks: four rows in the amplification table
  assert.equal(await f.locator('table.amp tbody tr').count(), 4);
  // hovering a cell of the heatmap shows its module and value
  const canvas = f.locator('.heatmap canvas').first();
  const box = (await canvas.boundingBox())!;
  await canvas.hover({ position: { x: Math.min(box.width - 2, 90), y: 32 } });
  await expectSoon('the hover readout', async () => /‖ΔW‖_F \d/.test(await f.locator('.readout').first().innerText()), 5_000);
  await page.mouse.move(0, 0);
  await clearNotifications();
  await shot('analyze-dark', page.locator('.part.editor'));
  // Save PNG: the host asks where, then writes the image
  const target = path.join(fx.workspace, 'delta-norm-heatmap.png');
  await f.locator('vscode-button.save').first().click();
  await quickInputBox().waitFor({ state: 'visible', timeout: 15_000 });
  await fileDialog(target, 'Save Image');
  await expectSoon(`${target} written`, async () => fs.existsSync(target), 15_000);
  const png = fs.readFileSync(target);
  assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], 'the saved file is not a PNG');
  say(`saved ${path.relative(fx.workspace, target)} (${png.length} bytes)`);
});

step('10. Compare Runs… of this run and a second one', async () => {
  // a second, short run with eval, trained by the CLI beside the editor
  const second = path.join(fx.workspace, 'second-run.json');
  fs.writeFileSync(second, JSON.stringify({
    model: './model', task: 'causal-lm', data: { train: 'train.jsonl', eval: 'eval.jsonl', max_length: 16 },
    lora: { r: 8, lora_alpha: 16, lora_dropout: 0, target_modules: ['c_attn'] },
    training: {
      output_dir: 'runs/e2e-b', num_train_epochs: 3, per_device_train_batch_size: 4, learning_rate: 5e-3, logging_steps: 1,
      eval_strategy: 'epoch', save_strategy: 'epoch', seed: 7, backend: 'wasm',
    },
  }, null, 2) + '\n');
  execFileSync(process.execPath, [path.join(REPO, 'bin', 'lora-studio.js'), 'train', '--config', second], { cwd: fx.workspace, stdio: 'ignore', timeout: 120_000 });
  assert.ok(fs.existsSync(path.join(fx.workspace, 'runs', 'e2e-b', 'metrics.jsonl')));
  await palette('LoRA: Compare Runs…');
  for (const name of ['e2e', 'e2e-b']) {
    const r = page.locator('.quick-input-list .monaco-list-row').filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${name}$`) }) }).first();
    await r.waitFor({ timeout: 15_000 });
    await r.click();
  }
  await page.keyboard.press('Enter');
  const f = await frameWith(page, '.diff-table', 60_000);
  await f.locator('.chart', { hasText: 'Train loss' }).waitFor({ timeout: 30_000 });
  await f.locator('.chart', { hasText: 'Eval loss' }).waitFor({ timeout: 30_000 });
  const fields = await f.locator('.diff-table td.name').allInnerTexts();
  say(`differing fields: ${fields.join(', ')}`);
  for (const field of ['lora.r', 'training.learning_rate']) assert.ok(fields.includes(field), `${field} is not in the diff table`);
  await page.mouse.move(0, 0);
  await clearNotifications();
  await shot('compare-dark', page.locator('.part.editor'));
});

step('screenshots in the light theme', async () => {
  await setTheme(LIGHT);
  await shot('sidebar-light', sidebar());
  await palette('LoRA: Show Dashboard');
  dashboard = await frameWith(page, '.progress-text', 30_000);
  await dashboard.locator('.outcome', { hasText: /Stopped at step/ }).waitFor({ timeout: 30_000 });
  await clearNotifications();
  await page.waitForTimeout(1_000);
  await shot('dashboard-light', page.locator('.part.editor'));
  for (const [tab, selector, name] of [['Analysis:', '.heatmap canvas', 'analyze-light'], ['Compare:', '.diff-table', 'compare-light']] as const) {
    await page.locator('.tabs-container .tab', { hasText: tab }).first().click();
    const f = await frameWith(page, selector, 30_000);
    await f.locator('.uplot').first().waitFor({ timeout: 30_000 });
    await page.waitForTimeout(1_000);
    await shot(name, page.locator('.part.editor'));
  }
});
