/**
 * Build step (esbuild.config.mjs runs it under tsx): writes the GEMM's binary, assembled from gemm_wat.ts, to
 * the path given, so the bundled trainer loads it without wabt.
 */
import { writeFileAtomic } from '../../io/atomic';
import { assembleGemm } from './gemm';

const out = process.argv[2];
if (!out) throw new Error('usage: gemm_build.ts <out.wasm>');
void assembleGemm().then((bytes) => writeFileAtomic(out, bytes));
