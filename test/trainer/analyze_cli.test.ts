/**
 * `lora-studio analyze` as a process: --json prints one AnalyzeResult (modules in block order, φ with --compare,
 * amplification with --base), the table names its columns, and bad folders are named errors with no stack.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeRandomGPT2 } from '../../trainer/models/gpt2/random_init';
import type { AnalyzeResult } from '../../trainer/protocol';
import { runCli, runCliJson, scratch, writeRandomAdapter } from './helpers';

describe('lora-studio analyze', () => {
  let tmp = '';
  let model = '';
  before(() => {
    tmp = scratch('lora-analyze-cli-');
    model = path.join(tmp, 'model');
    writeRandomGPT2(model, { config: { n_layer: 12 } });
    writeRandomAdapter(path.join(tmp, 'r4'), model, { r: 4, targets: ['c_attn'] });
    writeRandomAdapter(path.join(tmp, 'r8'), model, { r: 8, targets: ['c_attn', 'c_fc'], seed: 5 });
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('--json: one AnalyzeResult, blocks in order, φ r 4 × r 8 over the shared modules, amplification with --base', async () => {
    const { res, json } = await runCliJson(['analyze', path.join(tmp, 'r4'), '--base', model, '--compare', path.join(tmp, 'r8')]);
    assert.equal(res.code, 0, res.stderr);
    const r = json as unknown as AnalyzeResult & { backend: null };
    assert.equal(r.backend, null);
    assert.deepEqual(r.modules.map((m) => m.name), Array.from({ length: 12 }, (_, i) => `transformer.h.${i}.attn.c_attn`));
    for (const m of r.modules) {
      assert.equal(m.singular_values.length, 4);
      assert.ok(m.amplification && m.amplification.factor > 0 && m.amplification.random_fro > 0);
    }
    assert.equal(r.similarity.length, 12);
    assert.equal(r.similarity[0].phi.length, 4);
    assert.equal(r.similarity[0].phi[0].length, 8);
    assert.match(res.stderr, /warning: 12 module\(s\) adapted by only one/);
  });

  it('prints a readable table', async () => {
    const res = await runCli(['analyze', path.join(tmp, 'r8')]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /module\s+r\s+top singular values\s+energy@1\s+@2\s+@4\s+stable rank/);
    assert.match(res.stdout, /transformer\.h\.2\.attn\.c_attn[\s\S]*transformer\.h\.10\.attn\.c_attn/);
  });

  it('a missing folder names the flag; an adapter for another model names its file; no stack trace', async () => {
    const missing = await runCli(['analyze', path.join(tmp, 'r4'), '--compare', path.join(tmp, 'nope')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /lora-studio: error: <command line>: --compare: no such folder/);
    const small = path.join(tmp, 'small');
    writeRandomGPT2(small, { config: { n_layer: 1 } });
    const misfit = await runCli(['analyze', path.join(tmp, 'r4'), '--base', small]);
    assert.equal(misfit.code, 1);
    assert.match(misfit.stderr, /r4\/adapter_model\.safetensors: base_model\.model\.transformer\.h\.1\.attn\.c_attn\.lora_A\.weight: module transformer\.h\.1\.attn\.c_attn does not exist/);
    for (const r of [missing, misfit]) assert.doesNotMatch(r.stderr, /^\s+at /m);
  });
});
