/**
 * Reading data files: every format round-trips to records with the right line numbers, and rows that
 * cannot be read become bad rows with a reason and a line number (never dropped silently).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readRows, readTextDocument } from '../../../trainer/data/read_rows';
import { detectFormat } from '../../../trainer/data/format';
import { splitLines } from '../../../trainer/data/lines';
import { LoraStudioError } from '../../../trainer/errors';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

let n = 0;
function write(name: string, content: string | Uint8Array): string {
  const file = path.join(dir, `${n++}-${name}`);
  fs.writeFileSync(file, content);
  return file;
}
/** bytes of `before`, one invalid UTF-8 byte (0xff), then `after` */
function withBadByte(before: string, afterText: string): Buffer {
  return Buffer.concat([Buffer.from(before), Buffer.from([0xff]), Buffer.from(afterText)]);
}

describe('splitLines', () => {
  it('numbers lines from 1, strips \\r\\n and a BOM, and marks invalid UTF-8 per line', () => {
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('a\r\nb\n'), withBadByte('c', '\n'), Buffer.from('é')]);
    assert.deepEqual(splitLines(bytes), [
      { line: 1, text: 'a' },
      { line: 2, text: 'b' },
      { line: 3, text: null },
      { line: 4, text: 'é' },
    ]);
  });
});

describe('jsonl', () => {
  it('reads one object per line with file line numbers, skipping blank lines', async () => {
    const file = write('a.jsonl', '{"text":"one","label":1}\n\n{"text":"two"}\r\n   \n{"text":"three","x":[1]}\n');
    const r = await readRows(file);
    assert.equal(r.format, 'jsonl');
    assert.deepEqual(r.rows, [
      { line: 1, record: { text: 'one', label: 1 } },
      { line: 3, record: { text: 'two' } },
      { line: 5, record: { text: 'three', x: [1] } },
    ]);
    assert.deepEqual(r.bad, []);
  });

  it('reports unparsable JSON, non-objects and invalid UTF-8 with their lines', async () => {
    const file = write('b.jsonl', Buffer.concat([Buffer.from('{"text":"ok"}\n{"text": oops}\n[1,2]\n'), withBadByte('{"text":"', '"}\n'), Buffer.from('{"text":"end"}')]));
    const r = await readRows(file);
    assert.deepEqual(r.rows.map((x) => x.line), [1, 5]);
    assert.deepEqual(r.bad.map((b) => b.line), [2, 3, 4]);
    assert.match(r.bad[0].reason, /^not valid JSON/);
    assert.equal(r.bad[1].reason, 'not a JSON object (got an array)');
    assert.equal(r.bad[2].reason, 'invalid UTF-8');
  });

  it('.ndjson is JSONL too', () => {
    assert.equal(detectFormat('x/y.NDJSON', 'data.train'), 'jsonl');
  });
});

describe('json', () => {
  it('reads an array of objects; "line" is the 1-based row index', async () => {
    const file = write('a.json', JSON.stringify([{ text: 'a' }, 3, { text: 'c' }], null, 2));
    const r = await readRows(file);
    assert.deepEqual(r.rows, [
      { line: 1, record: { text: 'a' } },
      { line: 3, record: { text: 'c' } },
    ]);
    assert.deepEqual(r.bad, [{ line: 2, reason: 'not a JSON object (got a number)' }]);
  });

  it('accepts {"data": [...]}', async () => {
    const r = await readRows(write('b.json', '{"data":[{"text":"x","label":"y"}]}'));
    assert.deepEqual(r.rows, [{ line: 1, record: { text: 'x', label: 'y' } }]);
  });

  it('invalid UTF-8 anywhere is an error naming the file, the field and the line', async () => {
    const file = write('c.json', withBadByte('[\n{"text":"', '"}\n]'));
    await assert.rejects(readRows(file, { field: 'data.eval' }), (e: unknown) => {
      assert.ok(e instanceof LoraStudioError);
      assert.equal(e.file, file);
      assert.equal(e.field, 'data.eval');
      assert.match(e.message, /UTF-8.*line 2/);
      return true;
    });
  });

  it('broken JSON and other shapes are errors', async () => {
    await assert.rejects(readRows(write('d.json', '[{"text": }]')), /not valid JSON/);
    await assert.rejects(readRows(write('e.json', '{"rows": []}')), /array of objects/);
  });
});

