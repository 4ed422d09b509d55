/**
 * Runs extension tests (a VS Code `extensionTestsPath`) inside code-server's extension host, the way a desktop
 * VS Code runs them for @vscode/test-electron. Used by integration.ts (the .vsix, two sessions) and by
 * code-standin.ts (whatever test-electron / test-cli pass).
 *
 * code-server starts with `--vscode-option enable-smoke-test-driver`; the workbench opens in Chromium with a
 * `payload` naming the extension(s) under development and the tests; it reports the extension host's console
 * through window.codeAutomationLog and the tests' exit code through window.codeAutomationExit.
 *
 * Then it checks what the extension host cannot: that every notification the tests asked for
 * (expected-notifications.jsonl, see test/integration/helpers.ts) was shown, and that no trainer process
 * outlived the editor. Everything it writes goes to `out`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as util from 'node:util';
import { CodeServer, Scratch, closeSession, launchBrowser, tools, type Proc } from './session';
import { recordNotifications, workbenchReady } from './workbench';

/** Workbench console lines that say nothing about the tests (kept in the log file, not printed). */
const NOISE = /^(Resolving connection token|Resolved connection token|Creating a socket|\[reconnection-grace-time\]|Ignoring fetching additional builtin|Updating additional builtin|\[Service Worker\]|\[AgentHost|\[AccountPolicyGate\])/;

export interface ExtensionTestRun {
  /** names the code-server folder and the log lines */
  name: string;
  /** artifacts: logs, notifications.json, a screenshot at the end */
  out: string;
  scratch: Scratch;
  trust: boolean;
  folder: string;
  testsPath: string;
  /** folders loaded as extensions under development */
  devPaths?: string[];
  /** a .vsix installed first; its installed folder becomes the extension under development */
  vsix?: { file: string; id: string };
  /** reaches the extension host's process.env */
  env?: Record<string, string>;
  timeoutMs?: number;
}

export interface ExtensionTestResult {
  ok: boolean;
  /** the tests' exit code (124: no answer in time) */
  code: number;
  problems: string[];
  seconds: number;
}

function describeProcs(ps: Proc[]): string {
  return ps.map((p) => `pid ${p.pid}: ${p.cmd.slice(0, 200)}`).join('; ');
}

export async function runExtensionTests(run: ExtensionTestRun): Promise<ExtensionTestResult> {
  const t0 = Date.now();
  const say = (s: string) => console.log(`[${run.name} ${((Date.now() - t0) / 1000).toFixed(1)}s] ${s}`);
  fs.rmSync(run.out, { recursive: true, force: true });
  fs.mkdirSync(run.out, { recursive: true });
  const t = tools();
  const problems: string[] = [];
  const hostLog = fs.createWriteStream(path.join(run.out, 'extension-host.log'));
  let code = 1;
  let server: CodeServer | undefined;
  let browser: Awaited<ReturnType<typeof launchBrowser>> | undefined;
  let notes: ReturnType<typeof recordNotifications> | undefined;
  try {
    server = await CodeServer.start(t, run.scratch, run.name, {
      trust: run.trust,
      testDriver: true,
      vsix: run.vsix?.file,
      env: { ...run.env, LORA_TEST_RESULTS: run.out },
    });
    const devPaths = [...(run.devPaths ?? []), ...(run.vsix ? [server.installedExtension(run.vsix.id)] : [])];
    say(`code-server ${t.codeServerVersion} on ${server.origin} (pid ${server.pid}), ${run.trust ? 'trusted' : 'Restricted Mode'}; extension: ${devPaths.join(', ')}`);
    browser = await launchBrowser(t, run.scratch);
    const { page } = browser;
    let finish!: (c: number) => void;
    const exited = new Promise<number>((r) => (finish = r));
    await page.exposeFunction('codeAutomationLog', (type: string, args: unknown[]) => {
      const line = util.format(...(args ?? []));
      hostLog.write(`[${type}] ${line}\n`);
      if ((type !== 'error' && !NOISE.test(line)) || process.env.LORA_TEST_VERBOSE) console.log(line);
    });
    await page.exposeFunction('codeAutomationExit', (c: number) => finish(c));
    page.on('pageerror', (e) => hostLog.write(`[pageerror] ${e.message}\n`));
    notes = recordNotifications(page);
    await page.goto(server.url(run.folder, [
      ...devPaths.map((p): [string, string] => ['extensionDevelopmentPath', path.resolve(p)]),
      ['extensionTestsPath', path.resolve(run.testsPath)],
    ]));
    await workbenchReady(page);
    const limit = run.timeoutMs ?? Number(process.env.LORA_TEST_SESSION_TIMEOUT_MS ?? 8 * 60_000);
    code = await Promise.race([exited, new Promise<number>((r) => setTimeout(() => r(124), limit))]);
    if (code === 124) problems.push(`no result from the extension host within ${limit / 1000} s`);
    else if (code !== 0) problems.push(`the tests failed (exit code ${code}); see the output above and ${run.out}`);
    await page.screenshot({ path: path.join(run.out, 'workbench-at-end.png') }).catch(() => undefined);
  } catch (e) {
    problems.push(`session error: ${(e as Error).stack ?? e}`);
    await browser?.page.screenshot({ path: path.join(run.out, 'workbench-at-error.png') }).catch(() => undefined);
  } finally {
    const seen = (await notes?.stop()) ?? [];
    fs.writeFileSync(path.join(run.out, 'notifications.json'), JSON.stringify(seen, null, 2) + '\n');
    if (server) fs.copyFileSync(server.logFile, path.join(run.out, 'code-server.log'));
    const left = await closeSession({ browser: browser?.context, server }, run.scratch);
    hostLog.end();
    // no trainer may outlive the editor: the extension's deactivate and the trainer's parent watchdog see to it
    if (left.trainers.length) problems.push(`trainer processes outlived the editor (killed now): ${describeProcs(left.trainers)}`);
    if (left.others.length) say(`note: stopped ${left.others.length} leftover process(es) of the session by PID: ${describeProcs(left.others)}`);
    if (browser?.blocked.length) say(`note: refused ${browser.blocked.length} request(s) to non-loopback hosts: ${[...new Set(browser.blocked)].join(', ')}`);
    const expectFile = path.join(run.out, 'expected-notifications.jsonl');
    const expected = fs.existsSync(expectFile)
      ? fs.readFileSync(expectFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { pattern: string; flags: string; why: string })
      : [];
    for (const x of expected) {
      if (seen.some((s) => new RegExp(x.pattern, x.flags).test(s))) say(`notification seen: /${x.pattern}/ (${x.why})`);
      else problems.push(`no notification matched /${x.pattern}/ (${x.why}); seen: ${JSON.stringify(seen)}`);
    }
    if (problems.length === 0) run.scratch.remove();
    else say(`kept the scratch folder for a look: ${run.scratch.root}`);
  }
  return { ok: problems.length === 0, code, problems, seconds: (Date.now() - t0) / 1000 };
}
