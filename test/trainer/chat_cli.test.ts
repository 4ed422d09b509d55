/**
 * `lora-studio train` on chat data (a `messages` column), as a real child process: the run trains, and its
 * evaluation before the first step (LoRA's B starts at zero, so the base model) is the mean NLL over the assistant
 * tokens only, computed here by the float64 reference from ids built by hand. `npm run build` first.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readConfig } from '../../trainer/models/gpt2/config';
import { readSafetensors, tensorToF32, type HostTensor } from '../../trainer/io/safetensors';
import { refCausalLogits, refModel } from '../reference/gpt2_f64';
import { runCli, tinyRun } from './helpers';

/**
 * The end-of-turn token is eos_token (<|endoftext|>, id 256 in the byte-level test tokenizer). The newline is written
 * as {{ '\n' }}: chat templates are rendered with trim_blocks, which drops a newline right after a block tag.
 */
const TEMPLATE =
  "{% for m in messages %}{{ m.role }}: {{ m.content }}{% if m.role == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}" +
  '{% if add_generation_prompt %}assistant: {% endif %}';
const WORDS = ['red', 'blue', 'cat', 'dog', 'sun'];
const conversation = (i: number) => ({ messages: [{ role: 'user', content: `say ${WORDS[i % 5]}` }, { role: 'assistant', content: WORDS[i % 5] }] });

/** GPT-2 byte ids: printable ASCII b → b − 33, " " → 220, "\n" → 198. */
const byteIds = (s: string) => [...Buffer.from(s)].map((b) => (b === 32 ? 220 : b === 10 ? 198 : b - 33));

describe('lora-studio train on chat data', () => {
  it('trains, and eval_on_start is the base model\'s mean NLL over the assistant tokens alone', async () => {
    const evalRows = [0, 1, 2, 3].map(conversation);
    const run = tinyRun({
      task: 'causal-lm', rows: Array.from({ length: 16 }, (_, i) => conversation(i)), evalRows, data: { max_length: 32 },
      model: { std: 0.3 },
      training: { max_steps: 2, eval_on_start: true, eval_strategy: 'no', save_strategy: 'no', load_best_model_at_end: false, per_device_train_batch_size: 4 },
    });
    fs.writeFileSync(path.join(run.modelDir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|endoftext|>', chat_template: TEMPLATE }));
    const res = await runCli(['train', '--config', run.configFile, '--json']);
    assert.equal(res.code, 0, res.stderr);
    const steps = res.events.filter((e) => e.event === 'step');
    assert.equal(steps.length, 2);
    for (const s of steps) assert.ok(Number.isFinite(s.loss as number));
    const first = res.events.find((e) => e.event === 'eval') as { metrics: Record<string, number> } | undefined;
    assert.ok(first, 'an eval event before the first step');

    const config = readConfig(run.modelDir);
    const st = readSafetensors(path.join(run.modelDir, 'model.safetensors'));
    const weights = new Map<string, HostTensor>([...st.entries.keys()].map((k) => [k, tensorToF32(st, k)]));
    const ref = refModel(config, 'causal-lm', 0, weights, new Map());
    let nll = 0;
    let count = 0;
    for (const row of evalRows) {
      const [user, reply] = row.messages;
      const head = byteIds(`user: ${user.content}\nassistant: `);
      const answer = [...byteIds(reply.content), 256];
      const ids = [...head, ...answer, 198];
      const V = config.vocab_size;
      const logits = refCausalLogits(ref, ids);
      for (let t = head.length - 1; t < head.length - 1 + answer.length; t++) {
        const z = logits.subarray(t * V, (t + 1) * V);
        const max = Math.max(...z);
        nll += max + Math.log(z.reduce((a, v) => a + Math.exp(v - max), 0)) - z[ids[t + 1]];
        count++;
      }
    }
    const want = nll / count;
    assert.ok(Math.abs(first.metrics.eval_loss - want) < 1e-4 * Math.max(1, want), `eval_loss ${first.metrics.eval_loss} vs reference ${want}`);
    fs.rmSync(run.dir, { recursive: true, force: true });
  });

  it('data-parallel workers (LORA_STUDIO_WORKERS=2) carry the mask: the same step losses as one thread', async () => {
    const run = tinyRun({
      task: 'causal-lm', rows: Array.from({ length: 16 }, (_, i) => conversation(i)), evalRows: [conversation(0)], data: { max_length: 32 },
      training: { max_steps: 3, eval_strategy: 'no', save_strategy: 'no', load_best_model_at_end: false, per_device_train_batch_size: 5 },
    });
    fs.writeFileSync(path.join(run.modelDir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|endoftext|>', chat_template: TEMPLATE }));
    const losses: number[][] = [];
    for (const workers of ['1', '2']) {
      fs.rmSync(run.outputDir, { recursive: true, force: true });
      const res = await runCli(['train', '--config', run.configFile, '--json', '--backend', 'wasm'], { env: { LORA_STUDIO_WORKERS: workers } });
      assert.equal(res.code, 0, res.stderr);
      losses.push(res.events.filter((e) => e.event === 'step').map((e) => e.loss as number));
    }
    assert.equal(losses[0].length, 3);
    losses[0].forEach((l, i) => assert.ok(Math.abs(l - losses[1][i]) < 1e-5 * Math.max(1, l), `step ${i + 1}: ${l} vs ${losses[1][i]}`));
    fs.rmSync(run.dir, { recursive: true, force: true });
  });

  it('a model folder without a chat template: exit 1, one error naming tokenizer_config.json and chat_template', async () => {
    const run = tinyRun({ task: 'causal-lm', rows: [conversation(0), conversation(1)], evalRows: [conversation(2)], training: { max_steps: 1 } });
    const res = await runCli(['train', '--config', run.configFile]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /lora-studio: error: .*tokenizer_config\.json: chat_template: is missing, so there is no chat template/);
    assert.doesNotMatch(res.stderr, /\n\s+at /, 'no stack trace');
    fs.rmSync(run.dir, { recursive: true, force: true });
  });
});
