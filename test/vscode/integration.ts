/**
 * `npm run test:integration`: the Mocha suite of test/integration inside code-server's extension host, against
 * the extension installed from the .vsix (`npm run package` builds both). Two sessions, each with a fresh
 * fixture workspace, code-server and Chromium in a scratch folder of its own:
 *
 * 1. "trusted": the numbered *.vscode.test.js files (workspace trust off, so the folder is trusted);
 * 2. "restricted": restricted.vscode.test.js, with workspace trust on and the folder not trusted.
 *
 * The .vsix is installed with `code-server --install-extension`; its installed folder is then named as the
 * extension under development, which is what lets VS Code run tests against it (and makes activate() hand the
 * tests its context). Artifacts: test-results/integration/<session>/. `node … integration.ts restricted` runs
 * one session.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runExtensionTests, type ExtensionTestResult } from './extension-tests';
import { writeFixture } from './fixture';
import { REPO, RESULTS, Scratch } from './session';

const EXTENSION_ID = 'lora-studio.lora-studio';
const TESTS_ENTRY = path.join(REPO, 'out', 'test', 'integration', 'index');

function vsixPath(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { name: string; version: string };
  const vsix = path.join(REPO, `${pkg.name}-${pkg.version}.vsix`);
  if (!fs.existsSync(vsix)) throw new Error(`${vsix} is missing: run \`npm run package\` first (npm run test:integration does)`);
  const built = fs.statSync(path.join(REPO, 'dist', 'extension', 'main.js')).mtimeMs;
  if (fs.statSync(vsix).mtimeMs < built - 1000) throw new Error(`${vsix} is older than dist/: run \`npm run package\``);
  if (!fs.existsSync(`${TESTS_ENTRY}.js`)) throw new Error(`${TESTS_ENTRY}.js is missing: run \`npm run build\``);
  return vsix;
}

async function main(): Promise<void> {
  const only = process.argv[2];
  const vsix = vsixPath();
  const results: Array<[string, ExtensionTestResult]> = [];
  for (const session of ['trusted', 'restricted'] as const) {
    if (only && only !== session) continue;
    const scratch = new Scratch(`lora-it-${session}-`);
    const fx = writeFixture(scratch.path('workspace'));
    results.push([session, await runExtensionTests({
      name: session,
      out: path.join(RESULTS, 'integration', session),
      scratch,
      trust: session === 'trusted',
      folder: fx.workspace,
      testsPath: TESTS_ENTRY,
      vsix: { file: vsix, id: EXTENSION_ID },
      env: { LORA_TEST_SESSION: session },
    })]);
  }
  console.log('\nintegration sessions:');
  for (const [session, r] of results) {
    console.log(`  ${r.ok ? 'ok  ' : 'FAIL'} ${session} (${r.seconds.toFixed(0)} s)`);
    for (const p of r.problems) console.log(`       - ${p}`);
  }
  process.exit(results.length > 0 && results.every(([, r]) => r.ok) ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
