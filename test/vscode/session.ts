/**
 * One editor session for the VS Code suites: a scratch folder that holds everything the session writes (HOME,
 * TMPDIR, XDG_*, code-server's config, user data and extensions, Chromium's profile), code-server from the
 * cache that setup.sh fills, bound to 127.0.0.1 on a free port, and Debian's Chromium driven by playwright-core.
 *
 * Everything started is recorded by PID and stopped by PID: `close()` stops the browser, then code-server (the
 * extension host's children, the trainer among them, must leave by themselves: that is one of the checks), and
 * finally finds whatever still runs from the scratch folder or the extension's trainer, kills it by PID and
 * reports it. A SIGINT/SIGTERM to the runner closes open sessions too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { alive } from '../util/process';

export const REPO = path.resolve(__dirname, '..', '..');
export const RESULTS = path.join(REPO, 'test-results');

// ---- tools (installed by setup.sh; versions.sh names them) ----

export interface Tools {
  node24Bin: string;
  codeServerEntry: string;
  chromium: string;
  codeServerVersion: string;
}

/** The values of versions.sh, with the same defaults and environment overrides. */
export function tools(): Tools {
  const vars = new Map<string, string>();
  const text = fs.readFileSync(path.join(__dirname, 'versions.sh'), 'utf8');
  const expand = (v: string): string =>
    v.replace(/^"|"$/g, '')
      .replace(/\$\{(\w+):-([^}]*)\}/g, (_, k: string, d: string) => process.env[k] ?? expand(d))
      .replace(/\$\{?(\w+)\}?/g, (_, k: string) => vars.get(k) ?? process.env[k] ?? '');
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) vars.set(m[1], expand(m[2]));
  }
  const t: Tools = {
    node24Bin: vars.get('NODE24_BIN')!,
    codeServerEntry: vars.get('CODE_SERVER_ENTRY')!,
    chromium: vars.get('CHROMIUM')!,
    codeServerVersion: vars.get('CODE_SERVER_VERSION')!,
  };
  for (const [what, file] of [['Node 24', path.join(t.node24Bin, 'node')], ['code-server', t.codeServerEntry], ['Chromium', t.chromium]]) {
    if (!fs.existsSync(file)) throw new Error(`${what} is not installed (${file} is missing): run \`bash test/vscode/setup.sh\` first (.ci/run does)`);
  }
  return t;
}

// ---- scratch folder ----

export class Scratch {
  readonly root: string;
  readonly home: string;
  readonly tmp: string;

  constructor(prefix: string) {
    this.root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
    this.home = path.join(this.root, 'home');
    this.tmp = path.join(this.root, 'tmp');
    for (const d of [this.tmp, ...['.config', '.local/share', '.cache', '.local/state'].map((x) => path.join(this.home, x))]) fs.mkdirSync(d, { recursive: true });
  }

  path(...parts: string[]): string {
    return path.join(this.root, ...parts);
  }

  /** The environment of everything this session starts: its own HOME, TMPDIR and XDG folders. */
  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    // keep only what a process needs to run; nothing of the caller's editor, npm or display
    for (const k of ['PATH', 'LANG', 'LC_ALL', 'TZ', 'TERM']) if (process.env[k] !== undefined) env[k] = process.env[k];
    return {
      ...env,
      HOME: this.home,
      TMPDIR: this.tmp,
      XDG_CONFIG_HOME: path.join(this.home, '.config'),
      XDG_DATA_HOME: path.join(this.home, '.local/share'),
      XDG_CACHE_HOME: path.join(this.home, '.cache'),
      XDG_STATE_HOME: path.join(this.home, '.local/state'),
      XDG_RUNTIME_DIR: this.tmp,
      // the trainer must not reach for the Hugging Face Hub
      HF_HUB_OFFLINE: '1',
      // no extension gallery (code-server would ask open-vsx.org), and any other request goes to a dead
      // loopback proxy: the session talks to 127.0.0.1 only
      EXTENSIONS_GALLERY: '{}',
      HTTP_PROXY: 'http://127.0.0.1:9', HTTPS_PROXY: 'http://127.0.0.1:9', http_proxy: 'http://127.0.0.1:9', https_proxy: 'http://127.0.0.1:9',
      NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost', NODE_USE_ENV_PROXY: '1',
      // every process of the session inherits this: sweep() finds them by it
      LORA_TEST_SCRATCH: this.root,
      ...extra,
    };
  }

  remove(): void {
    fs.rmSync(this.root, { recursive: true, force: true, maxRetries: 3 });
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- processes ----

export interface Proc {
  pid: number;
  cmd: string;
}

function cmdline(pid: string): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return undefined;
  }
}

function environHas(pid: string, entry: string): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(entry);
  } catch {
    return false;
  }
}

