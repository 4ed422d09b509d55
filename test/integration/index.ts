/**
 * The extension-host entry of the integration suite (VS Code's `extensionTestsPath`): VS Code loads this file in
 * the extension host and calls run(); the suite fails when the promise rejects. It runs the bundled
 * `*.vscode.test.js` files beside it with Mocha (TDD interface, as @vscode/test-cli does).
 *
 * LORA_TEST_SESSION picks the files: "restricted" runs restricted.vscode.test.js only (a session whose workspace is
 * not trusted); anything else runs the numbered files in order (a trusted workspace).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Mocha from 'mocha';

export function filesFor(session: string | undefined, dir: string): string[] {
  const all = fs.readdirSync(dir).filter((f) => f.endsWith('.vscode.test.js')).sort();
  const picked = session === 'restricted' ? all.filter((f) => f.startsWith('restricted.')) : all.filter((f) => /^\d/.test(f));
  return picked.map((f) => path.join(dir, f));
}

export async function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'tdd', color: false, timeout: 120_000, reporter: 'spec' });
  const files = filesFor(process.env.LORA_TEST_SESSION, __dirname);
  if (files.length === 0) throw new Error(`no *.vscode.test.js files in ${__dirname}: run \`npm run build:tests\``);
  for (const f of files) mocha.addFile(f);
  const failures = await new Promise<number>((resolve) => mocha.run(resolve));
  if (failures > 0) throw new Error(`${failures} integration test(s) failed`);
}
