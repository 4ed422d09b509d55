/**
 * A quick guard for the model and adapter readers: ~200 seeded mutations of a valid file per reader (bit flips,
 * truncation, a field replaced with null / [] / {} / "x" / -1 / 1.5 / 1e300 / 2**53 / "NaN" / deep nesting, a key
 * removed) must each either load or throw LoraStudioError — never another exception. The project-wide fuzz suite
 * lives in test/unit/fuzz/; this one stays small and fast.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LoraStudioError } from '../../../trainer/errors';
import { readShardIndex } from '../../../trainer/io/hf_folder';
import { loadModelFolder } from '../../../trainer/models/gpt2/folder';
import { loadAdapter, saveAdapter } from '../../../trainer/lora/adapter_io';
import { readConfig } from '../../../trainer/models/gpt2/config';
import { writeRandomGPT2 } from '../../../trainer/models/gpt2/random_init';
import { gpt2WeightShapes } from '../../../trainer/models/gpt2/weights';
import { loadTokenizer } from '../../../trainer/tokenizer/tokenizer';
import { Rng } from '../../../trainer/util/rng';
import { randomAdapter } from './helpers';

const ROUNDS = 200;
const REPLACEMENTS: unknown[] = [null, [], {}, 'x', -1, 1.5, 1e300, 2 ** 53, 'NaN', '__proto__', true];
const DEEP = '['.repeat(200) + ']'.repeat(200);

let tmp: string;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-mut-')); });
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng.next() * xs.length) % xs.length];

/** Every path (list of keys) into a JSON value, breadth-first, at most `limit` of them. */
function paths(root: unknown, limit = 2000): Array<Array<string | number>> {
  const out: Array<Array<string | number>> = [];
  const queue: Array<[unknown, Array<string | number>]> = [[root, []]];
  while (queue.length && out.length < limit) {
    const [v, p] = queue.shift()!;
    if (p.length) out.push(p);
    if (v && typeof v === 'object') for (const k of Object.keys(v)) queue.push([(v as Record<string, unknown>)[k], [...p, Array.isArray(v) ? Number(k) : k]]);
  }
  return out;
}

/** One seeded mutation of JSON text: structural (replace or remove a field) or textual (truncate, flip a bit). */
function mutateJson(text: string, rng: Rng): { text: string; what: string } {
  const kind = rng.next();
  if (kind < 0.7) {
    const value = JSON.parse(text);
    const ps = paths(value);
    if (ps.length === 0) return { text: 'null', what: 'null' };
    const p = pick(rng, ps);
    let parent = value;
    for (const k of p.slice(0, -1)) parent = parent[k];
    const last = p[p.length - 1];
    if (rng.next() < 0.15 && !Array.isArray(parent)) {
      delete parent[last];
      return { text: JSON.stringify(value), what: `delete ${p.join('.')}` };
    }
    const marker = '"__DEEP__"';
    const r = rng.next() < 0.1 ? marker : pick(rng, REPLACEMENTS);
    parent[last] = r === marker ? '__DEEP__' : r;
    return { text: JSON.stringify(value).replace(marker, DEEP), what: `${p.join('.')} = ${r === marker ? 'deep' : JSON.stringify(r)}` };
  }
  const buf = Buffer.from(text);
  if (kind < 0.85) {
    const at = Math.floor(rng.next() * buf.length);
    return { text: buf.subarray(0, at).toString(), what: `truncate at ${at}` };
  }
  const at = Math.floor(rng.next() * buf.length);
  buf[at] ^= 1 << Math.floor(rng.next() * 8);
  return { text: buf.toString(), what: `bit flip at ${at}` };
}

/** One seeded mutation of a binary (safetensors) file: bit flips (mostly in the header), truncation, header length. */
function mutateBinary(bytes: Buffer, rng: Rng): { bytes: Buffer; what: string } {
  const b = Buffer.from(bytes);
  const headerEnd = 8 + Number(b.readBigUInt64LE(0));
  const kind = rng.next();
  if (kind < 0.6) {
    const flips = 1 + Math.floor(rng.next() * 3);
    const at: number[] = [];
    for (let i = 0; i < flips; i++) {
      const pos = Math.floor(rng.next() * (rng.next() < 0.8 ? headerEnd : b.length));
      b[pos] ^= 1 << Math.floor(rng.next() * 8);
      at.push(pos);
    }
    return { bytes: b, what: `bit flips at ${at.join(',')}` };
  }
  if (kind < 0.8) {
    const at = Math.floor(rng.next() * b.length);
    return { bytes: b.subarray(0, at), what: `truncate at ${at}` };
  }
  const len = pick(rng, [0n, 1n, 7n, BigInt(headerEnd - 9), BigInt(headerEnd - 7), BigInt(b.length), 2n ** 63n, 100_000_001n]);
  b.writeBigUInt64LE(len, 0);
  return { bytes: b, what: `header length ${len}` };
}

