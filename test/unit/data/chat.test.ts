/**
 * Chat data (trainer/data/chat.ts): a `messages` column rendered with the model's chat_template and masked to the
 * assistant tokens. Tokenizers are the tiny byte-level ones of test/util/llama_folder.ts (no merges: one token per
 * byte, GPT-2's byte ids, so "!" is 0, printable ASCII b is b − 33, " " is 220, "\n" is 198), whose special tokens
 * follow; the expected ids and masks below are built from those facts, not from the code under test.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeChat, loadChatTemplate, type ChatMessage } from '../../../trainer/data/chat';
import { causalTargets, collate } from '../../../trainer/data/collate';
import { packBlocks } from '../../../trainer/data/packing';
import { prepareData, type PrepareOptions } from '../../../trainer/data/prepare';
import type { DataSpec } from '../../../trainer/data/types';
import { LoraStudioError } from '../../../trainer/errors';
import { GPT2LoraModel } from '../../../trainer/models/gpt2/model';
import { shardBatch } from '../../../trainer/parallel/shard';
import { loadTokenizer, type TextTokenizer } from '../../../trainer/tokenizer/tokenizer';
import { llamaTokenizer, type LlamaTokens } from '../../util/llama_folder';
import { refCausalLogits } from '../../reference/gpt2_f64';
import { lossOf, PAD, randomRows, refOf, specOf, tinySetup, useBackend } from '../model/tiny';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-chat-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Qwen2.5's template without the tools branch: a default system message, ChatML turns. */
const QWEN25 =
  "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}" +
  "{%- else %}{{- '<|im_start|>system\\nYou are Qwen. You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}" +
  '{%- for message in messages %}{%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant") %}' +
  "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endif %}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/** Llama 3.1's template without tools: BOS from the template, a system header with the dates, trimmed contents. */
const LLAMA31 =
  '{{- bos_token }}{%- if not date_string is defined %}{%- set date_string = "26 Jul 2024" %}{%- endif %}' +
  "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}{%- set messages = messages[1:] %}" +
  '{%- else %}{%- set system_message = "" %}{%- endif %}' +
  '{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}{{- "Cutting Knowledge Date: December 2023\\n" }}' +
  '{{- "Today Date: " + date_string + "\\n\\n" }}{{- system_message }}{{- "<|eot_id|>" }}' +
  "{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";

interface Folder {
  dir: string;
  tokenizer: TextTokenizer;
  tokens: LlamaTokens;
}

let n = 0;
/** A model folder with only the tokenizer files; `chat_template` replaces the builder's (null: none). */
function folder(model_type: 'llama' | 'qwen2', chat_template: unknown, extra: Record<string, unknown> = {}): Folder {
  const t = llamaTokenizer(model_type);
  const d = path.join(dir, `model-${n++}`);
  fs.mkdirSync(d);
  const cfg: Record<string, unknown> = { ...t.tokenizerConfig, chat_template, ...extra };
  if (chat_template === null) delete cfg.chat_template;
  fs.writeFileSync(path.join(d, 'tokenizer.json'), JSON.stringify(t.tokenizerJson));
  fs.writeFileSync(path.join(d, 'tokenizer_config.json'), JSON.stringify(cfg));
  return { dir: d, tokenizer: loadTokenizer(d), tokens: t.tokens };
}

/** Expected ids of a text: special tokens by their ids, printable ASCII, space and newline by GPT-2's byte ids. */
function ids(text: string, special: Record<string, number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < text.length; ) {
    const sp = Object.keys(special).find((s) => text.startsWith(s, i));
    if (sp) {
      out.push(special[sp]);
      i += sp.length;
      continue;
    }
    const b = text.charCodeAt(i++);
    if (b === 10) out.push(198);
    else if (b === 32) out.push(220);
    else {
      assert.ok(b >= 33 && b <= 126, 'test texts are printable ASCII');
      out.push(b - 33);
    }
  }
  return out;
}

