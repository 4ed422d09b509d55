/**
 * `lora-studio merge`: apart from run.ts so that cli.ts loads only this (header reads and host-side arithmetic,
 * no TensorFlow.js) when merge runs.
 */
import * as path from 'node:path';
import { mergeToFolder } from './merge';
import type { MergeResult } from '../protocol';
import type { Output } from './output';

export async function runMerge(modelDir: string, o: { adapter: string; out: string }, out: Output): Promise<void> {
  const r = mergeToFolder(modelDir, o.adapter, o.out);
  r.warnings.forEach((w) => out.warn(w));
  out.info('backend: none (merge is host-side F32 arithmetic)');
  out.info(`merged ${r.merged_modules} LoRA modules into ${r.outDir}`);
  out.result({ backend: null, gpu: false, out_dir: path.resolve(r.outDir), merged_modules: r.merged_modules, warnings: r.warnings } satisfies MergeResult);
}
