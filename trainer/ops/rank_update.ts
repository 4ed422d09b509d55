/**
 * The rank-r update W += s · x·y of rank_update_wat.ts, on a weight as it is stored (F32, BF16 or F16 bytes),
 * for `merge`: host-side, no TensorFlow.js. The module has its own memory, which grows to the largest weight it
 * is given; the caller reads a weight's bytes straight into `weightBytes` and writes them back from there.
 *
 * The binary is made by the build (dist/trainer/rank_update.wasm, beside the bundle) and compiled on first use,
 * synchronously. Running from source it is assembled with wabt (a dev dependency), which is asynchronous:
 * prepareRankUpdate() does that; until it has run, rankUpdater() answers null and the caller takes its
 * JavaScript path (the same arithmetic, slower).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FloatDType } from '../io/safetensors';
import { rankUpdateWat } from './rank_update_wat';

/** The binary's file name beside the bundled trainer. */
export const RANK_UPDATE_WASM = 'rank_update.wasm';

type Update = (w: number, x: number, y: number, u0: number, u1: number, V: number, r: number, s: number) => number;
interface Exports {
  memory: WebAssembly.Memory;
  update_f32: Update;
  update_bf16: Update;
  update_f16: Update;
}
type Wabt = () => Promise<{ parseWat(name: string, text: string, features: { simd: boolean }): { toBinary(o: object): { buffer: Uint8Array<ArrayBuffer> }; destroy(): void } }>;
/** A run-time require: wabt is a dev dependency, never bundled. */
const devRequire: NodeJS.Require = require;

let compiled: WebAssembly.Module | null = null;
let updater: RankUpdater | null = null;

/** Assembles the module's text with wabt (from source; the build writes the result to dist/trainer/). */
export async function assembleRankUpdate(): Promise<Uint8Array<ArrayBuffer>> {
  const wabt = await (devRequire('wabt') as Wabt)();
  const parsed = wabt.parseWat('rank_update.wat', rankUpdateWat(), { simd: true });
  try {
    return parsed.toBinary({}).buffer;
  } finally {
    parsed.destroy();
  }
}

/** Compiles the module from the built binary, or from its text with wabt when there is none (from source). */
export async function prepareRankUpdate(): Promise<void> {
  if (compiled) return;
  const built = path.join(__dirname, RANK_UPDATE_WASM);
  compiled = new WebAssembly.Module(fs.existsSync(built) ? new Uint8Array(fs.readFileSync(built)) : await assembleRankUpdate());
}

/** The kernel, or null when the module is neither built beside this file nor prepared. One per thread. */
export function rankUpdater(): RankUpdater | null {
  if (updater) return updater;
  if (!compiled) {
    const built = path.join(__dirname, RANK_UPDATE_WASM);
    if (!fs.existsSync(built)) return null;
    compiled = new WebAssembly.Module(new Uint8Array(fs.readFileSync(built)));
  }
  updater = new RankUpdater(new WebAssembly.Instance(compiled, {}).exports as unknown as Exports);
  return updater;
}

const PAGE = 65536;
/** elements per call: V8 compiles a hot function better on its next call, so long loops are cut into calls */
const ELEMENTS_PER_CALL = 1 << 18;

/** One weight at a time: `load` sizes the memory and places the factors, then `weightBytes`, then `run`. */
export class RankUpdater {
  private U = 0;
  private V = 0;
  private r = 0;
  private w = 0;
  private dtype: FloatDType = 'F32';

  constructor(private readonly ex: Exports) {}

  /**
   * Sets up W [U, V] += s · x·y for x [U, r] (x(u, k) gives its values) and y [r, V] (y(k, v)), float64 in the
   * module's memory, and room for W's U·V elements stored as `dtype` after them.
   */
  load(dtype: FloatDType, U: number, V: number, r: number, x: (u: number, k: number) => number, y: (k: number, v: number) => number): void {
    const yAt = U * r * 8;
    const w = yAt + r * V * 8;
    const need = w + U * V * (dtype === 'F32' ? 4 : 2);
    const have = this.ex.memory.buffer.byteLength;
    if (need > have) this.ex.memory.grow(Math.ceil((need - have) / PAGE));
    const xs = new Float64Array(this.ex.memory.buffer, 0, U * r);
    for (let u = 0; u < U; u++) for (let k = 0; k < r; k++) xs[u * r + k] = x(u, k);
    const ys = new Float64Array(this.ex.memory.buffer, yAt, r * V);
    for (let k = 0; k < r; k++) for (let v = 0; v < V; v++) ys[k * V + v] = y(k, v);
    Object.assign(this, { U, V, r, w, dtype });
  }

  /** W's bytes in the module's memory (a new view after every load). */
  weightBytes(): Uint8Array {
    return new Uint8Array(this.ex.memory.buffer, this.w, this.U * this.V * (this.dtype === 'F32' ? 4 : 2));
  }

  /** W += s · x·y in place; false when some value is not finite once stored (W is then partly updated). */
  run(s: number): boolean {
    const { U, V, r } = this;
    const update = { F32: this.ex.update_f32, BF16: this.ex.update_bf16, F16: this.ex.update_f16 }[this.dtype];
    const rows = Math.max(2, Math.floor(ELEMENTS_PER_CALL / Math.max(V, 1)) & ~1);
    let bad = 0;
    for (let u = 0; u < U; u += rows) bad |= update(this.w, 0, U * r * 8, u, Math.min(U, u + rows), V, r, s);
    return bad === 0;
  }
}
