/**
 * Build step (esbuild.config.mjs runs it under tsx): writes both GEMM binaries, assembled from gemm_wat.ts, into
 * the folder given, so the bundled trainer loads them without wabt.
 */
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic';
import { assembleGemm, GEMM_WASM, type GemmVariant } from './gemm';

const dir = process.argv[2];
if (!dir) throw new Error('usage: gemm_build.ts <folder>');
for (const [which, file] of Object.entries(GEMM_WASM) as Array<[GemmVariant, string]>) {
  void assembleGemm(which).then((bytes) => writeFileAtomic(path.join(dir, file), bytes));
}