/** The processes of a session: started with its environment, or naming its scratch folder (not this one). */
export function sessionProcesses(scratch: Scratch): Proc[] {
  const out: Proc[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const cmd = cmdline(name);
    if (cmd === undefined || cmd === '') continue; // gone, or a zombie
    if (cmd.includes(scratch.root) || environHas(name, `LORA_TEST_SCRATCH=${scratch.root}`)) out.push({ pid: Number(name), cmd });
  }
  return out;
}

/** The extension's trainer: the forked child (dist/trainer/main.js), the CLI (cli.js), or anything else of dist/trainer. */
export const isTrainer = (p: Proc): boolean => /[/\\]dist[/\\]trainer[/\\][\w.-]+\.js\b/.test(p.cmd);


function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (alive(pid) && Date.now() < end) await sleep(100);
  return !alive(pid);
}

// ---- code-server ----

export interface CodeServerOptions {
  /** false: workspace trust is on and the folder is not trusted (Restricted Mode) */
  trust: boolean;
  /** --vscode-option enable-smoke-test-driver: the workbench honours `payload` (extension tests) */
  testDriver?: boolean;
  /** installed with --install-extension before the server starts */
  vsix?: string;
  /** reaches the extension host (and so the extension's tests) as process.env */
  env?: Record<string, string>;
  /** user settings on top of the session's defaults */
  settings?: Record<string, unknown>;
}

export class CodeServer {
  private constructor(
    readonly port: number,
    readonly child: ChildProcess,
    readonly userDataDir: string,
    readonly extensionsDir: string,
    readonly logFile: string,
  ) {}

  get pid(): number {
    return this.child.pid!;
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The workbench URL for `folder`, with extension development/test paths when given. */
  url(folder: string, payload?: Array<[string, string]>): string {
    const q = new URLSearchParams({ folder });
    if (payload) q.set('payload', JSON.stringify(payload.map(([k, v]) => [k, /^\//.test(v) ? this.remoteUri(v) : v])));
    return `${this.origin}/?${q.toString()}`;
  }

  /** A path of this machine as the browser workbench names it (the server's file system). */
  remoteUri(p: string): string {
    return `vscode-remote://127.0.0.1:${this.port}${path.resolve(p)}`;
  }

  /** Where --install-extension put an extension (publisher.name-version). */
  installedExtension(id: string): string {
    const dir = fs.readdirSync(this.extensionsDir).find((d) => d.toLowerCase().startsWith(`${id.toLowerCase()}-`));
    if (!dir) throw new Error(`${id} is not installed in ${this.extensionsDir}`);
    return path.join(this.extensionsDir, dir);
  }

  static async start(t: Tools, scratch: Scratch, name: string, opts: CodeServerOptions): Promise<CodeServer> {
    const dir = scratch.path(`code-server-${name}`);
    const userDataDir = path.join(dir, 'user-data');
    const extensionsDir = path.join(dir, 'extensions');
    const config = path.join(dir, 'config.yaml');
    fs.mkdirSync(path.join(userDataDir, 'User'), { recursive: true });
    fs.mkdirSync(extensionsDir, { recursive: true });
    fs.writeFileSync(config, 'bind-addr: 127.0.0.1:0\nauth: none\ncert: false\n');
    fs.writeFileSync(path.join(userDataDir, 'User', 'settings.json'), JSON.stringify({
      'workbench.startupEditor': 'none',
      'workbench.tips.enabled': false,
      'workbench.enableExperiments': false,
      'workbench.secondarySideBar.defaultVisibility': 'hidden',
      'workbench.welcomePage.walkthroughs.openOnInstall': false,
      'security.workspace.trust.enabled': !opts.trust,
      'security.workspace.trust.startupPrompt': 'never',
      'telemetry.telemetryLevel': 'off',
      'update.mode': 'none',
      'extensions.autoCheckUpdates': false,
      'extensions.autoUpdate': false,
      'extensions.ignoreRecommendations': true,
      'chat.disableAIFeatures': true,
      'git.enabled': false,
      'npm.autoDetect': 'off',
      'typescript.disableAutomaticTypeAcquisition': true,
      ...opts.settings,
    }, null, 2));
    const env = scratch.env({ ...opts.env, PATH: `${t.node24Bin}:${process.env.PATH ?? ''}` });
    const node = path.join(t.node24Bin, 'node');
    const common = ['--config', config, '--user-data-dir', userDataDir, '--extensions-dir', extensionsDir];
    if (opts.vsix) {
      const res = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const p = spawn(node, [t.codeServerEntry, ...common, '--install-extension', opts.vsix!], { env, cwd: scratch.root, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (out += d));
        p.on('close', (code) => resolve({ code, out }));
      });
      if (res.code !== 0) throw new Error(`code-server --install-extension ${opts.vsix} failed (${res.code}):\n${res.out}`);
    }
    const port = await freePort();
    const logFile = path.join(dir, 'code-server.log');
    const log = fs.openSync(logFile, 'a');
    const args = [
      t.codeServerEntry, ...common, '--bind-addr', `127.0.0.1:${port}`, '--auth', 'none',
      '--disable-telemetry', '--disable-update-check', '--disable-getting-started-override', '--disable-proxy',
      ...(opts.trust ? ['--disable-workspace-trust'] : []),
      ...(opts.testDriver ? ['--vscode-option', 'enable-smoke-test-driver'] : []),
    ];
    const child = spawn(node, args, { env, cwd: scratch.root, stdio: ['ignore', log, log], detached: true });
    fs.closeSync(log);
    const cs = new CodeServer(port, child, userDataDir, extensionsDir, logFile);
    track(cs);
    const end = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`code-server exited (${child.exitCode}) before it answered; see ${logFile}:\n${tail(logFile)}`);
      const ok = await fetch(`${cs.origin}/healthz`).then((r) => r.ok, () => false);
      if (ok) return cs;
      if (Date.now() > end) throw new Error(`code-server did not answer on ${cs.origin} within 60 s; see ${logFile}:\n${tail(logFile)}`);
      await sleep(200);
    }
  }

  /** SIGTERM to code-server, SIGKILL after 10 s. Its children are left to leave by themselves (see close()). */
  async stop(): Promise<void> {
    untrack(this);
    if (!alive(this.pid) || this.child.exitCode !== null) return;
    kill(this.pid, 'SIGTERM');
    if (!(await waitGone(this.pid, 10_000))) kill(this.pid, 'SIGKILL');
    await waitGone(this.pid, 5_000);
  }
}

export function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

// ---- Chromium ----

/** Debian's Chromium, told not to phone anywhere; every request to a non-loopback host is refused and noted. */
export async function launchBrowser(t: Tools, scratch: Scratch, opts: { viewport?: { width: number; height: number } } = {}): Promise<{ context: BrowserContext; page: Page; blocked: string[] }> {
  const profile = scratch.path('chromium-profile');
  fs.mkdirSync(profile, { recursive: true });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: t.chromium,
    headless: true,
    env: scratch.env(),
    viewport: opts.viewport ?? { width: 1440, height: 900 },
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-default-apps', '--disable-extensions',
      '--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication',
      '--metrics-recording-only', '--no-default-browser-check', '--password-store=basic', '--use-mock-keychain',
    ],
  });
  const blocked: string[] = [];
  await context.route(/.*/, (route) => {
    const url = route.request().url();
    let host = '';
    try {
      host = new URL(url).hostname;
    } catch {
      // data:, blob: and the like have no host
    }
    if (host === '' || host === '127.0.0.1' || host === 'localhost' || host === '[::1]' || !/^(https?|wss?):/.test(url)) {
      void route.continue();
      return;
    }
    blocked.push(url);
    void route.abort('blockedbyclient');
  });
  track(context);
  const page = context.pages()[0] ?? (await context.newPage());
  return { context, page, blocked };
}

