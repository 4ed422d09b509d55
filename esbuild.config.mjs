// One esbuild build for the three sides: trainer (CLI + child process), extension host, webview.
import * as esbuild from 'esbuild';
import { existsSync } from 'node:fs';

const watch = process.argv.includes('--watch');
const common = { bundle: true, sourcemap: true, logLevel: 'warning', target: 'node20' };

/** Only sides whose entry exists are built, so each side can land on its own. */
const entries = [
  // The trainer keeps node_modules external: tfjs-backend-wasm finds its .wasm files beside its own package.
  { ...common, platform: 'node', format: 'cjs', packages: 'external',
    entryPoints: { 'trainer/cli': 'trainer/cli.ts', 'trainer/main': 'trainer/main.ts' }, outdir: 'dist' },
  { ...common, platform: 'node', format: 'cjs', external: ['vscode'],
    entryPoints: { 'extension/main': 'extension/main.ts' }, outdir: 'dist' },
  { ...common, platform: 'browser', format: 'iife', target: 'es2022',
    entryPoints: { 'webview/main': 'webview/main.ts' }, outdir: 'dist' },
].map((o) => ({ ...o, entryPoints: Object.fromEntries(Object.entries(o.entryPoints).filter(([, f]) => existsSync(f))) }))
  .filter((o) => Object.keys(o.entryPoints).length > 0);

if (watch) {
  for (const o of entries) await (await esbuild.context(o)).watch();
} else {
  await Promise.all(entries.map((o) => esbuild.build(o)));
}
