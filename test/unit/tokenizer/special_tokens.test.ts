/**
 * Special tokens through @huggingface/tokenizers: what a tokenizer.json's post-processor adds is kept (Llama 3's
 * TemplateProcessing BOS) unless a caller asks otherwise (chat templates carry their own); GPT-2's ByteLevel adds
 * nothing, so its ids do not change; eos/bos/pad ids come from tokenizer_config.json; the pad fallback to eos
 * warns; packing never puts two eos in a row; data preparation keeps the BOS.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadTokenizer } from '../../../trainer/tokenizer/tokenizer';
import { choosePadTokenId } from '../../../trainer/tokenizer/padding';
import { byteLevelTokenizerJson } from '../../../trainer/tokenizer/byte_level';
import { packBlocks } from '../../../trainer/data/packing';
import { prepareData } from '../../../trainer/data/prepare';
import { LoraStudioError } from '../../../trainer/errors';
import { llamaTokenizer } from '../../util/llama_folder';

let tmp: string;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-tok-')); });
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function folder(tokenizerJson: object, tokenizerConfig?: object): string {
  const dir = path.join(tmp, `tok-${n++}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
  if (tokenizerConfig) fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
  return dir;
}
const WORDS = ['hello', 'world'];

describe('post-processor special tokens', () => {
  it('Llama style: <|begin_of_text|> first by default, left out with addSpecialTokens: false, dropped by decode', () => {
    const t = llamaTokenizer('llama', { words: WORDS });
    const tok = loadTokenizer(folder(t.tokenizerJson, t.tokenizerConfig));
    const bos = t.tokens.special['<|begin_of_text|>'];
    const plain = tok.encode('hello world', { addSpecialTokens: false });
    assert.equal(plain.length, 2, 'one token a word');
    assert.ok(!plain.includes(bos));
    assert.deepEqual(tok.encode('hello world'), [bos, ...plain]);
    assert.deepEqual(tok.encode('hello world', { addSpecialTokens: true }), [bos, ...plain]);
    assert.equal(tok.decode(tok.encode('hello world')), 'hello world');
    assert.equal(tok.bos_token_id, bos);
    assert.equal(tok.eos_token_id, t.tokens.special['<|eot_id|>'], 'tokenizer_config.json eos_token, not a <|endoftext|> token');
    assert.equal(tok.pad_token_id, t.tokens.special['<|finetune_right_pad_id|>']);
  });

  it('Mistral style: <s> first; Qwen2 style: no BOS (ByteLevel only), eos <|im_end|> although <|endoftext|> exists', () => {
    const m = llamaTokenizer('mistral', { words: WORDS });
    const mt = loadTokenizer(folder(m.tokenizerJson, m.tokenizerConfig));
    assert.equal(mt.encode('hello')[0], m.tokens.special['<s>']);
    assert.equal(mt.eos_token_id, m.tokens.special['</s>']);
    const q = llamaTokenizer('qwen2', { words: WORDS });
    const qt = loadTokenizer(folder(q.tokenizerJson, q.tokenizerConfig));
    assert.deepEqual(qt.encode('hello world'), qt.encode('hello world', { addSpecialTokens: false }));
    assert.equal(qt.encode('hello world').length, 2);
    assert.equal(qt.eos_token_id, q.tokens.special['<|im_end|>']);
    assert.notEqual(qt.eos_token_id, q.tokens.special['<|endoftext|>']);
    assert.equal(qt.bos_token_id, undefined, 'bos_token null');
  });

  it('GPT-2 unchanged: ByteLevel adds nothing, eos is <|endoftext|> without tokenizer_config.json, no bos/pad', () => {
    const tok = loadTokenizer(folder(byteLevelTokenizerJson()));
    // byte ids: 'H' 39, 'i' 72, ' ' 220, '!' 0
    assert.deepEqual(tok.encode('Hi !'), [39, 72, 220, 0]);
    assert.deepEqual(tok.encode('Hi !', { addSpecialTokens: false }), [39, 72, 220, 0]);
    assert.equal(tok.eos_token_id, 256);
    assert.equal(tok.bos_token_id, undefined);
    assert.equal(tok.pad_token_id, undefined);
  });

  it('an eos_token that tokenizer.json lacks: an error naming tokenizer_config.json and eos_token', () => {
    const t = llamaTokenizer('llama');
    const dir = folder(t.tokenizerJson, { ...t.tokenizerConfig, eos_token: '<|nope|>' });
    assert.throws(() => loadTokenizer(dir), (e: unknown) => e instanceof LoraStudioError && e.file === path.join(dir, 'tokenizer_config.json') && e.field === 'eos_token' && /"<\|nope\|>" is not a token of tokenizer\.json/.test(e.message));
  });
});

describe('choosePadTokenId', () => {
  const tok = { pad_token_id: 5, eos_token_id: 9 };
  it('config.json pad_token_id first, then tokenizer_config.json pad_token; no warning', () => {
    const w: string[] = [];
    assert.equal(choosePadTokenId({ pad_token_id: 3, eos_token_id: 9 }, tok, w), 3);
    assert.equal(choosePadTokenId({ pad_token_id: null, eos_token_id: 9 }, tok, w), 5);
    assert.deepEqual(w, []);
  });
  it('else eos_token_id (the first of a list, else the tokenizer\'s) with a warning; nothing → undefined', () => {
    const w: string[] = [];
    assert.equal(choosePadTokenId({ eos_token_id: [7, 8] }, { pad_token_id: undefined, eos_token_id: 9 }, w), 7);
    assert.equal(choosePadTokenId({}, { pad_token_id: undefined, eos_token_id: 9 }, w), 9);
    assert.equal(w.length, 2);
    assert.match(w[0], /^no pad token .*padding with eos_token_id 7;/);
    assert.match(w[1], /padding with eos_token_id 9;/);
    assert.equal(choosePadTokenId({ eos_token_id: null }, undefined, w), undefined);
    assert.equal(w.length, 2);
  });
});

describe('data preparation keeps the post-processor tokens, packing never doubles eos', () => {
  it('a post-processor that ends each text with eos: packed documents get no second eos', () => {
    const t = llamaTokenizer('llama', { words: WORDS });
    const eos = t.tokens.eos_token_id;
    const bos = t.tokens.bos_token_id;
    const pp = t.tokenizerJson.post_processor as { processors: Array<Record<string, unknown>> };
    const template = pp.processors[1] as { single: unknown[]; special_tokens: Record<string, unknown> };
    template.single = [...template.single, { SpecialToken: { id: '<|eot_id|>', type_id: 0 } }];
    template.special_tokens['<|eot_id|>'] = { id: '<|eot_id|>', ids: [eos], tokens: ['<|eot_id|>'] };
    const tok = loadTokenizer(folder(t.tokenizerJson, t.tokenizerConfig));
    const a = tok.encode('hello');
    const b = tok.encode('world');
    assert.deepEqual([a[0], a.at(-1)], [bos, eos]);
    assert.deepEqual(packBlocks([a, b], 100, eos).blocks, [[...a, ...b]]);
    // documents without their own eos still get one between them
    assert.deepEqual(packBlocks([[1, 2], [3]], 100, eos).blocks, [[1, 2, eos, 3]]);
  });

  it('prepareData on Llama-style text rows: each example starts with <|begin_of_text|>', async () => {
    const t = llamaTokenizer('llama', { words: WORDS });
    const dir = folder(t.tokenizerJson, t.tokenizerConfig);
    const data = path.join(dir, 'train.jsonl');
    fs.writeFileSync(data, `${JSON.stringify({ text: 'hello world' })}\n${JSON.stringify({ text: 'world' })}\n`);
    const tok = loadTokenizer(dir);
    const out = await prepareData({ train: data, eval: null, text_column: 'text', label_column: 'label', max_length: 16, eval_split: 0, max_bad_rows_ratio: 0 }, 'causal-lm', tok, { seed: 1, eos_token_id: t.tokens.eos_token_id });
    assert.deepEqual(out.train.map((e) => e.input_ids), [tok.encode('hello world'), tok.encode('world')]);
    for (const e of out.train) assert.equal(e.input_ids[0], t.tokens.bos_token_id);
  });
});
