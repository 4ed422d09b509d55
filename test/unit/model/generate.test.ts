/**
 * Generation: the sampler against hand-computed transformers semantics (temperature, then top-k with ties kept,
 * then the top-p nucleus; frequencies of seeded draws), GPT-2's KV-cache decoder against lastLogits on the whole
 * sequence (and the float64 reference) token by token in both kernel modes, and generate() with and without the
 * decoder: greedy equal, top-k 1 and a tiny top-p equal greedy, sampled tokens inside the set the test computes
 * from the softmax itself, eos (one id or several), n_positions, seeds.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { generate, type GenerateOptions } from '../../../trainer/eval';
import { nextToken, checkSamplingOptions } from '../../../trainer/sampling';
import { LoraStudioError } from '../../../trainer/errors';
import type { Decoder, Kernels, LoraModel } from '../../../trainer/models/family';
import { GPT2LoraModel } from '../../../trainer/models/gpt2/model';
import { collate } from '../../../trainer/data/collate';
import { Rng } from '../../../trainer/util/rng';
import { refCausalLogits } from '../../reference/gpt2_f64';
import { PAD, randomRows, refOf, relErr, specOf, tinySetup, useBackend } from './tiny';

const VOCAB = 257;

/** softmax of row / temperature, float64 */
function probabilities(row: ArrayLike<number>, temperature: number): number[] {
  const s = Array.from(row, (v) => v / temperature);
  const max = Math.max(...s);
  const e = s.map((v) => Math.exp(v - max));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/**
 * The tokens top-k then top-p may keep, written from the definitions (not from sampling.ts): `sure` must be
 * kept, `maybe` are those within `slack` of the top-p boundary (float rounding may go either way there).
 */
function allowedSet(row: ArrayLike<number>, temperature: number, topK: number, topP: number, slack = 1e-4): { sure: Set<number>; maybe: Set<number> } {
  const p = probabilities(row, temperature);
  const byProb = p.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]);
  const k = topK > 0 ? topK : byProb.length;
  const kth = byProb[k - 1][0];
  const afterK = byProb.filter(([v]) => v >= kth);
  const z = afterK.reduce((a, [v]) => a + v, 0);
  const sure = new Set<number>();
  const maybe = new Set<number>();
  let before = 0;
  for (const [v, i] of afterK) {
    if (sure.size === 0 || before < topP - slack) sure.add(i);
    else if (before < topP + slack) maybe.add(i);
    before += v / z;
  }
  return { sure, maybe };
}

/** The model with its decoder hidden: generate() takes the whole-sequence path. */
function withoutDecoder(model: LoraModel): LoraModel {
  const m = Object.create(model) as LoraModel & { decoder?: unknown };
  m.decoder = undefined;
  return m;
}

/** The model with its decoder wrapped: records how many tokens each feed takes and how often it is disposed. */
function spied(model: LoraModel): { model: LoraModel; feeds: number[]; disposed: () => number; lastLogitsCalls: () => number } {
  const feeds: number[] = [];
  let disposed = 0;
  let lastLogitsCalls = 0;
  const m = Object.create(model) as LoraModel;
  m.decoder = (): Decoder => {
    const d = model.decoder!();
    return { feed: (ids) => (feeds.push(ids.length), d.feed(ids)), dispose: () => (disposed++, d.dispose()) };
  };
  m.lastLogits = (b) => (lastLogitsCalls++, model.lastLogits(b));
  return { model: m, feeds, disposed: () => disposed, lastLogitsCalls: () => lastLogitsCalls };
}

async function lastLogitsOf(model: LoraModel, ids: number[]): Promise<Float32Array> {
  const t = model.lastLogits(collate([{ input_ids: ids }], PAD));
  const row = (await t.data()) as Float32Array;
  t.dispose();
  return row;
}

