/**
 * prepareData end to end with the byte-level test tokenizer (GPT-2's byte ids: "!" is 0, printable ASCII
 * byte b is id b - 33, "Ġ" (space) is 220, <|endoftext|> is 256): formats, labels, bad rows and their
 * limit, truncation, the seeded eval split, packing, and path resolution.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { prepareData, type PrepareOptions } from '../../../trainer/data/prepare';
import type { DataSpec } from '../../../trainer/data/types';
import { byteLevelTokenizerJson } from '../../../trainer/tokenizer/byte_level';
import { loadTokenizer } from '../../../trainer/tokenizer/tokenizer';
import { LoraStudioError } from '../../../trainer/errors';
import { execFileSync } from 'node:child_process';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
fs.mkdirSync(path.join(dir, 'tok'));
fs.writeFileSync(path.join(dir, 'tok', 'tokenizer.json'), JSON.stringify(byteLevelTokenizerJson()));
const tokenizer = loadTokenizer(path.join(dir, 'tok'));
const EOS = 256;

/** GPT-2 byte ids for printable ASCII and space */
function ids(text: string): number[] {
  return [...Buffer.from(text)].map((b) => {
    if (b === 32) return 220;
    assert.ok(b >= 33 && b <= 126, 'test texts are printable ASCII');
    return b - 33;
  });
}

