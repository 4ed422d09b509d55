// @vscode/test-cli: the integration suite (test/integration, built into out/ by `npm run build`) in a VS Code.
// Start it with `npm run test:vscode` (test/vscode/vscode-test.ts), which writes the fixture workspace and picks
// the installation: the code-server stand-in where setup.sh installed code-server, else a downloaded VS Code.
import { defineConfig } from '@vscode/test-cli';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const workspace = process.env.LORA_TEST_WORKSPACE;
if (!workspace) throw new Error('LORA_TEST_WORKSPACE is not set: run the suite with `npm run test:vscode`');
const desktop = process.env.LORA_TEST_VSCODE === 'desktop';
// the numbered files in their order (a glob would hand them over in any order; 9-shutdown must come last)
const built = path.join(here, 'out', 'test', 'integration');
const files = fs.existsSync(built) ? fs.readdirSync(built).filter((f) => /^\d.*\.vscode\.test\.js$/.test(f)).sort().map((f) => path.join(built, f)) : [];
if (files.length === 0) throw new Error(`no ${built}/*.vscode.test.js: run \`npm run build\``);

export default defineConfig({
  label: 'integration',
  files,
  workspaceFolder: workspace,
  extensionDevelopmentPath: here,
  env: { LORA_TEST_SESSION: 'trusted' },
  mocha: { ui: 'tdd', timeout: 120_000, color: false },
  ...(desktop
    ? { version: process.env.LORA_TEST_VSCODE_VERSION ?? 'stable' }
    : { useInstallation: { fromPath: path.join(here, 'test', 'vscode', 'code-standin.sh') } }),
});
