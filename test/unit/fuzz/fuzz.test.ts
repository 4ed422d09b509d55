/**
 * The fuzz suite (issue 11): seeded, mutated inputs through every reader, in a worker thread with a heap limit and a
 * watchdog. Each input must end in success or a LoraStudioError that names a file; anything else (another exception,
 * an unhandled rejection, a hang, running out of memory, a large allocation driven by a size field) is a finding,
 * printed with its mutation and kept under test-results/fuzz/ with a replay command.
 *
 * LORA_FUZZ_COUNT=N (inputs per reader, default 100) and LORA_FUZZ_SEED=S run a longer or different campaign;
 * LORA_FUZZ_ONLY=<reader slug>:<index> replays one input and prints its outcome.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { COUNT, SEED, cleanup, formatFindings, runJob, seedLibrary, slug } from './harness';
import type { CaseResult } from './protocol';
import { READERS } from './readers';
import { FIXTURES_ABSENT_MESSAGE, FIXTURES_PRESENT } from './seeds';

after(cleanup);

const only = process.env.LORA_FUZZ_ONLY ? /^(.*):(\d+)$/.exec(process.env.LORA_FUZZ_ONLY) : null;

/** For each reader: its seeds unmutated (each must read without error), then COUNT mutated inputs. */
function plan(): Array<{ reader: string; index: number }> {
  const lib = seedLibrary();
  const out: Array<{ reader: string; index: number }> = [];
  for (const reader of READERS) {
    if (only && only[1] !== slug(reader.name)) continue;
    if (only) out.push({ reader: reader.name, index: Number(only[2]) });
    else {
      reader.seeds(lib).forEach((_, i) => out.push({ reader: reader.name, index: -1 - i }));
      for (let i = 0; i < COUNT; i++) out.push({ reader: reader.name, index: i });
    }
  }
  return out;
}

describe(`fuzz: ${COUNT} mutated inputs per reader, seed ${SEED}`, () => {
  let results: CaseResult[] = [];
  const t0 = Date.now();
  before(async () => {
    results = await runJob({ mode: 'fuzz', seed: SEED, plan: plan() });
    console.log(`fuzz campaign: ${results.length} inputs in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    if (only) console.log(JSON.stringify(results, null, 2));
  });
  it('seeds from ../shared/fixtures (real PEFT adapters, GPT-2 tokenizer.json)', { skip: FIXTURES_PRESENT ? false : FIXTURES_ABSENT_MESSAGE }, () => {});
  for (const reader of READERS) {
    if (only && only[1] !== slug(reader.name)) continue;
    it(reader.name, () => {
      const mine = results.filter((r) => r.reader === reader.name);
      const seedFailures = mine.filter((r) => r.index < 0 && r.status !== 'ok');
      assert.equal(seedFailures.length, 0, `a valid seed does not read: ${seedFailures.map((r) => `${r.desc}: ${r.name}: ${r.message}`).join('; ')}`);
      const fuzzed = mine.filter((r) => r.index >= 0);
      const findings = fuzzed.filter((r) => r.status === 'finding');
      const errors = fuzzed.filter((r) => r.status === 'lse').length;
      const slow = fuzzed.reduce((a, r) => (r.ms > a.ms ? r : a), fuzzed[0]);
      console.log(`${reader.name}: ${fuzzed.length} inputs, ${fuzzed.length - errors - findings.length} read, ${errors} LoraStudioError, ${findings.length} finding(s); slowest ${slow?.ms.toFixed(0)} ms (input ${slow?.index})`);
      if (findings.length) assert.fail(formatFindings(reader.name, fuzzed));
    });
  }
});