let n = 0;
function write(name: string, content: string | Uint8Array, sub = ''): string {
  const folder = path.join(dir, sub);
  fs.mkdirSync(folder, { recursive: true });
  const file = path.join(folder, `${n++}-${name}`);
  fs.writeFileSync(file, content);
  return file;
}
function jsonl(rows: unknown[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
}
function spec(train: string, over: Partial<DataSpec> = {}): DataSpec {
  return { train, eval: null, text_column: 'text', label_column: 'label', max_length: 64, eval_split: 0, max_bad_rows_ratio: 0, ...over };
}
const OPTS: PrepareOptions = { seed: 42, eos_token_id: EOS };

function expectError(fn: () => Promise<unknown>, check: (e: LoraStudioError) => void): Promise<void> {
  return assert.rejects(fn(), (e: unknown) => {
    assert.ok(e instanceof LoraStudioError, `expected a LoraStudioError, got ${e}`);
    check(e);
    return true;
  });
}

describe('formats round trip through prepareData', () => {
  const texts = ['hello', 'a b', 'x,y "q"'];
  const files: Record<string, string> = {
    jsonl: jsonl(texts.map((text) => ({ text }))),
    json: JSON.stringify(texts.map((text) => ({ text }))),
    csv: 'text\n' + texts.map((t) => (/[,"]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t)).join('\n') + '\n',
    tsv: 'text\n' + texts.join('\n') + '\n',
    txt: texts.join('\n') + '\n',
  };
  for (const [ext, content] of Object.entries(files)) {
    it(`.${ext}`, async () => {
      const data = await prepareData(spec(write(`d.${ext}`, content)), 'causal-lm', tokenizer, OPTS);
      assert.deepEqual(data.train, texts.map((t) => ({ input_ids: ids(t) })));
      assert.deepEqual(data.eval, []);
      assert.equal(data.id2label, undefined);
      assert.equal(data.report.files[0].rows, 3);
      assert.deepEqual(data.report.files[0].bad, []);
    });
  }
});

describe('labels', () => {
  it('string labels get ids in sorted order, the same in train and eval', async () => {
    const train = write('t.jsonl', jsonl([{ text: 'a', label: 'pos' }, { text: 'b', label: 'neg' }, { text: 'c', label: 'neutral' }, { text: 'd', label: 'Zed' }]));
    const evalFile = write('e.csv', 'text,label\ne,neutral\nf,Zed\ng,pos\n');
    const data = await prepareData(spec(train, { eval: evalFile }), 'seq-cls', tokenizer, OPTS);
    // code point order: uppercase before lowercase, as Python's sorted()
    assert.deepEqual({ ...data.id2label }, { '0': 'Zed', '1': 'neg', '2': 'neutral', '3': 'pos' });
    assert.deepEqual({ ...data.label2id }, { Zed: 0, neg: 1, neutral: 2, pos: 3 });
    assert.deepEqual(data.train.map((e) => e.label), [3, 1, 2, 0]);
    assert.deepEqual(data.eval.map((e) => e.label), [2, 0, 3]);
    assert.deepEqual(data.eval.map((e) => e.input_ids), [ids('e'), ids('f'), ids('g')]);
  });

  it('an eval label the training data lacks is an error naming the file, line and value', async () => {
    const train = write('t.jsonl', jsonl([{ text: 'a', label: 'pos' }, { text: 'b', label: 'neg' }]));
    const evalFile = write('e.jsonl', jsonl([{ text: 'c', label: 'pos' }, { text: 'd', label: 'meh' }]));
    await expectError(
      () => prepareData(spec(train, { eval: evalFile }), 'seq-cls', tokenizer, OPTS),
      (e) => {
        assert.equal(e.file, evalFile);
        assert.equal(e.field, 'data.eval');
        assert.match(e.message, /line 2: label "meh" does not occur in the training data/);
      },
    );
  });

  it('integer labels are ids named LABEL_i; ids ≥ num_labels are bad rows', async () => {
    const train = write('t.jsonl', jsonl([{ text: 'a', label: 0 }, { text: 'b', label: 2 }, { text: 'c', label: 1 }, { text: 'd', label: 3 }]));
    const data = await prepareData(spec(train, { max_bad_rows_ratio: 0.5 }), 'seq-cls', tokenizer, { ...OPTS, num_labels: 3 });
    assert.deepEqual({ ...data.id2label }, { '0': 'LABEL_0', '1': 'LABEL_1', '2': 'LABEL_2' });
    assert.deepEqual({ ...data.label2id }, { LABEL_0: 0, LABEL_1: 1, LABEL_2: 2 });
    assert.deepEqual(data.train.map((e) => e.label), [0, 2, 1]);
    assert.deepEqual(data.report.files[0].bad, [{ line: 4, reason: 'label 3 is out of range: num_labels is 3 (ids 0..2)' }]);
  });

  it('without num_labels the ids run to the largest label', async () => {
    const train = write('t.jsonl', jsonl([{ text: 'a', label: 0 }, { text: 'b', label: 2 }]));
    const data = await prepareData(spec(train), 'seq-cls', tokenizer, OPTS);
    assert.deepEqual(Object.keys(data.id2label!), ['0', '1', '2']);
    assert.ok(data.report.warnings.some((w) => /label id\(s\) 1 never occur/.test(w)));
  });

  it('CSV labels that are all whole numbers are ids, not strings', async () => {
    const train = write('t.csv', 'text,label\na,1\nb,0\nc,10\n');
    const data = await prepareData(spec(train), 'seq-cls', tokenizer, OPTS);
    assert.deepEqual(data.train.map((e) => e.label), [1, 0, 10]);
    assert.equal(Object.keys(data.id2label!).length, 11);
  });

  it('a label of the other kind than the first one is a bad row', async () => {
    const train = write('t.jsonl', jsonl([{ text: 'a', label: 'x' }, { text: 'b', label: 1 }, { text: 'c', label: 'y' }]));
    const data = await prepareData(spec(train, { max_bad_rows_ratio: 0.5 }), 'seq-cls', tokenizer, OPTS);
    assert.deepEqual(data.report.files[0].bad, [{ line: 2, reason: 'label 1 is an integer, but the training labels are strings' }]);
    assert.deepEqual({ ...data.id2label }, { '0': 'x', '1': 'y' });
  });

  it('string labels outnumbering num_labels is an error', async () => {
    const train = write('t.jsonl', jsonl([{ text: 'a', label: 'x' }, { text: 'b', label: 'y' }, { text: 'c', label: 'z' }]));
    await expectError(() => prepareData(spec(train), 'seq-cls', tokenizer, { ...OPTS, num_labels: 2 }), (e) => assert.match(e.message, /3 distinct labels but num_labels is 2/));
  });
});

describe('bad rows', () => {
  const badLines = Buffer.concat([
    Buffer.from(
      jsonl([
        { text: 'good', label: 'a' }, // 1
        { txt: 'no text column', label: 'a' }, // 2
        { text: 7, label: 'a' }, // 3
        { text: '   ', label: 'a' }, // 4
        { text: 'no label' }, // 5
        { text: 'float label', label: 1.5 }, // 6
        { text: 'bool label', label: true }, // 7
      ]),
    ),
    Buffer.from('{"text": "broken json\n'), // 8
    Buffer.from('{"text":"bad '),
    Buffer.from([0xc3, 0x28]), // 9: invalid UTF-8
    Buffer.from('","label":"a"}\n'),
    Buffer.from(jsonl([{ text: 'good too', label: 'b' }])), // 10
  ]);

  it('each has its reason and line number in the report', async () => {
    const file = write('bad.jsonl', badLines);
    const data = await prepareData(spec(file, { max_bad_rows_ratio: 1 }), 'seq-cls', tokenizer, OPTS);
    const bad = data.report.files[0].bad;
    assert.deepEqual(
      bad.map((b) => b.line),
      [2, 3, 4, 5, 6, 7, 8, 9],
    );
    const reasons = Object.fromEntries(bad.map((b) => [b.line, b.reason]));
    assert.equal(reasons[2], 'missing column "text"');
    assert.equal(reasons[3], 'column "text" is a number, not a string');
    assert.equal(reasons[4], 'column "text" is empty');
    assert.equal(reasons[5], 'missing column "label"');
    assert.equal(reasons[6], 'label 1.5 in column "label" is not an integer or a string');
    assert.equal(reasons[7], 'label in column "label" is a boolean (true), not an integer or a string');
    assert.match(reasons[8], /^not valid JSON/);
    assert.equal(reasons[9], 'invalid UTF-8');
    assert.equal(data.report.files[0].rows, 10);
    assert.deepEqual(data.train.map((e) => e.label), [0, 1]);
  });

  it('more than max_bad_rows_ratio is an error naming the file, the count and the first lines', async () => {
    const file = write('bad.jsonl', badLines);
    await expectError(
      () => prepareData(spec(file, { max_bad_rows_ratio: 0.5 }), 'seq-cls', tokenizer, OPTS),
      (e) => {
        assert.equal(e.file, file);
        assert.equal(e.field, 'data.train');
        assert.match(e.message, /^8 of 10 rows are bad/);
        assert.match(e.message, /line 2: missing column "text"; line 3: column "text" is a number/);
        assert.match(e.message, /and 3 more/);
      },
    );
  });

  it('the default allows 10%: one bad row in ten passes, two fail', async () => {
    const rows = (k: number) => Array.from({ length: 10 }, (_, i) => (i < k ? { text: '' } : { text: `t${i}` }));
    const ok = await prepareData({ ...spec(write('a.jsonl', jsonl(rows(1)))), max_bad_rows_ratio: undefined }, 'causal-lm', tokenizer, OPTS);
    assert.equal(ok.train.length, 9);
    await expectError(() => prepareData({ ...spec(write('b.jsonl', jsonl(rows(2)))), max_bad_rows_ratio: undefined }, 'causal-lm', tokenizer, OPTS), (e) => assert.match(e.message, /2 of 10 rows are bad/));
  });

  it('bad rows in the eval file count against that file', async () => {
    const train = write('t.jsonl', jsonl([{ text: 'a' }]));
    const evalFile = write('e.jsonl', jsonl([{ text: 'b' }, { nope: 1 }]));
    await expectError(
      () => prepareData(spec(train, { eval: evalFile }), 'causal-lm', tokenizer, OPTS),
      (e) => {
        assert.equal(e.file, evalFile);
        assert.equal(e.field, 'data.eval');
        assert.match(e.message, /line 2: missing column "text"/);
      },
    );
  });

  it('a text column no row has is an error with a suggestion', async () => {
    const file = write('t.jsonl', jsonl([{ txt: 'a' }, { txt: 'b' }]));
    await expectError(
      () => prepareData(spec(file), 'causal-lm', tokenizer, OPTS),
      (e) => {
        assert.equal(e.file, file);
        assert.match(e.message, /no row has the column "text" \(data\.text_column\); columns found: txt; did you mean "txt"\?/);
      },
    );
  });
});

describe('truncation', () => {
  it('cuts examples to max_length and counts them', async () => {
    const file = write('t.jsonl', jsonl([{ text: 'abcdefgh' }, { text: 'abc' }, { text: 'abcde' }]));
    const data = await prepareData(spec(file, { max_length: 4 }), 'causal-lm', tokenizer, OPTS);
    assert.deepEqual(data.train, [{ input_ids: ids('abcd') }, { input_ids: ids('abc') }, { input_ids: ids('abcd') }]);
    assert.equal(data.report.files[0].truncated, 2);
  });
});

describe('eval split', () => {
  const texts = Array.from({ length: 20 }, (_, i) => `row${i}`);
  const file = write('s.jsonl', jsonl(texts.map((text) => ({ text }))));

  it('is seeded: the same seed gives the same split; parts are disjoint, cover all, keep file order', async () => {
    const a = await prepareData(spec(file, { eval_split: 0.25 }), 'causal-lm', tokenizer, { ...OPTS, seed: 7 });
    const b = await prepareData(spec(file, { eval_split: 0.25 }), 'causal-lm', tokenizer, { ...OPTS, seed: 7 });
    const c = await prepareData(spec(file, { eval_split: 0.25 }), 'causal-lm', tokenizer, { ...OPTS, seed: 8 });
    assert.deepEqual(a, b);
    assert.equal(a.eval.length, 5);
    assert.equal(a.train.length, 15);
    const key = (e: { input_ids: number[] }) => e.input_ids.join(',');
    const index = new Map(texts.map((t, i) => [ids(t).join(','), i]));
    const trainIdx = a.train.map((e) => index.get(key(e))!);
    const evalIdx = a.eval.map((e) => index.get(key(e))!);
    assert.deepEqual([...trainIdx, ...evalIdx].sort((x, y) => x - y), texts.map((_, i) => i));
    assert.deepEqual(trainIdx, [...trainIdx].sort((x, y) => x - y));
    assert.deepEqual(evalIdx, [...evalIdx].sort((x, y) => x - y));
    assert.notDeepEqual(c.eval, a.eval);
  });

  it('holds out at least one example, and refuses to leave none for training', async () => {
    const two = write('two.jsonl', jsonl([{ text: 'a' }, { text: 'b' }]));
    const d = await prepareData(spec(two, { eval_split: 0.01 }), 'causal-lm', tokenizer, OPTS);
    assert.equal(d.eval.length, 1);
    assert.equal(d.train.length, 1);
    const one = write('one.jsonl', jsonl([{ text: 'a' }]));
    await expectError(() => prepareData(spec(one, { eval_split: 0.1 }), 'causal-lm', tokenizer, OPTS), (e) => assert.equal(e.field, 'data.eval_split'));
  });

  it('an eval file takes precedence over eval_split', async () => {
    const evalFile = write('e.jsonl', jsonl([{ text: 'zz' }]));
    const d = await prepareData(spec(file, { eval: evalFile, eval_split: 0.5 }), 'causal-lm', tokenizer, OPTS);
    assert.equal(d.train.length, 20);
    assert.deepEqual(d.eval, [{ input_ids: ids('zz') }]);
  });
});

describe('packing', () => {
  it('joins rows with eos between them and cuts blocks of max_length, dropping the tail', async () => {
    const file = write('p.jsonl', jsonl([{ text: 'abcde' }, { text: 'fg' }, { text: 'hijk' }]));
    const data = await prepareData(spec(file, { packing: true, max_length: 4 }), 'causal-lm', tokenizer, OPTS);
    const stream = [...ids('abcde'), EOS, ...ids('fg'), EOS, ...ids('hijk')]; // 13 tokens
    assert.deepEqual(data.train, [{ input_ids: stream.slice(0, 4) }, { input_ids: stream.slice(4, 8) }, { input_ids: stream.slice(8, 12) }]);
    assert.ok(data.report.warnings.some((w) => /dropped the last 1 of 13 tokens/.test(w)));
  });

  it('a .txt file is one document, newlines kept', async () => {
    const file = write('p.txt', 'ab\n\ncd\n');
    const data = await prepareData(spec(file, { packing: true, max_length: 3 }), 'causal-lm', tokenizer, OPTS);
    const nl = 188 + 10; // "\n" is byte 10: the 11th of the bytes after the 188 printable ones
    assert.deepEqual(data.train, [{ input_ids: [...ids('ab'), nl] }, { input_ids: [nl, ...ids('cd')] }]);
  });

  it('fewer tokens than one block make one short block', async () => {
    const file = write('p.jsonl', jsonl([{ text: 'ab' }]));
    const data = await prepareData(spec(file, { packing: true, max_length: 10 }), 'causal-lm', tokenizer, OPTS);
    assert.deepEqual(data.train, [{ input_ids: ids('ab') }]);
  });

  it('is refused for seq-cls', async () => {
    const file = write('p.jsonl', jsonl([{ text: 'ab', label: 0 }]));
    await expectError(() => prepareData(spec(file, { packing: true }), 'seq-cls', tokenizer, OPTS), (e) => assert.equal(e.field, 'data.packing'));
  });
});

describe('paths', () => {
  it('relative paths resolve against the run config folder', async () => {
    write('x.jsonl', jsonl([{ text: 'cfg' }]), 'cfgdir/data');
    const name = fs.readdirSync(path.join(dir, 'cfgdir', 'data'))[0];
    const configFile = path.join(dir, 'cfgdir', 'run.json');
    const data = await prepareData(spec(`data/${name}`), 'causal-lm', tokenizer, { ...OPTS, configFile });
    assert.deepEqual(data.train, [{ input_ids: ids('cfg') }]);
    assert.equal(data.report.files[0].file, path.join(dir, 'cfgdir', 'data', name));
  });

  it('a missing file is an error naming the file and the field', async () => {
    const configFile = path.join(dir, 'run.json');
    await expectError(
      () => prepareData(spec('nowhere/train.jsonl'), 'causal-lm', tokenizer, { ...OPTS, configFile }),
      (e) => {
        assert.equal(e.field, 'data.train');
        assert.equal(e.file, path.join(dir, 'nowhere', 'train.jsonl'));
        assert.match(e.message, /file not found/);
      },
    );
    const train = write('t.jsonl', jsonl([{ text: 'a' }]));
    await expectError(
      () => prepareData(spec(train, { eval: './missing-eval.csv' }), 'causal-lm', tokenizer, { ...OPTS, configFile }),
      (e) => {
        assert.equal(e.field, 'data.eval');
        assert.equal(e.file, path.join(dir, 'missing-eval.csv'));
      },
    );
  });
});

describe('hostile data', () => {
  it('130k+ integer labels: no stack overflow (labels were spread into Math.max)', async () => {
    const rows = 140_000;
    const file = write('many.csv', 'text,label\n' + Array.from({ length: rows }, (_, i) => `a,${i % 3}`).join('\n') + '\n');
    const data = await prepareData(spec(file), 'seq-cls', tokenizer, OPTS);
    assert.equal(data.train.length, rows);
    assert.deepEqual({ ...data.id2label }, { '0': 'LABEL_0', '1': 'LABEL_1', '2': 'LABEL_2' });
  });

  it('"__proto__", "constructor" and "toString" are ordinary string labels', async () => {
    const train = write('proto.jsonl', jsonl([{ text: 'a', label: '__proto__' }, { text: 'b', label: 'pos' }, { text: 'c', label: 'constructor' }]));
    const data = await prepareData(spec(train), 'seq-cls', tokenizer, OPTS);
    assert.deepEqual(Object.entries(data.label2id!), [['__proto__', 0], ['constructor', 1], ['pos', 2]]);
    assert.deepEqual(data.train.map((e) => e.label), [0, 2, 1]);
    // an eval label the training data lacks is an error, even when it names an Object.prototype member
    for (const label of ['toString', 'hasOwnProperty']) {
      const evalFile = write('e.jsonl', jsonl([{ text: 'd', label }]));
      await expectError(() => prepareData(spec(train, { eval: evalFile }), 'seq-cls', tokenizer, OPTS), (e) => {
        assert.equal(e.file, evalFile);
        assert.equal(e.field, 'data.eval');
        assert.match(e.message, new RegExp(`^line 1: label "${label}" does not occur in the training data`));
      });
    }
  });

  it('a column named "toString" is not Object.prototype.toString', async () => {
    const train = write('col.jsonl', jsonl([{ text: 'a', label: 0 }]));
    await expectError(() => prepareData(spec(train, { text_column: 'toString' }), 'seq-cls', tokenizer, OPTS), (e) => {
      assert.equal(e.field, 'data.train');
      assert.match(e.message, /no row has the column "toString"/);
    });
  });

  it('labels must be strings or integers: objects, arrays, booleans, null and huge ids are bad rows with their line', async () => {
    const file = write('labels.jsonl', jsonl([
      { text: 'a', label: 0 }, { text: 'b', label: { a: 1 } }, { text: 'c', label: [1] }, { text: 'd', label: false },
      { text: 'e', label: null }, { text: 'f', label: 1e20 }, { text: 'g', label: 1.0 }, { text: 'h', label: 2.5 },
    ]));
    const data = await prepareData(spec(file, { max_bad_rows_ratio: 1 }), 'seq-cls', tokenizer, OPTS);
    const reasons = Object.fromEntries(data.report.files[0].bad.map((b) => [b.line, b.reason]));
    assert.deepEqual(reasons, {
      2: 'label in column "label" is an object ({"a":1}), not an integer or a string',
      3: 'label in column "label" is an array ([1]), not an integer or a string',
      4: 'label in column "label" is a boolean (false), not an integer or a string',
      5: 'column "label" is null',
      6: 'label 100000000000000000000 in column "label" is too large: a class id is at most 99999',
      8: 'label 2.5 in column "label" is not an integer or a string',
    });
    assert.deepEqual(data.train.map((e) => e.label), [0, 1]);
    for (const e of data.train) assert.equal(typeof e.label, 'number');
  });

  it('a huge integer id in a CSV column of ids is a bad row, not a huge allocation', async () => {
    const file = write('big.csv', 'text,label\na,0\nb,99999999999999999999\n');
    const data = await prepareData(spec(file, { max_bad_rows_ratio: 1 }), 'seq-cls', tokenizer, OPTS);
    assert.equal(data.report.files[0].bad[0].line, 3);
    assert.equal(Object.keys(data.id2label!).length, 1);
  });

  it('a folder, a FIFO or a device as the data file is refused without reading it, naming the field', async () => {
    const fifo = path.join(dir, 'pipe.jsonl');
    execFileSync('mkfifo', [fifo]);
    const folder = path.join(dir, 'folder.jsonl');
    fs.mkdirSync(folder);
    for (const [file, field, kind] of [[fifo, 'data.train', 'a FIFO'], [folder, 'data.train', 'a folder'], ['/dev/zero', 'data.train', 'a device']] as const) {
      await expectError(() => prepareData(spec(file, { format: 'jsonl' }), 'causal-lm', tokenizer, OPTS), (e) => {
        assert.equal(e.file, file);
        assert.equal(e.field, field);
        assert.match(e.message, new RegExp(`^is ${kind}`));
      });
    }
    const good = write('ok.jsonl', jsonl([{ text: 'a' }]));
    await expectError(() => prepareData(spec(good, { eval: fifo }), 'causal-lm', tokenizer, OPTS), (e) => {
      assert.equal(e.field, 'data.eval');
      assert.match(e.message, /^is a FIFO \(named pipe\)/);
    });
  });

  it('num_labels beyond the bound is refused before any table is built', async () => {
    const file = write('n.jsonl', jsonl([{ text: 'a', label: 0 }]));
    await expectError(() => prepareData(spec(file), 'seq-cls', tokenizer, { ...OPTS, num_labels: 5e6 }), (e) => {
      assert.equal(e.field, 'num_labels');
      assert.match(e.message, /from 1 to 100000/);
    });
  });
});
