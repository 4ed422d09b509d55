/**
 * prepareData with GPT-2's real tokenizer.json (from the Python ecosystem): ids match GPT-2's vocabulary.
 * Skipped when ../shared/fixtures is absent.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { prepareData } from '../../../trainer/data/prepare';
import { loadTokenizer } from '../../../trainer/tokenizer/tokenizer';

const FIXTURES = path.resolve(__dirname, '..', '..', '..', '..', 'shared', 'fixtures');
const TOKENIZER_DIR = path.join(FIXTURES, 'gpt2-tokenizer');
const skip = fs.existsSync(path.join(TOKENIZER_DIR, 'tokenizer.json')) ? false : 'skipped: ../shared/fixtures is absent';

describe('GPT-2 tokenizer through prepareData', { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('"Hello world" → [15496, 995]; packing joins with <|endoftext|> (50256)', async () => {
    const tokenizer = loadTokenizer(TOKENIZER_DIR);
    const file = path.join(dir, 'train.jsonl');
    fs.writeFileSync(file, '{"text":"Hello world"}\n{"text":"Hello world"}\n');
    const spec = { train: file, eval: null, text_column: 'text', label_column: 'label', max_length: 16, eval_split: 0 };
    const data = await prepareData(spec, 'causal-lm', tokenizer, { seed: 0, eos_token_id: tokenizer.eos_token_id! });
    assert.deepEqual(data.train, [{ input_ids: [15496, 995] }, { input_ids: [15496, 995] }]);
    const packed = await prepareData({ ...spec, packing: true, max_length: 5 }, 'causal-lm', tokenizer, { seed: 0, eos_token_id: tokenizer.eos_token_id! });
    assert.deepEqual(packed.train, [{ input_ids: [15496, 995, 50256, 15496, 995] }]);
  });
});
