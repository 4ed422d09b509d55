/**
 * Our tokenizer (@huggingface/tokenizers reading GPT-2's tokenizer.json from the Python ecosystem) against an
 * independent implementation: gpt-tokenizer's GPT-2 encoding (r50k_base ranks, tiktoken-style). The
 * tokenizer.json is not ours to ship, so this is skipped when ../shared/fixtures is absent; gpt-tokenizer
 * alone still pins the known ids on a fresh clone.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decode, encode } from 'gpt-tokenizer/encoding/r50k_base';
import { loadTokenizer } from '../../../trainer/tokenizer/tokenizer';

const TOKENIZER_DIR = path.resolve(__dirname, '..', '..', '..', '..', 'shared', 'fixtures', 'gpt2-tokenizer');
const skip = fs.existsSync(path.join(TOKENIZER_DIR, 'tokenizer.json')) ? false : 'skipped: ../shared/fixtures is absent';

const TEXTS = [
  'Hello world',
  ' leading space and  double  spaces',
  "It's a test: don't, won't, they'll, we've, I'm, you'd.",
  'Numbers 1234567890 and 3.14159 and 1,000,000',
  'Unicode: café naïve résumé — “quotes” ‘single’ … 日本語 中文 한국어 🙂🚀',
  'tabs\tand\nnew\r\nlines\n\n\nend',
  'code: function f(x) { return x ** 2; } // comment',
  'URL https://example.com/path?q=1&r=two#frag',
  'ALL CAPS SHOUTING AND MiXeD cAsE',
  'GPT2LMHeadModel transformer.h.0.attn.c_attn lora_A.weight',
  '   ',
  'a',
];

describe('GPT-2 token ids', () => {
  it('gpt-tokenizer (an npm package shipping GPT-2\'s vocabulary) gives the known ids', () => {
    assert.deepEqual(encode('Hello world'), [15496, 995]);
  });

  it('tokenizer.json through @huggingface/tokenizers equals gpt-tokenizer on varied text', { skip }, () => {
    const ours = loadTokenizer(TOKENIZER_DIR);
    assert.equal(ours.eos_token_id, 50256);
    for (const text of TEXTS) {
      const ids = ours.encode(text);
      assert.deepEqual(ids, encode(text), JSON.stringify(text));
      assert.equal(ours.decode(ids), decode(ids), JSON.stringify(text));
    }
  });
});