/** Runs `read` on each mutation; a LoraStudioError or success is fine, anything else fails with the mutation. */
function survive(file: string, mutate: (rng: Rng) => { data: string | Buffer; what: string }, read: () => unknown, seed: number): void {
  const original = fs.readFileSync(file);
  const rng = new Rng(seed);
  const counts = { ok: 0, refused: 0 };
  try {
    for (let i = 0; i < ROUNDS; i++) {
      const m = mutate(rng);
      fs.writeFileSync(file, m.data);
      try {
        read();
        counts.ok++;
      } catch (e) {
        if (!(e instanceof LoraStudioError)) assert.fail(`${path.basename(file)}, mutation ${i} (${m.what}): ${(e as Error)?.stack ?? String(e)}`);
        assert.ok(e.message.length < 2000, `${path.basename(file)}, mutation ${i} (${m.what}): message of ${e.message.length} chars`);
        counts.refused++;
      }
    }
  } finally {
    fs.writeFileSync(file, original);
  }
  assert.ok(counts.refused > 0, 'no mutation was refused: the loop tests nothing');
}

describe('seeded mutations of valid files: load or LoraStudioError, nothing else', () => {
  let model: string;
  let shardModel: string;
  let adapter: string;
  before(() => {
    model = path.join(tmp, 'model');
    const config = writeRandomGPT2(model, { seed: 1, task: 'seq-cls', num_labels: 2 });
    fs.writeFileSync(path.join(model, 'tokenizer_config.json'), JSON.stringify({
      bos_token: '<|endoftext|>', eos_token: { content: '<|endoftext|>', __type: 'AddedToken' }, unk_token: '<|endoftext|>',
      model_max_length: 1024, clean_up_tokenization_spaces: false, additional_special_tokens: [], tokenizer_class: 'GPT2Tokenizer',
    }));
    shardModel = path.join(tmp, 'sharded');
    writeRandomGPT2(shardModel, { seed: 1, shards: 2 });
    adapter = path.join(tmp, 'adapter');
    const shapes = gpt2WeightShapes(config, 'seq-cls', 2);
    const a = randomAdapter(shapes, ['transformer.h.0.attn.c_attn', 'transformer.h.1.mlp.c_fc'], 'seq-cls', { r: 2, rank_pattern: { 'h\\.1\\..*': 2 }, alpha_pattern: { c_fc: 4 } });
    a.extra.set('score.weight', { shape: [2, config.n_embd], data: new Float32Array(2 * config.n_embd), dtype: 'F32' });
    saveAdapter(adapter, { ...a, metadata: { id2label: '{"0": "neg", "1": "pos"}', label2id: '{"neg": 0, "pos": 1}' } });
  });
  /** Mutations of the file's valid content as read now (before the loop starts). */
  const json = (file: string) => {
    const text = fs.readFileSync(file, 'utf8');
    return (rng: Rng) => ((m) => ({ data: m.text, what: m.what }))(mutateJson(text, rng));
  };
  const binary = (file: string) => {
    const bytes = fs.readFileSync(file);
    return (rng: Rng) => ((m) => ({ data: m.bytes, what: m.what }))(mutateBinary(bytes, rng));
  };

  it('config.json (readConfig and loadModelFolder)', () => {
    const f = path.join(model, 'config.json');
    survive(f, json(f), () => loadModelFolder(model), 11);
    assert.equal(readConfig(model).n_layer, 2);
  });

  it('model.safetensors and model.safetensors.index.json', () => {
    const w = path.join(model, 'model.safetensors');
    survive(w, binary(w), () => loadModelFolder(model), 12);
    const index = path.join(shardModel, 'model.safetensors.index.json');
    survive(index, json(index), () => { readShardIndex(index); loadModelFolder(shardModel); }, 13);
  });

  it('adapter_config.json and adapter_model.safetensors', () => {
    const cfg = path.join(adapter, 'adapter_config.json');
    survive(cfg, json(cfg), () => loadAdapter(adapter), 14);
    const w = path.join(adapter, 'adapter_model.safetensors');
    survive(w, binary(w), () => loadAdapter(adapter), 15);
  });

  it('tokenizer.json and tokenizer_config.json (load, encode, decode)', () => {
    const use = () => {
      const t = loadTokenizer(model);
      t.decode(t.encode('Hello wörld <|endoftext|>'));
    };
    for (const [name, seed] of [['tokenizer.json', 16], ['tokenizer_config.json', 17]] as const) {
      const f = path.join(model, name);
      survive(f, json(f), use, seed);
    }
  });
});
