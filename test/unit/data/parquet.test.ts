/**
 * Parquet data, and Hub datasets served from the Hugging Face cache. hyparquet cannot write, so the test
 * builds small files itself from the Parquet format spec (Thrift compact protocol, PLAIN encoding, no
 * compression, one row group): a string column (optionally nullable, optionally with raw invalid bytes)
 * and an INT64 column, plus optional key-value metadata such as `datasets`' "huggingface" features.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { prepareData, type PrepareOptions } from '../../../trainer/data/prepare';
import { readRows } from '../../../trainer/data/read_rows';
import type { DataSpec } from '../../../trainer/data/types';
import { byteLevelTokenizerJson } from '../../../trainer/tokenizer/byte_level';
import { loadTokenizer } from '../../../trainer/tokenizer/tokenizer';
import { LoraStudioError } from '../../../trainer/errors';
import { chooseSplit, datasetCacheDir, parseHubId } from '../../../trainer/data/hub';
import { hubCacheDir } from '../../../trainer/io/hf_hub';
import { writeParquet } from '../../util/parquet_writer';

// ---- tests ----

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
fs.mkdirSync(path.join(dir, 'tok'));
fs.writeFileSync(path.join(dir, 'tok', 'tokenizer.json'), JSON.stringify(byteLevelTokenizerJson()));
const tokenizer = loadTokenizer(path.join(dir, 'tok'));
const OPTS: PrepareOptions = { seed: 1, eos_token_id: 256 };
const ids = (t: string) => [...Buffer.from(t)].map((b) => b - 33);
function spec(train: string, over: Partial<DataSpec> = {}): DataSpec {
  return { train, eval: null, text_column: 'text', label_column: 'label', max_length: 32, eval_split: 0, max_bad_rows_ratio: 0, ...over };
}

const SENTIMENT = {
  info: { features: { text: { dtype: 'string', _type: 'Value' }, label: { names: ['neg', 'pos'], _type: 'ClassLabel' } } },
};

describe('parquet', () => {
  it('reads rows numbered from 1; INT64 comes back as numbers; null and invalid UTF-8 are bad rows', async () => {
    const file = path.join(dir, 'a.parquet');
    fs.writeFileSync(
      file,
      writeParquet([
        { name: 'text', type: 'string', values: ['first', 'second', null, Buffer.from([0x61, 0xff]), 'fifth'] },
        { name: 'label', type: 'int64', values: [1, 0, 1, 0, null] },
        { name: 'extra', type: 'string', values: ['e', 'e', 'e', 'e', 'e'] },
      ]),
    );
    const all = await readRows(file);
    assert.equal(all.format, 'parquet');
    assert.deepEqual(all.columns, ['text', 'label', 'extra']);
    assert.deepEqual(all.rows[0], { line: 1, record: { text: 'first', label: 1, extra: 'e' } });
    assert.deepEqual(all.bad, [{ line: 4, reason: 'invalid UTF-8 in column "text"' }]);

    const some = await readRows(file, { columns: ['text', 'label', 'absent'] });
    assert.deepEqual(
      some.rows.map((r) => [r.line, r.record]),
      [
        [1, { text: 'first', label: 1 }],
        [2, { text: 'second', label: 0 }],
        [3, { text: null, label: 1 }],
        [5, { text: 'fifth', label: null }],
      ],
    );

    const data = await prepareData(spec(file, { max_bad_rows_ratio: 0.6 }), 'seq-cls', tokenizer, OPTS);
    assert.deepEqual(data.report.files[0].bad, [
      { line: 3, reason: 'column "text" is null, not a string' },
      { line: 4, reason: 'invalid UTF-8 in column "text"' },
      { line: 5, reason: 'column "label" is null' },
    ]);
    assert.deepEqual(data.train, [
      { input_ids: ids('first'), label: 1 },
      { input_ids: ids('second'), label: 0 },
    ]);
  });

  it('takes label names from a datasets ClassLabel feature', async () => {
    const file = path.join(dir, 'b.parquet');
    fs.writeFileSync(
      file,
      writeParquet(
        [
          { name: 'text', type: 'string', values: ['good', 'bad'] },
          { name: 'label', type: 'int64', values: [1, 0] },
        ],
        { huggingface: JSON.stringify(SENTIMENT) },
      ),
    );
    const data = await prepareData(spec(file), 'seq-cls', tokenizer, OPTS);
    assert.deepEqual({ ...data.id2label }, { '0': 'neg', '1': 'pos' });
    assert.deepEqual({ ...data.label2id }, { neg: 0, pos: 1 });
    assert.deepEqual(data.train.map((e) => e.label), [1, 0]);
  });

  it('a file that is not Parquet is an error naming it', async () => {
    const file = path.join(dir, 'c.parquet');
    fs.writeFileSync(file, 'not parquet at all');
    await assert.rejects(readRows(file), (e: unknown) => e instanceof LoraStudioError && e.file === file && /not a readable Parquet file/.test(e.message));
  });
});

/** A port nothing listens on: listen on 0, note the port, close. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('corrupt Parquet', () => {
  const good = () => writeParquet([{ name: 'text', type: 'string', values: ['a', 'b'] }, { name: 'label', type: 'int64', values: [0, 1] }]);
  const cases: Array<[string, () => Buffer, RegExp]> = [
    // used to be "TypeError: Cannot read properties of undefined (reading 'num_children')"
    ['a column claiming children the schema lacks', () => writeParquet([{ name: 'text', type: 'string', values: ['a'] }], {}, { childChildren: 3 }), /not a readable Parquet file \(/],
    ['a root claiming more columns than it holds', () => writeParquet([{ name: 'text', type: 'string', values: ['a'] }], {}, { rootChildren: 9 }), /not a readable Parquet file/],
    ['num_rows far beyond the file', () => writeParquet([{ name: 'text', type: 'string', values: ['a'] }], {}, { numRows: 4e9 }), /not a readable Parquet file \(num_rows 4000000000 is not between 0 and 50000000\)/],
    ['a footer length beyond the file', () => {
      const b = good();
      b.writeUInt32LE(0x7fffffff, b.length - 8);
      return b;
    }, /not a readable Parquet file \(the footer claims 2147483647 bytes but the file has \d+\)/],
    ['a truncated file', () => good().subarray(0, 30), /not a readable Parquet file/],
    ['no magic', () => Buffer.from('PAR1xxxxxxxxxxxxxxxx'), /not a readable Parquet file \(no "PAR1" magic/],
  ];
  for (const [name, make, message] of cases) {
    it(`${name}: a LoraStudioError naming the file and the field`, async () => {
      const file = path.join(dir, `corrupt-${name.replace(/\W+/g, '-')}.parquet`);
      fs.writeFileSync(file, make());
      await assert.rejects(readRows(file, { field: 'data.eval' }), (e: unknown) => {
        assert.ok(e instanceof LoraStudioError, String(e));
        assert.equal(e.file, file);
        assert.equal(e.field, 'data.eval');
        assert.match(e.message, message);
        return true;
      });
    });
  }
});

describe('Hub datasets', () => {
  const SHA = 'a'.repeat(40);
  const cache = path.join(dir, 'hf-cache');
  const snapshot = path.join(cache, 'datasets--someone--sentiment', 'snapshots', SHA);
  fs.mkdirSync(path.join(snapshot, 'default', 'train'), { recursive: true });
  fs.mkdirSync(path.join(snapshot, 'default', 'test'), { recursive: true });
  fs.mkdirSync(path.join(cache, 'datasets--someone--sentiment', 'refs', 'refs', 'convert'), { recursive: true });
  fs.writeFileSync(path.join(cache, 'datasets--someone--sentiment', 'refs', 'refs', 'convert', 'parquet'), SHA);
  const shard = (texts: string[], labels: number[]) =>
    writeParquet(
      [
        { name: 'text', type: 'string', values: texts },
        { name: 'label', type: 'int64', values: labels },
      ],
      { huggingface: JSON.stringify(SENTIMENT) },
    );
  fs.writeFileSync(path.join(snapshot, 'default', 'train', '0000.parquet'), shard(['a', 'b'], [0, 1]));
  fs.writeFileSync(path.join(snapshot, 'default', 'train', '0001.parquet'), shard(['c'], [1]));
  fs.writeFileSync(path.join(snapshot, 'default', 'test', '0000.parquet'), shard(['d'], [0]));

  it('HF_HUB_OFFLINE=1 reads the cached Parquet files of the split, shards in order', async () => {
    const env = { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' };
    const data = await prepareData(spec('someone/sentiment', { eval: 'someone/sentiment:test' }), 'seq-cls', tokenizer, { ...OPTS, env });
    assert.deepEqual(data.train, [
      { input_ids: ids('a'), label: 0 },
      { input_ids: ids('b'), label: 1 },
      { input_ids: ids('c'), label: 1 },
    ]);
    assert.deepEqual(data.eval, [{ input_ids: ids('d'), label: 0 }]);
    assert.deepEqual({ ...data.id2label }, { '0': 'neg', '1': 'pos' });
    assert.deepEqual(
      data.report.files.map((f) => [path.relative(snapshot, f.file), f.field, f.rows]),
      [
        [path.join('default', 'train', '0000.parquet'), 'data.train', 2],
        [path.join('default', 'train', '0001.parquet'), 'data.train', 1],
        [path.join('default', 'test', '0000.parquet'), 'data.eval', 1],
      ],
    );
  });

  it('when the Hub cannot be reached, a cached dataset is used with a warning', async () => {
    const env = { HF_HUB_CACHE: cache, HF_ENDPOINT: `http://127.0.0.1:${await closedPort()}` };
    const data = await prepareData(spec('someone/sentiment:default:train'), 'seq-cls', tokenizer, { ...OPTS, env });
    assert.equal(data.train.length, 3);
    assert.ok(data.report.warnings.some((w) => /could not be reached/.test(w)));
  });

  it('when the Hub cannot be reached and nothing is cached: a clear error naming the id and data.train', async () => {
    const configFile = path.join(dir, 'run.json');
    const env = { HF_HUB_CACHE: path.join(dir, 'empty-cache'), HF_ENDPOINT: `http://127.0.0.1:${await closedPort()}` };
    await assert.rejects(prepareData(spec('someone/missing-set'), 'causal-lm', tokenizer, { ...OPTS, env, configFile }), (e: unknown) => {
      assert.ok(e instanceof LoraStudioError);
      assert.equal(e.field, 'data.train');
      assert.equal(e.file, configFile);
      assert.match(e.message, /"someone\/missing-set"/);
      assert.match(e.message, /Hugging Face Hub could not be reached/);
      assert.match(e.message, /local file \(JSONL, CSV or Parquet\)/);
      return true;
    });
  });

  it('offline with nothing cached says so', async () => {
    const env = { HF_HUB_CACHE: path.join(dir, 'empty-cache'), HF_HUB_OFFLINE: 'true' };
    await assert.rejects(prepareData(spec('someone/other'), 'causal-lm', tokenizer, { ...OPTS, env }), /HF_HUB_OFFLINE is set/);
  });

  it('names a split or config that the cache lacks', async () => {
    const env = { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' };
    await assert.rejects(
      prepareData(spec('someone/sentiment:validation'), 'seq-cls', tokenizer, { ...OPTS, env }),
      /"validation" is neither a split of config "default" \(test, train\) nor a config \(default\)/,
    );
  });
});

describe('Hub download into the cache (a fake Hub on 127.0.0.1)', () => {
  it('lists, downloads with the token, lays out the HF cache, and reuses it on the next run', async () => {
    const SHA = 'b'.repeat(40);
    const body = writeParquet([{ name: 'text', type: 'string', values: ['hub', 'rows'] }]);
    const seen: Array<[string, string | undefined]> = [];
    const server = http.createServer((req, res) => {
      seen.push([req.url!, req.headers.authorization]);
      const base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
      if (req.url === '/api/datasets/o/n/parquet') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ default: { train: [`${base}/api/datasets/o/n/parquet/default/train/0.parquet`] } }));
      } else if (req.url === '/api/datasets/o/n/revision/refs%2Fconvert%2Fparquet') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ sha: SHA }));
      } else if (req.url === '/api/datasets/o/n/parquet/default/train/0.parquet') {
        res.writeHead(302, { location: `${base}/datasets/o/n/resolve/refs%2Fconvert%2Fparquet/default/train/0000.parquet` });
        res.end();
      } else if (req.url === '/datasets/o/n/resolve/refs%2Fconvert%2Fparquet/default/train/0000.parquet') {
        res.end(body);
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const cacheDir = path.join(dir, 'fresh-cache');
      const env = { HF_HUB_CACHE: cacheDir, HF_TOKEN: 'hf_test', HF_ENDPOINT: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/` };
      const first = await prepareData(spec('o/n'), 'causal-lm', tokenizer, { ...OPTS, env });
      assert.deepEqual(first.train, [{ input_ids: ids('hub') }, { input_ids: ids('rows') }]);
      const repoDir = path.join(cacheDir, 'datasets--o--n');
      assert.deepEqual(fs.readFileSync(path.join(repoDir, 'snapshots', SHA, 'default', 'train', '0000.parquet')), body);
      assert.equal(fs.readFileSync(path.join(repoDir, 'refs', 'refs', 'convert', 'parquet'), 'utf8'), SHA);
      assert.ok(seen.every(([, auth]) => auth === 'Bearer hf_test'));
      const downloads = () => seen.filter(([url]) => url.includes('/resolve/')).length;
      assert.equal(downloads(), 1);
      const second = await prepareData(spec('o/n'), 'causal-lm', tokenizer, { ...OPTS, env });
      assert.deepEqual(second.train, first.train);
      assert.equal(downloads(), 1, 'the cached shard is reused');
      const missing = await prepareData(spec('o/absent'), 'causal-lm', tokenizer, { ...OPTS, env }).then(
        () => null,
        (e: unknown) => e,
      );
      assert.ok(missing instanceof LoraStudioError);
      assert.match(missing.message, /HTTP 404 for dataset "o\/absent"; if it is private or gated, set HF_TOKEN/);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('Hub ids and the cache folder', () => {
  it('parses owner/name[:a[:b]] and rejects other strings', () => {
    assert.deepEqual(parseHubId('stanfordnlp/imdb'), { repo: 'stanfordnlp/imdb' });
    assert.deepEqual(parseHubId('nyu-mll/glue:sst2'), { repo: 'nyu-mll/glue', config: 'sst2' });
    assert.deepEqual(parseHubId('nyu-mll/glue:sst2:validation'), { repo: 'nyu-mll/glue', config: 'sst2', split: 'validation' });
    for (const bad of ['imdb', 'a/b/c', '/abs/path', 'a/b:c:d:e', 'a b/c']) assert.equal(parseHubId(bad), null, bad);
  });

  it('a path-like value that does not exist is "file not found", not a Hub lookup', async () => {
    const env = { HF_HUB_CACHE: path.join(dir, 'empty-cache'), HF_HUB_OFFLINE: '1' };
    await assert.rejects(prepareData(spec('data/train.jsonl'), 'causal-lm', tokenizer, { ...OPTS, env }), /file not found/);
  });

  it('picks the default config, the only config, or asks', () => {
    const two = { a: { train: ['x'] }, b: { train: ['y'] } };
    assert.equal(chooseSplit({ only: { train: ['x'], test: ['t'] } }, { repo: 'o/n' }, 'data.train').config, 'only');
    assert.equal(chooseSplit({ only: { train: ['x'], test: ['t'] } }, { repo: 'o/n', config: 'test' }, 'data.train').split, 'test');
    assert.deepEqual(chooseSplit(two, { repo: 'o/n', config: 'b' }, 'data.train').items, ['y']);
    assert.throws(() => chooseSplit(two, { repo: 'o/n' }, 'data.train'), /several configs \(a, b\)/);
    const partial = chooseSplit({ default: { 'partial-train': ['p'] } }, { repo: 'o/n' }, 'data.train');
    assert.equal(partial.split, 'partial-train');
    assert.equal(partial.warnings.length, 1);
  });

  it('the cache is HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub', () => {
    assert.equal(hubCacheDir({ HF_HUB_CACHE: '/c', HF_HOME: '/h' }), '/c');
    assert.equal(hubCacheDir({ HF_HOME: '/h' }), path.join('/h', 'hub'));
    assert.equal(hubCacheDir({ XDG_CACHE_HOME: '/x' }), path.join('/x', 'huggingface', 'hub'));
    assert.equal(datasetCacheDir('o/n', { HF_HUB_CACHE: '/c' }), path.join('/c', 'datasets--o--n'));
  });
});