/** Expected ids and mask from [text, is-assistant] pieces. */
function expected(pieces: Array<[string, 0 | 1]>, special: Record<string, number>): { input_ids: number[]; assistant_masks: number[] } {
  const input_ids: number[] = [];
  const assistant_masks: number[] = [];
  for (const [text, m] of pieces) {
    for (const id of ids(text, special)) {
      input_ids.push(id);
      assistant_masks.push(m);
    }
  }
  return { input_ids, assistant_masks };
}

const WHERE = { file: 'chat.jsonl', line: 1 };
const TWO_TURNS: ChatMessage[] = [
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello!' },
  { role: 'user', content: 'Bye?' },
  { role: 'assistant', content: 'Bye.' },
];

function throwsLS(fn: () => unknown, check: (e: LoraStudioError) => void): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof LoraStudioError, `expected a LoraStudioError, got ${e}`);
    check(e);
    return true;
  });
}

describe('chat templates render as transformers renders them', () => {
  it('ChatML (Qwen2.5-style): the default system message, turns, and the generation prompt', () => {
    const f = folder('qwen2', QWEN25);
    const t = loadChatTemplate(f.dir);
    const sys = '<|im_start|>system\nYou are Qwen. You are a helpful assistant.<|im_end|>\n';
    assert.equal(t.render(TWO_TURNS.slice(0, 2), false, WHERE), `${sys}<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n`);
    assert.equal(t.render(TWO_TURNS.slice(0, 1), true, WHERE), `${sys}<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n`);
  });

  it('Llama-3-style: bos_token from tokenizer_config.json, the system header, trimmed contents', () => {
    const f = folder('llama', LLAMA31);
    const t = loadChatTemplate(f.dir);
    const msgs = [{ role: 'system', content: 'Be brief. ' }, ...TWO_TURNS.slice(0, 2)];
    assert.equal(
      t.render(msgs, false, WHERE),
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>',
    );
  });

  it('bos_token given as an AddedToken object, and a list of named templates ("default" is used)', () => {
    const f = folder('llama', [{ name: 'tool_use', template: 'no' }, { name: 'default', template: '{{ bos_token }}{{ eos_token }}' }], {
      bos_token: { content: '<|begin_of_text|>', lstrip: false }, eos_token: { content: '<|eot_id|>' },
    });
    assert.equal(loadChatTemplate(f.dir).render([], false, WHERE), '<|begin_of_text|><|eot_id|>');
  });

  it('chat_template.jinja beside a tokenizer_config.json without one', () => {
    const f = folder('qwen2', null);
    fs.writeFileSync(path.join(f.dir, 'chat_template.jinja'), '{{ messages[0].content }}!');
    assert.equal(loadChatTemplate(f.dir).render([{ role: 'user', content: 'x' }], false, WHERE), 'x!');
  });
});

describe('the assistant mask', () => {
  it('ChatML: each assistant content and its <|im_end|>; not the header, not the "\\n" after it', () => {
    const f = folder('qwen2', QWEN25);
    const sp = f.tokens.special;
    const got = encodeChat(TWO_TURNS, loadChatTemplate(f.dir), f.tokenizer, WHERE);
    const want = expected([
      ['<|im_start|>system\nYou are Qwen. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n', 0],
      ['Hello!<|im_end|>', 1],
      ['\n<|im_start|>user\nBye?<|im_end|>\n<|im_start|>assistant\n', 0],
      ['Bye.<|im_end|>', 1],
      ['\n', 0],
    ], sp);
    assert.deepEqual(got, want);
  });

  it('Llama-3-style: one BOS (the template\'s, not the post-processor\'s too), content and <|eot_id|> masked', () => {
    const f = folder('llama', LLAMA31);
    const sp = f.tokens.special;
    const got = encodeChat(TWO_TURNS.slice(0, 2), loadChatTemplate(f.dir), f.tokenizer, WHERE);
    const header = '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>';
    assert.deepEqual(got, expected([[`${header}<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n`, 0], ['Hello!<|eot_id|>', 1]], sp));
    assert.ok('input_ids' in got);
    assert.equal(got.input_ids.filter((id) => id === f.tokens.bos_token_id).length, 1);
    // the post-processor of this tokenizer does add BOS: that is the token the rendering must not get twice
    assert.equal(f.tokenizer.encode('Hi', { addSpecialTokens: true })[0], f.tokens.bos_token_id);
  });

  it('a turn that ends without a special token keeps its newline (it is the end of turn)', () => {
    const f = folder('qwen2', '{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}');
    const got = encodeChat(TWO_TURNS.slice(0, 2), loadChatTemplate(f.dir), f.tokenizer, WHERE);
    assert.deepEqual(got, expected([['user: Hi\nassistant: ', 0], ['Hello!\n', 1]], f.tokens.special));
  });

  it('a template that rewrites earlier turns (drops past content) is an error, not a guessed mask', () => {
    const f = folder('qwen2',
      "{% for m in messages %}{% if m.role == 'assistant' and not loop.last %}<|im_start|>assistant\n(past)<|im_end|>\n" +
      "{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}");
    throwsLS(() => encodeChat(TWO_TURNS, loadChatTemplate(f.dir), f.tokenizer, { file: 'c.jsonl', line: 7 }), (e) => {
      assert.equal(e.file, 'c.jsonl');
      assert.equal(e.field, 'messages[1]');
      assert.match(e.message, /line 7: .*prefix/);
    });
  });

  it('no assistant message: a reason (a bad row), as an empty text is', () => {
    const f = folder('qwen2', QWEN25);
    assert.deepEqual(encodeChat([{ role: 'user', content: 'Hi' }], loadChatTemplate(f.dir), f.tokenizer, WHERE), { reason: 'column "messages" has no assistant message' });
  });
});

