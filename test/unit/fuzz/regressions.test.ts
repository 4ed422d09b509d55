/**
 * Minimal inputs of the known bug classes (cases.ts), each run in the fuzz worker (heap limit, watchdog): each must
 * end in a LoraStudioError naming the file and the field within the watchdog's time (LORA_FUZZ_HANG_MS, 5 s), or
 * read, where the case says so. A failing case's input is kept under test-results/fuzz/regression-<name>/.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { CASES } from './cases';
import { cleanup, runJob } from './harness';
import type { CaseResult } from './protocol';

after(cleanup);

function show(r: CaseResult): string {
  const lines = [`${r.kind ?? r.status}: ${r.name ?? ''}: ${(r.message ?? '').split('\n')[0].slice(0, 300)}`];
  if (r.describe) lines.push(`describe(): ${r.describe.split('\n')[0].slice(0, 300)}`);
  if (r.savedAt) lines.push(`input kept in ${r.savedAt}/`);
  lines.push(...(r.stack ?? '').split('\n').filter((l) => /^\s+at /.test(l)).slice(0, 4).map((l) => l.trim()));
  return lines.join('\n    ');
}

describe('regressions: minimal inputs of the known bug classes', () => {
  let results: CaseResult[] = [];
  before(async () => {
    results = await runJob({ mode: 'cases', seed: 0, cases: CASES.map((c) => c.name) });
  });
  for (const c of CASES) {
    it(c.name, () => {
      const r = results.find((x) => x.desc === c.name);
      const harness = results.filter((x) => x.kind === 'harness error').map((x) => x.message);
      assert.ok(r, `no result (the worker never reached this case)${harness.length ? `: ${harness.join('; ')}` : ''}`);
      const expect = c.expect ?? 'error';
      if (r.status === 'finding') assert.fail(`${c.reader}: ${show(r)}`);
      if (expect === 'read') assert.equal(r.status, 'ok', `expected it to read; got ${show(r)}`);
      if (expect === 'error') assert.equal(r.status, 'lse', 'expected a LoraStudioError naming the file and the field; it read without one');
      if (r.status === 'lse') {
        assert.equal(path.basename(r.file ?? ''), c.file, `the error names ${r.file}, not ${c.file}: ${r.describe}`);
        assert.ok(r.describe!.includes(c.field), `the error does not name the field ${c.field}: ${r.describe}`);
      }
    });
  }
});
