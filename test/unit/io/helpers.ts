/**
 * Test helpers for the io/ tests: random LoRA adapters for tiny models, fixture paths, error assertions.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoraStudioError } from '../../../trainer/errors';
import type { FloatDType, HostTensor } from '../../../trainer/io/safetensors';
import { adapterConfigJson } from '../../../trainer/lora/adapter_io';
import { LORA_DEFAULTS, type LoraConfig } from '../../../trainer/lora/config';
import type { Task } from '../../../trainer/task';
import { rankAndScaling } from '../../../trainer/lora/patterns';
import type { AdapterWeights } from '../../../trainer/lora/types';
import { Rng } from '../../../trainer/util/rng';

/** ../shared/fixtures beside the repository root; undefined when absent. */
export const FIXTURES = path.resolve(__dirname, '..', '..', '..', '..', 'shared', 'fixtures');
export const fixturesSkip = fs.existsSync(FIXTURES) ? false : 'skipped: ../shared/fixtures is absent';

export function throwsLS(fn: () => unknown, file: string | undefined, field: string | undefined, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof LoraStudioError, `expected LoraStudioError, got ${String(e)}`);
    assert.equal(e.file, file);
    assert.equal(e.field, field);
    assert.match(e.message, message);
    return true;
  });
}

export function randomTensor(shape: number[], rng: Rng, std: number, dtype: FloatDType = 'F32'): HostTensor {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = std * rng.normal();
  return { shape, data, dtype };
}

/**
 * A random adapter for a model with these weight shapes: for each module, A [r, in] and B [out, r] with r from
 * rankAndScaling (so rank_pattern applies). Conv1D (blocks) weights are [in, out], Linear (score) [out, in].
 */
export function randomAdapter(
  shapes: Map<string, number[]>,
  modules: string[],
  task: Task,
  lora: Partial<LoraConfig> = {},
  seed = 1,
  dtype: FloatDType = 'F32',
): AdapterWeights {
  const cfg: LoraConfig = { ...LORA_DEFAULTS, target_modules: modules.map((m) => m.split('.').pop()!), ...lora };
  const rng = new Rng(seed);
  const map = new Map<string, { A: HostTensor; B: HostTensor }>();
  for (const m of modules) {
    const w = shapes.get(`${m}.weight`)!;
    const [inF, outF] = m === 'score' ? [w[1], w[0]] : [w[0], w[1]];
    const { r } = rankAndScaling(cfg, m);
    map.set(m, { A: randomTensor([r, inF], rng, 0.3, dtype), B: randomTensor([outF, r], rng, 0.3, dtype) });
  }
  return { config: adapterConfigJson({ ...cfg, fan_in_fan_out: true }, task, 'tiny-gpt2'), lora: map, extra: new Map() };
}

/** Every file under `dir` with its bytes, for "left untouched" checks. */
export function snapshotDir(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) {
      const p = path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
      out.set(path.relative(dir, p), fs.readFileSync(p));
    }
  }
  return out;
}

export function assertTensorsBitEqual(a: HostTensor, b: HostTensor, what: string): void {
  assert.deepEqual(b.shape, a.shape, `${what} shape`);
  assert.equal(b.dtype, a.dtype, `${what} dtype`);
  assert.ok(Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).equals(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength)), `${what} bytes`);
}

export function assertAdaptersBitEqual(a: AdapterWeights, b: AdapterWeights): void {
  assert.deepEqual(b.config, a.config);
  assert.deepEqual([...b.lora.keys()].sort(), [...a.lora.keys()].sort());
  for (const [m, { A, B }] of a.lora) {
    assertTensorsBitEqual(A, b.lora.get(m)!.A, `${m}.lora_A`);
    assertTensorsBitEqual(B, b.lora.get(m)!.B, `${m}.lora_B`);
  }
  assert.deepEqual([...b.extra.keys()].sort(), [...a.extra.keys()].sort());
  for (const [k, t] of a.extra) assertTensorsBitEqual(t, b.extra.get(k)!, k);
}
