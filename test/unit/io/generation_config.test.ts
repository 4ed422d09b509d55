/** generation_config.json's eos_token_id: absent, one id, a list, and refusals that name the file and the field. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GENERATION_CONFIG_FILE, generationEosIds } from '../../../trainer/io/generation_config';
import { LoraStudioError } from '../../../trainer/errors';

function folder(content?: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gencfg-'));
  if (content !== undefined) fs.writeFileSync(path.join(dir, GENERATION_CONFIG_FILE), content);
  return dir;
}

describe('generationEosIds', () => {
  it('reads nothing from a folder without the file, or a file without the field', () => {
    assert.deepEqual(generationEosIds(folder()), []);
    assert.deepEqual(generationEosIds(folder('{"do_sample": true, "temperature": 0.6}')), []);
    assert.deepEqual(generationEosIds(folder('{"eos_token_id": null}')), []);
  });

  it("reads one id, and Llama 3.x Instruct's list", () => {
    assert.deepEqual(generationEosIds(folder('{"eos_token_id": 2}')), [2]);
    assert.deepEqual(generationEosIds(folder('{"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}')), [128001, 128008, 128009]);
  });

  for (const [what, text, field] of [
    ['a non-object', '[1, 2]', undefined],
    ['a negative id', '{"eos_token_id": -1}', 'eos_token_id'],
    ['a string', '{"eos_token_id": "</s>"}', 'eos_token_id'],
    ['a list with a fraction', '{"eos_token_id": [1, 2.5]}', 'eos_token_id'],
  ] as const) {
    it(`refuses ${what}, naming the file${field ? ' and the field' : ''}`, () => {
      const dir = folder(text);
      assert.throws(() => generationEosIds(dir), (e: unknown) => e instanceof LoraStudioError && e.file === path.join(dir, GENERATION_CONFIG_FILE) && e.field === field);
    });
  }
});