describe('sampling (transformers: temperature, top-k, top-p, multinomial)', () => {
  const draws = (row: number[], o: Parameters<typeof nextToken>[1], n: number, seed = 1) => {
    const rng = new Rng(seed);
    const count = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const t = nextToken(row, o, rng);
      count.set(t, (count.get(t) ?? 0) + 1);
    }
    return count;
  };
  const logs = (ps: number[]) => ps.map(Math.log);

  it('temperature 0 is argmax with the lowest id on ties; top-k and top-p do not matter then', () => {
    const rng = new Rng(3);
    assert.equal(nextToken([1, 5, 5, 2], { temperature: 0 }, rng), 1);
    assert.equal(nextToken([1, 5, 5, 2], { temperature: 0, top_k: 4, top_p: 0.99 }, rng), 1);
    assert.equal(nextToken([-3, -1, -2], { temperature: 0, top_k: 0, top_p: 1 }, rng), 1);
  });

  it('top-p keeps the fewest most probable tokens reaching p, renormalised (probabilities .5 .3 .15 .05)', () => {
    const row = logs([0.15, 0.5, 0.05, 0.3]); // ids 1, 3, 0, 2 by probability
    const n = 20000;
    // p 0.7: {1, 3} (0.5 < 0.7 ≤ 0.8), frequencies 0.625 / 0.375
    const c = draws(row, { temperature: 1, top_p: 0.7 }, n);
    assert.deepEqual([...c.keys()].sort(), [1, 3]);
    assert.ok(Math.abs(c.get(1)! / n - 0.625) < 0.015, `${c.get(1)! / n}`);
    // p 0.45: the most probable alone; p 0.9: three tokens; p 1: all four, at their own frequencies
    assert.deepEqual([...draws(row, { temperature: 1, top_p: 0.45 }, 500).keys()], [1]);
    assert.deepEqual([...draws(row, { temperature: 1, top_p: 0.9 }, 2000).keys()].sort(), [0, 1, 3]);
    const all = draws(row, { temperature: 1, top_p: 1 }, n);
    for (const [id, p] of [[0, 0.15], [1, 0.5], [2, 0.05], [3, 0.3]]) assert.ok(Math.abs(all.get(id)! / n - p) < 0.015, `id ${id}: ${all.get(id)! / n}`);
  });

  it('top-k keeps the k largest and every token tied with the k-th (transformers removes only scores below it)', () => {
    assert.deepEqual([...draws([0, 3, 1, 2, 3], { temperature: 1, top_k: 2 }, 400).keys()].sort(), [1, 4]);
    assert.deepEqual([...draws([0, 3, 2, 2, 1], { temperature: 1, top_k: 2 }, 800).keys()].sort(), [1, 2, 3]);
    assert.deepEqual([...draws([0, 3, 2, 2, 1], { temperature: 1, top_k: 1 }, 400).keys()], [1]);
  });

  it('temperature first, then top-k, then top-p over what top-k left', () => {
    // probabilities .4 .3 .2 .1; top-k 3 leaves .4 .3 .2, renormalised .444 .333 .222; top-p .7 then keeps {0, 1}
    const row = logs([0.4, 0.3, 0.2, 0.1]);
    assert.deepEqual([...draws(row, { temperature: 1, top_k: 3, top_p: 0.7 }, 2000).keys()].sort(), [0, 1]);
    // without top-k, top-p .75 needs a third (0.4 + 0.3 < 0.75); with top-k 3 it does not (0.444 + 0.333 ≥ 0.75)
    assert.deepEqual([...draws(row, { temperature: 1, top_p: 0.75 }, 2000).keys()].sort(), [0, 1, 2]);
    assert.deepEqual([...draws(row, { temperature: 1, top_k: 3, top_p: 0.75 }, 2000).keys()].sort(), [0, 1]);
    // temperature 0.2 makes the probabilities p⁵ normalised, id 0 at 0.79: top-p 0.75 keeps it alone (at 1: {0, 1})
    assert.deepEqual([...draws(row, { temperature: 0.2, top_p: 0.75 }, 2000).keys()], [0]);
    // a high temperature flattens (0.253 0.252 0.249 0.246): 0.75 needs three of four
    assert.deepEqual([...draws(row, { temperature: 50, top_p: 0.75 }, 2000).keys()].sort(), [0, 1, 2]);
  });

  it('refuses values transformers refuses, naming the field', () => {
    const bad: Array<[Parameters<typeof checkSamplingOptions>[0], string]> = [
      [{ temperature: -1 }, 'temperature'], [{ temperature: NaN }, 'temperature'],
      [{ temperature: 1, top_k: -1 }, 'top_k'], [{ temperature: 1, top_k: 1.5 }, 'top_k'],
      [{ temperature: 1, top_p: 0 }, 'top_p'], [{ temperature: 1, top_p: 1.01 }, 'top_p'], [{ temperature: 1, top_p: NaN }, 'top_p'],
    ];
    for (const [o, field] of bad) assert.throws(() => checkSamplingOptions(o), (e) => e instanceof LoraStudioError && e.field === field, JSON.stringify(o));
    checkSamplingOptions({ temperature: 0, top_k: 0, top_p: 1 });
  });
});