describe('the causal loss covers only the masked tokens', () => {
  before(() => useBackend('cpu'));

  it('causalTargets: a target where the next token is masked in; all-ones equals no mask', () => {
    const rows = [[5, 6, 7, 8], [9, 10]];
    const masks = [[0, 1, 1, 0], [1, 1]];
    const batch = collate(rows.map((input_ids, i) => ({ input_ids, assistant_masks: masks[i] })), PAD);
    const { targets, count } = causalTargets(batch);
    assert.deepEqual([...targets], [6, 7, -1, -1, 10, -1, -1, -1]);
    assert.equal(count, 3);
    const ones = collate(rows.map((input_ids) => ({ input_ids, assistant_masks: input_ids.map(() => 1) })), PAD);
    const plain = collate(rows.map((input_ids) => ({ input_ids })), PAD);
    assert.equal(plain.assistant_masks, undefined);
    assert.deepEqual(causalTargets(ones), causalTargets(plain));
  });

  for (const backend of ['cpu', 'wasm'] as const) {
    it(`tiny GPT-2 (${backend}): loss = mean NLL over the masked positions (float64 reference); eval counts them`, async () => {
      await useBackend(backend);
      const s = tinySetup('causal-lm');
      const model = GPT2LoraModel.create(specOf(s));
      const ref = refOf(s);
      const rows = randomRows([7, 4, 6], 5);
      const masks = [[0, 0, 1, 1, 1, 0, 1], [0, 1, 1, 0], [0, 0, 0, 0, 1, 1]];
      const batch = collate(rows.map((input_ids, i) => ({ input_ids, assistant_masks: masks[i] })), PAD);
      let nll = 0;
      let count = 0;
      rows.forEach((row, b) => {
        const logits = refCausalLogits(ref, row);
        const V = logits.length / row.length;
        for (let t = 0; t + 1 < row.length; t++) {
          if (masks[b][t + 1] !== 1) continue;
          const z = logits.subarray(t * V, (t + 1) * V);
          const max = Math.max(...z);
          const lse = max + Math.log(z.reduce((a, v) => a + Math.exp(v - max), 0));
          nll += lse - z[row[t + 1]];
          count++;
        }
      });
      assert.equal(count, 8);
      const loss = await lossOf(model, batch);
      assert.ok(Math.abs(loss - nll / count) < 1e-4 * Math.max(1, loss), `loss ${loss} vs reference ${nll / count}`);
      const unmasked = await lossOf(model, collate(rows.map((input_ids) => ({ input_ids })), PAD));
      assert.ok(Math.abs(unmasked - loss) > 1e-3, 'the mask changes the loss');
      const ev = await model.nllSum(batch);
      assert.equal(ev.count, 8);
      assert.ok(Math.abs(ev.nll - nll) < 1e-4 * Math.max(1, nll));
      model.dispose();
    });
  }

  it('data-parallel shards carry their rows of the mask', () => {
    const rows = randomRows([5, 3, 4], 9);
    const masks = [[0, 1, 1, 0, 1], [1, 0, 1], [0, 0, 1, 1]];
    const batch = collate(rows.map((input_ids, i) => ({ input_ids, assistant_masks: masks[i] })), PAD);
    const shards = shardBatch(batch, 2);
    assert.equal(shards.length, 2);
    const whole = causalTargets(batch);
    assert.deepEqual(shards.flatMap((sh) => [...causalTargets(sh.batch).targets]), [...whole.targets]);
    assert.equal(shards.reduce((a, sh) => a + causalTargets(sh.batch).count, 0), whole.count);
  });
});

