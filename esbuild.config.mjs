// One esbuild build for the three sides: trainer (CLI + child process), extension host, webview.
import * as esbuild from 'esbuild';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';

const watch = process.argv.includes('--watch');
const common = { bundle: true, sourcemap: true, logLevel: 'warning', target: 'node20' };

/** Only sides whose entry exists are built, so each side can land on its own. */
const entries = [
  // The trainer is self-contained (the VSIX ships no node_modules): only the optional native TensorFlow
  // packages stay outside, loaded by a guarded require when the user installed them, and wabt, which only a run
  // from source needs (the bundle loads the prebuilt binaries below), and webgpu (Dawn's Node bindings: a native
  // dawn.node per platform), imported at run time by trainer/backend_webgpu.ts when it is installed.
  // Its whitespace and comments go (identifiers stay): the CLI, the child and each data-parallel worker start by
  // reading and compiling their bundle, and a smaller, ASCII-only file is faster to read and to parse (`lora-studio
  // --version` 0.26 → 0.21 s here); the source maps still point into trainer/.
  { ...common, minifyWhitespace: true, platform: 'node', format: 'cjs', external: ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'wabt', 'webgpu'],
    entryPoints: { 'trainer/cli': 'trainer/cli.ts', 'trainer/main': 'trainer/main.ts', 'trainer/parallel_worker': 'trainer/parallel/worker.ts' }, outdir: 'dist' },
  { ...common, platform: 'node', format: 'cjs', external: ['vscode'],
    entryPoints: { 'extension/main': 'extension/main.ts' }, outdir: 'dist' },
  { ...common, platform: 'browser', format: 'iife', target: 'es2022',
    entryPoints: { 'webview/main': 'webview/main.ts', 'webview/analyze': 'webview/analyze.ts', 'webview/compare': 'webview/compare.ts' }, outdir: 'dist' },
  // The integration suite (test/integration), which VS Code loads in the extension host: its Mocha entry and each
  // *.vscode.test.ts, with vscode and mocha left to the host and node_modules. Not part of the VSIX.
  { ...common, platform: 'node', format: 'cjs', external: ['vscode', 'mocha'], outdir: 'out',
    entryPoints: Object.fromEntries(['index.ts', ...(existsSync('test/integration') ? readdirSync('test/integration').filter((f) => f.endsWith('.vscode.test.ts')) : [])]
      .map((f) => [`test/integration/${f.replace(/\.ts$/, '')}`, `test/integration/${f}`])) },
].map((o) => ({ ...o, entryPoints: Object.fromEntries(Object.entries(o.entryPoints).filter(([, f]) => existsSync(f))) }))
  .filter((o) => Object.keys(o.entryPoints).length > 0);

// The wasm backend's binaries go beside the trainer bundle, where trainer/backend.ts looks first.
const wasmDist = path.dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm'));
mkdirSync('dist/trainer', { recursive: true });
for (const f of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm']) copyFileSync(path.join(wasmDist, f), path.join('dist/trainer', f));
// Our WebAssembly (the GEMM's two builds, merge's rank-update kernel: trainer/ops/wasm_build.ts), assembled once here, goes there too.
execFileSync(process.execPath, ['--import', 'tsx', 'trainer/ops/wasm_build.ts', 'dist/trainer'], { stdio: 'inherit' });

if (watch) {
  for (const o of entries) await (await esbuild.context(o)).watch();
} else {
  await Promise.all(entries.map((o) => esbuild.build(o)));
}