describe('csv and tsv', () => {
  it('reads a header row; a row is numbered by the file line where it starts', async () => {
    const file = write('a.csv', '\ufefftext,label\nhello,1\n\n"multi\nline, quoted",0\n"say ""hi""",2\n');
    const r = await readRows(file);
    assert.deepEqual(r.rows, [
      { line: 2, record: { text: 'hello', label: '1' } },
      { line: 4, record: { text: 'multi\nline, quoted', label: '0' } },
      { line: 6, record: { text: 'say "hi"', label: '2' } },
    ]);
    assert.deepEqual(r.bad, []);
  });

  it('reports a row with invalid UTF-8 and a row with the wrong number of fields, by line', async () => {
    const bytes = Buffer.concat([Buffer.from('text,label\nok,1\n'), withBadByte('bad', ',0\n'), Buffer.from('a,b,c\n"x\ny",1\nlast,0\n')]);
    const r = await readRows(write('b.csv', bytes));
    assert.deepEqual(r.rows.map((x) => [x.line, x.record.text]), [
      [2, 'ok'],
      [5, 'x\ny'],
      [7, 'last'],
    ]);
    assert.deepEqual(r.bad.map((b) => b.line), [3, 4]);
    assert.equal(r.bad[0].reason, 'invalid UTF-8');
    assert.match(r.bad[1].reason, /not a valid CSV record/);
  });

  it('reads TSV with tabs', async () => {
    const r = await readRows(write('c.tsv', 'sentence\tlabel\na, b\tpos\nc\tneg\n'));
    assert.deepEqual(r.rows, [
      { line: 2, record: { sentence: 'a, b', label: 'pos' } },
      { line: 3, record: { sentence: 'c', label: 'neg' } },
    ]);
  });

  it('warns about repeated header names', async () => {
    const r = await readRows(write('d.csv', 'text,text\na,b\n'));
    assert.equal(r.warnings?.length, 1);
    assert.match(r.warnings![0], /repeats column\(s\) "text"/);
  });
});

describe('plain text', () => {
  it('one row per non-blank line, under the text column', async () => {
    const file = write('a.txt', Buffer.concat([Buffer.from('first\n\n  \nsecond\r\n'), withBadByte('x', '\nthird')]));
    const r = await readRows(file, { textColumn: 'content' });
    assert.deepEqual(r.rows, [
      { line: 1, record: { content: 'first' } },
      { line: 4, record: { content: 'second' } },
      { line: 6, record: { content: 'third' } },
    ]);
    assert.deepEqual(r.bad, [{ line: 5, reason: 'invalid UTF-8' }]);
  });

  it('as one document keeps the newlines and leaves out bad lines', () => {
    const file = write('b.txt', Buffer.concat([Buffer.from('a\n\nb\n'), withBadByte('', '\nc\n')]));
    const doc = readTextDocument(file, 'data.train');
    assert.equal(doc.text, 'a\n\nb\nc');
    assert.equal(doc.rows, 5);
    assert.deepEqual(doc.bad, [{ line: 4, reason: 'invalid UTF-8' }]);
  });
});

describe('format', () => {
  it('comes from the extension unless data.format overrides it', async () => {
    const file = write('data.log', '{"text":"a"}\n');
    assert.throws(() => detectFormat(file, 'data.train'), (e: unknown) => e instanceof LoraStudioError && e.field === 'data.train' && /\.log/.test(e.message));
    const r = await readRows(file, { format: 'jsonl' });
    assert.deepEqual(r.rows, [{ line: 1, record: { text: 'a' } }]);
    assert.equal(detectFormat('x.csv', 'data.train', null), 'csv', 'null means "from the extension"');
  });
});