export async function closeBrowser(context: BrowserContext): Promise<void> {
  untrack(context);
  await Promise.race([context.close().catch(() => undefined), sleep(10_000)]);
}

// ---- cleanup: by PID, on success, failure and interruption ----

const open = new Set<CodeServer | BrowserContext>();
let hooked = false;

function track(x: CodeServer | BrowserContext): void {
  open.add(x);
  if (hooked) return;
  hooked = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      void closeAll().finally(() => process.exit(130));
    });
  }
  process.once('exit', () => {
    // last resort, synchronous: SIGKILL what is still recorded
    for (const x of open) if (x instanceof CodeServer && alive(x.pid)) kill(x.pid, 'SIGKILL');
  });
}

function untrack(x: CodeServer | BrowserContext): void {
  open.delete(x);
}

async function closeAll(): Promise<void> {
  for (const x of [...open]) {
    if (x instanceof CodeServer) await x.stop();
    else await closeBrowser(x);
  }
}

/**
 * After a session: what of it still runs (code-server's helpers, Chromium, the extension's trainer), after
 * `graceMs` for the trainer's parent watchdog (it polls every 2 s). Each is killed by PID and returned.
 */
export async function sweep(scratch: Scratch, graceMs = 8_000): Promise<{ trainers: Proc[]; others: Proc[] }> {
  const end = Date.now() + graceMs;
  let left = sessionProcesses(scratch);
  while (left.length > 0 && Date.now() < end) {
    await sleep(250);
    left = sessionProcesses(scratch);
  }
  for (const p of left) kill(p.pid, 'SIGKILL');
  return { trainers: left.filter(isTrainer), others: left.filter((p) => !isTrainer(p)) };
}

/** Closes the browser and code-server, then sweeps. */
export async function closeSession(s: { browser?: BrowserContext; server?: CodeServer }, scratch: Scratch): Promise<{ trainers: Proc[]; others: Proc[] }> {
  if (s.browser) await closeBrowser(s.browser);
  if (s.server) await s.server.stop();
  return sweep(scratch);
}