describe('chat data through prepareData', () => {
  const spec = (train: string, over: Partial<DataSpec> = {}): DataSpec =>
    ({ train, eval: null, text_column: 'text', label_column: 'label', max_length: 512, eval_split: 0, max_bad_rows_ratio: 0, ...over });
  const write = (name: string, rows: unknown[]): string => {
    const file = path.join(dir, `${n++}-${name}`);
    fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    return file;
  };
  const qwen = folder('qwen2', QWEN25);
  const opts: PrepareOptions = { seed: 1, eos_token_id: qwen.tokens.eos_token_id, modelDir: qwen.dir };
  const sp = qwen.tokens.special;
  const chatOf = (msgs: ChatMessage[]) => encodeChat(msgs, loadChatTemplate(qwen.dir), qwen.tokenizer, WHERE) as { input_ids: number[]; assistant_masks: number[] };

  it('a messages column gives masked examples; truncation cuts the mask with the ids', async () => {
    const file = write('c.jsonl', [{ messages: TWO_TURNS }, { messages: TWO_TURNS.slice(0, 2), text: 'ignored' }]);
    const data = await prepareData(spec(file), 'causal-lm', qwen.tokenizer, opts);
    assert.deepEqual(data.train, [chatOf(TWO_TURNS), chatOf(TWO_TURNS.slice(0, 2))]);
    const short = await prepareData(spec(file, { max_length: 10 }), 'causal-lm', qwen.tokenizer, opts);
    assert.deepEqual(short.train[0], { input_ids: chatOf(TWO_TURNS).input_ids.slice(0, 10), assistant_masks: new Array(10).fill(0) });
    assert.ok(short.report.warnings.some((w) => /2 conversation\(s\) have no assistant token within max_length \(10\)/.test(w)), short.report.warnings.join('\n'));
  });

  it('plain text data is unchanged: same ids, no mask, every token a target', async () => {
    const file = write('t.jsonl', [{ text: 'hello there' }, { text: 'a b' }]);
    const data = await prepareData(spec(file), 'causal-lm', qwen.tokenizer, opts);
    assert.deepEqual(data.train, [{ input_ids: ids('hello there', sp) }, { input_ids: ids('a b', sp) }]);
    assert.equal(causalTargets(collate(data.train, PAD)).count, 10 + 2);
    const packed = await prepareData(spec(file, { packing: true, max_length: 4 }), 'causal-lm', qwen.tokenizer, opts);
    assert.ok(packed.train.every((e) => e.assistant_masks === undefined));
  });

  it('packing keeps each block\'s mask aligned with its ids (the joining eos is not an assistant token)', async () => {
    const docs = [chatOf(TWO_TURNS.slice(0, 2)), chatOf(TWO_TURNS)];
    const file = write('p.jsonl', [{ messages: TWO_TURNS.slice(0, 2) }, { messages: TWO_TURNS }]);
    const data = await prepareData(spec(file, { packing: true, max_length: 16 }), 'causal-lm', qwen.tokenizer, opts);
    const allIds = [...docs[0].input_ids, qwen.tokens.eos_token_id, ...docs[1].input_ids];
    const allMask = [...docs[0].assistant_masks, 0, ...docs[1].assistant_masks];
    const full = Math.floor(allIds.length / 16);
    assert.equal(data.train.length, full);
    data.train.forEach((e, b) => {
      assert.deepEqual(e.input_ids, allIds.slice(b * 16, (b + 1) * 16));
      assert.deepEqual(e.assistant_masks, allMask.slice(b * 16, (b + 1) * 16));
    });
    assert.deepEqual(packBlocks([[1, 2]], 8, 9, [[0, 1]]), { blocks: [[1, 2]], masks: [[0, 1]], dropped_tokens: 0, total_tokens: 2 });
  });

  it('no assistant message or no messages column: bad rows with their lines, under the bad-row limit', async () => {
    const file = write('b.jsonl', [{ messages: TWO_TURNS }, { messages: [{ role: 'user', content: 'Hi' }] }, { text: 'x' }, { messages: [] }]);
    const data = await prepareData(spec(file, { max_bad_rows_ratio: 0.9 }), 'causal-lm', qwen.tokenizer, opts);
    assert.equal(data.train.length, 1);
    assert.deepEqual(data.report.files[0].bad, [
      { line: 2, reason: 'column "messages" has no assistant message' },
      { line: 3, reason: 'missing column "messages"' },
      { line: 4, reason: 'column "messages" has no assistant message' },
    ]);
    await assert.rejects(prepareData(spec(file), 'causal-lm', qwen.tokenizer, opts), (e: unknown) => {
      assert.ok(e instanceof LoraStudioError);
      assert.equal(e.file, file);
      assert.match(e.message, /line 2: column "messages" has no assistant message/);
      return true;
    });
  });

  const rejects = (rows: unknown[], o: PrepareOptions, check: (e: LoraStudioError, file: string) => void) => {
    const file = write('e.jsonl', rows);
    return assert.rejects(prepareData(spec(file), 'causal-lm', qwen.tokenizer, o), (e: unknown) => {
      assert.ok(e instanceof LoraStudioError, `expected a LoraStudioError, got ${e}`);
      check(e, file);
      return true;
    });
  };

  it('malformed messages: an error naming the data file, the row and the field', async () => {
    await rejects([{ messages: TWO_TURNS }, { messages: 'Hi' }], opts, (e, file) => {
      assert.equal(e.file, file);
      assert.equal(e.field, 'messages');
      assert.match(e.message, /^line 2: must be a list of messages, got "Hi"/);
    });
    await rejects([{ messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 42 }] }], opts, (e, file) => {
      assert.equal(e.file, file);
      assert.equal(e.field, 'messages[1].content');
      assert.match(e.message, /^line 1: must be a string, got 42/);
    });
    await rejects([{ messages: [{ content: 'Hi' }] }], opts, (e) => assert.equal(e.field, 'messages[0].role'));
    await rejects([{ messages: [null] }], opts, (e) => assert.equal(e.field, 'messages[0]'));
  });

  it('a model without a chat template: an error naming tokenizer_config.json and chat_template', async () => {
    const bare = folder('qwen2', null);
    await rejects([{ messages: TWO_TURNS }], { ...opts, modelDir: bare.dir }, (e) => {
      assert.equal(e.file, path.join(bare.dir, 'tokenizer_config.json'));
      assert.equal(e.field, 'chat_template');
      assert.match(e.message, /has no chat template/);
    });
  });

  it('a template that throws or does not parse: an error with jinja\'s message', async () => {
    const strict = folder('qwen2', "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ m.content }}{% endfor %}");
    await rejects([{ messages: [{ role: 'system', content: 's' }, ...TWO_TURNS] }], { ...opts, modelDir: strict.dir }, (e, file) => {
      assert.equal(e.file, file);
      assert.equal(e.field, 'messages');
      assert.match(e.message, /^line 1: the chat template .* failed on this conversation: System role not supported$/);
    });
    const broken = folder('qwen2', '{% for m in messages %}{{ m.content }}');
    await rejects([{ messages: TWO_TURNS }], { ...opts, modelDir: broken.dir }, (e) => {
      assert.equal(e.file, path.join(broken.dir, 'tokenizer_config.json'));
      assert.equal(e.field, 'chat_template');
      assert.match(e.message, /does not parse: .+/);
    });
  });
});
