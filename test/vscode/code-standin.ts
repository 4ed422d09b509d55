/**
 * A stand-in for the desktop `code` executable, for @vscode/test-electron's runTests({ vscodeExecutablePath })
 * and @vscode/test-cli's `useInstallation: { fromPath }` where VS Code cannot be downloaded (code-standin.sh
 * starts it). It takes the desktop flags those tools pass, runs the extension tests in code-server's extension
 * host (extension-tests.ts), and exits with the tests' exit code.
 *
 * - `--extensionDevelopmentPath` (repeatable) and `--extensionTestsPath` go into the workbench's `payload`.
 * - The first argument that is not a flag is the folder to open.
 * - `--disable-workspace-trust` (test-electron always passes it) opens the folder trusted; without it, workspace
 *   trust is on and the folder opens in Restricted Mode.
 * - `--user-data-dir` and `--extensions-dir` are ignored: the session keeps everything in a scratch folder.
 * - Of the caller's environment only VSCODE_TEST_*, LORA_TEST_* and MOCHA_* reach the extension host.
 *
 * Artifacts: test-results/vscode/.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runExtensionTests } from './extension-tests';
import { RESULTS, Scratch, tools } from './session';

const TAKES_VALUE = new Set(['--extensionDevelopmentPath', '--extensionTestsPath', '--user-data-dir', '--extensions-dir', '--locale', '--profile']);

function flag(args: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i].startsWith(`--${name}=`)) out.push(args[i].slice(name.length + 3));
    else if (args[i] === `--${name}` && i + 1 < args.length) out.push(args[++i]);
  }
  return out;
}

function folderArg(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (TAKES_VALUE.has(args[i])) i++;
    else if (!args[i].startsWith('-')) return args[i];
  }
  return undefined;
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--version') || argv.includes('-v')) {
    console.log(`${tools().codeServerVersion} (code-server stand-in)\nx64`);
    return 0;
  }
  const testsPath = flag(argv, 'extensionTestsPath')[0];
  if (!testsPath) {
    console.error('code-standin: it only runs extension tests (no --extensionTestsPath)');
    return 2;
  }
  const scratch = new Scratch('lora-standin-');
  const folder = path.resolve(folderArg(argv) ?? scratch.path('empty-workspace'));
  fs.mkdirSync(folder, { recursive: true });
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && /^(VSCODE_TEST_|LORA_TEST_|MOCHA_)/.test(k)) env[k] = v;
  const r = await runExtensionTests({
    name: 'stand-in',
    out: path.join(RESULTS, 'vscode'),
    scratch,
    trust: argv.includes('--disable-workspace-trust'),
    folder,
    testsPath,
    devPaths: flag(argv, 'extensionDevelopmentPath'),
    env,
  });
  for (const p of r.problems) console.error(`code-standin: ${p}`);
  return r.ok ? 0 : r.code === 0 ? 1 : r.code;
}

main(process.argv.slice(2)).then((c) => process.exit(c), (e) => {
  console.error(e);
  process.exit(1);
});
