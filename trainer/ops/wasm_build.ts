/**
 * Build step (esbuild.config.mjs runs it under tsx): writes our WebAssembly binaries into the folder given, so
 * the bundled trainer loads them without wabt: both GEMM builds (gemm_wat.ts) and merge's rank-update kernel
 * (rank_update_wat.ts).
 */
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic';
import { assembleGemm, GEMM_WASM, type GemmVariant } from './gemm';
import { assembleRankUpdate, RANK_UPDATE_WASM } from './rank_update';

const dir = process.argv[2];
if (!dir) throw new Error('usage: wasm_build.ts <folder>');
for (const [which, file] of Object.entries(GEMM_WASM) as Array<[GemmVariant, string]>) {
  void assembleGemm(which).then((bytes) => writeFileAtomic(path.join(dir, file), bytes));
}
void assembleRankUpdate().then((bytes) => writeFileAtomic(path.join(dir, RANK_UPDATE_WASM), bytes));