for (const backend of ['wasm', 'cpu'] as const) {
  for (const kernels of ['fast', 'reference'] as Kernels[]) {
    describe(`GPT-2 KV-cache decoder and generate (${backend}, ${kernels} kernels)`, () => {
      before(() => useBackend(backend));
      const setup = (seed: number, headLora = false) => {
        const s = tinySetup('causal-lm', { seed, headLora });
        return { s, model: GPT2LoraModel.create(specOf(s, { kernels })) };
      };

      it('feed() gives the logits lastLogits gives on the whole sequence, token by token (LoRA with non-zero B, lm_head too)', async () => {
        for (const headLora of [false, true]) {
          const { s, model } = setup(3, headLora);
          const ref = refOf(s);
          const seq = randomRows([32], 21)[0];
          const before = tf.memory().numTensors;
          const dec = model.decoder!();
          // the prompt (5), then one token at a time, then 3 at once, then one at a time up to n_positions
          const chunks = [5, ...Array(10).fill(1), 3, ...Array(14).fill(1)];
          let at = 0;
          for (const n of chunks) {
            const got = await dec.feed(seq.slice(at, at + n));
            at += n;
            assert.equal(got.length, VOCAB);
            const want = await lastLogitsOf(model, seq.slice(0, at));
            assert.ok(relErr(got, want) < 1e-4, `position ${at - 1}: ${relErr(got, want)}`);
            if (at % 8 === 0) assert.ok(relErr(got, refCausalLogits(ref, seq.slice(0, at)).subarray((at - 1) * VOCAB)) < 1e-4, `reference at ${at - 1}`);
          }
          assert.equal(at, 32);
          await assert.rejects(dec.feed([1]), (e) => e instanceof LoraStudioError && /n_positions/.test(`${e.field} ${e.message}`));
          dec.dispose();
          dec.dispose();
          assert.equal(tf.memory().numTensors, before, 'the cache is freed');
          await assert.rejects(model.decoder!().feed(randomRows([33], 2)[0]), LoraStudioError);
          model.dispose();
        }
      });

      it('greedy generate with the decoder equals the whole-sequence path; the prompt is fed once, then one token per step', async () => {
        const { model } = setup(2);
        const prompt = [10, 20, 30, 40];
        const opts: GenerateOptions = { max_new_tokens: 8, temperature: 0, seed: 0 };
        const spy = spied(model);
        const out = await generate(spy.model, prompt, opts);
        assert.equal(out.length, 8);
        assert.deepEqual(spy.feeds, [4, 1, 1, 1, 1, 1, 1, 1], 'the last token is never fed');
        assert.equal(spy.disposed(), 1);
        assert.equal(spy.lastLogitsCalls(), 0);
        assert.deepEqual(await generate(withoutDecoder(model), prompt, opts), out);
        // sampled too: the same seed gives the same tokens on both paths
        const sampled: GenerateOptions = { max_new_tokens: 8, temperature: 1.3, top_k: 50, top_p: 0.9, seed: 5 };
        assert.deepEqual(await generate(model, prompt, sampled), await generate(withoutDecoder(model), prompt, sampled));
        // up to n_positions (32): a 30-token prompt leaves two
        const long = randomRows([30], 4)[0];
        assert.deepEqual(await generate(model, long, { ...opts, max_new_tokens: 10 }), await generate(withoutDecoder(model), long, { ...opts, max_new_tokens: 10 }));
        assert.equal((await generate(model, long, { ...opts, max_new_tokens: 10 })).length, 2);
        model.dispose();
      });

      it('top-k 1 and a tiny top-p give the greedy tokens at any temperature and seed', async () => {
        const { model } = setup(4);
        const prompt = [7, 8, 9];
        const greedy = await generate(model, prompt, { max_new_tokens: 6, temperature: 0, seed: 0 });
        for (const seed of [1, 2, 3]) {
          assert.deepEqual(await generate(model, prompt, { max_new_tokens: 6, temperature: 2, top_k: 1, seed }), greedy);
          assert.deepEqual(await generate(model, prompt, { max_new_tokens: 6, temperature: 2, top_p: 1e-6, seed }), greedy);
        }
        model.dispose();
      });

      it('sampled tokens always lie in the top-k / top-p set computed from the softmax; seeds repeat', async () => {
        const { model } = setup(5);
        const prompt = [100, 3, 250];
        const cases: Array<Pick<GenerateOptions, 'temperature' | 'top_k' | 'top_p'>> = [
          { temperature: 1, top_k: 3 }, { temperature: 2, top_p: 0.3 }, { temperature: 1.5, top_k: 20, top_p: 0.5 },
        ];
        for (const c of cases) {
          const seen = new Set<number>();
          for (let seed = 0; seed < 6; seed++) {
            const opts = { ...c, max_new_tokens: 6, seed };
            const out = await generate(model, prompt, opts);
            assert.deepEqual(await generate(model, prompt, opts), out, 'same seed, same tokens');
            for (let i = 0; i < out.length; i++) {
              const row = await lastLogitsOf(model, [...prompt, ...out.slice(0, i)]);
              const { sure, maybe } = allowedSet(row, c.temperature, c.top_k ?? 0, c.top_p ?? 1);
              assert.ok(sure.has(out[i]) || maybe.has(out[i]), `${JSON.stringify(c)} seed ${seed} step ${i}: ${out[i]} ∉ {${[...sure]}}`);
              if (i === 0) seen.add(out[i]);
            }
          }
          // the cut leaves a choice here, and the seeds use it (the check above is not vacuous)
          assert.ok(seen.size > 1, `${JSON.stringify(c)}: every seed drew ${[...seen]}`);
        }
        model.dispose();
      });

      it('stops at eos: one id or several, the eos token included; an absent id changes nothing', async () => {
        const { model } = setup(6);
        const prompt = [1, 2, 3];
        const base: GenerateOptions = { max_new_tokens: 10, temperature: 1, seed: 11 };
        const out = await generate(model, prompt, base);
        assert.equal(out.length, 10);
        const upTo = (id: number) => out.slice(0, out.indexOf(id) + 1);
        assert.deepEqual(await generate(model, prompt, { ...base, eos_token_id: out[4] }), upTo(out[4]));
        const first = Math.min(out.indexOf(out[6]), out.indexOf(out[3]));
        assert.deepEqual(await generate(model, prompt, { ...base, eos_token_id: [out[6], out[3]] }), out.slice(0, first + 1));
        const absent = Array.from({ length: VOCAB }, (_, i) => i).find((i) => !out.includes(i))!;
        assert.deepEqual(await generate(model, prompt, { ...base, eos_token_id: [absent] }), out);
        const spy = spied(model);
        await generate(spy.model, prompt, { ...base, eos_token_id: out[0] });
        assert.deepEqual(spy.feeds, [3], 'nothing is fed after eos');
        assert.equal(spy.disposed(), 1);
        model.dispose();
      });
    });
  }
}
