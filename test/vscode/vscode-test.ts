/**
 * `npm run test:vscode`: the same integration suite through @vscode/test-cli (`vscode-test`, configured by
 * .vscode-test.mjs), which runs it with @vscode/test-electron's runTests. It writes the fixture workspace, then
 * starts vscode-test with:
 *
 * - LORA_TEST_VSCODE=code-server (the default where setup.sh has installed code-server): the installation is
 *   test/vscode/code-standin.sh, a stand-in `code` that runs the tests in code-server;
 * - LORA_TEST_VSCODE=desktop (the default elsewhere): test-electron downloads a desktop VS Code
 *   (LORA_TEST_VSCODE_VERSION, default "stable").
 *
 * The extension under development is the checkout (npm run build has filled dist/), as test-electron does it.
 * test-electron always passes --disable-workspace-trust, so the Restricted Mode suite runs only in
 * `npm run test:integration`.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { writeFixture } from './fixture';
import { REPO, Scratch, tools } from './session';

function installation(): 'code-server' | 'desktop' {
  const asked = process.env.LORA_TEST_VSCODE;
  if (asked === 'code-server' || asked === 'desktop') return asked;
  try {
    tools();
    return 'code-server';
  } catch {
    return 'desktop';
  }
}

async function main(): Promise<number> {
  const kind = installation();
  const scratch = new Scratch('lora-vscode-test-');
  try {
    const fx = writeFixture(scratch.path('workspace'));
    console.log(`vscode-test on ${kind === 'code-server' ? 'code-server (test/vscode/code-standin.sh)' : 'a downloaded desktop VS Code'}; workspace ${fx.workspace}`);
    const bin = path.join(REPO, 'node_modules', '.bin', 'vscode-test');
    return await new Promise<number>((resolve) => {
      const child = spawn(bin, process.argv.slice(2), {
        cwd: REPO,
        stdio: 'inherit',
        env: { ...process.env, LORA_TEST_VSCODE: kind, LORA_TEST_WORKSPACE: fx.workspace },
      });
      const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
      process.on('SIGINT', forward('SIGINT'));
      process.on('SIGTERM', forward('SIGTERM'));
      child.on('close', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
    });
  } finally {
    scratch.remove();
  }
}

main().then((c) => process.exit(c), (e) => {
  console.error(e);
  process.exit(1);
});
