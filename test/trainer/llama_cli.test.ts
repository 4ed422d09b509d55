/**
 * The Llama family through the real `lora-studio` CLI (issue 13): inspect prints PEFT's line for SmolLM2-135M from
 * config.json alone, --json carries the module table the Modules view renders; merge applies a PEFT adapter to a
 * tiny sharded Llama folder (W + s·B·A on the targets, every other tensor as it was, the source untouched);
 * `train` (2 steps), `eval` and `generate` on a tiny Llama folder, and seq-cls `train`, `merge`, `eval` and
 * `classify` on a tiny Qwen2 folder (tied, q/k/v biases), each held to the float64 reference
 * (test/reference/llama_f64.ts) built from the weights written and the adapter trained.
 * Real processes: run `npm run build` first.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runCli, runCliJson, scratch, tinyRun, writeJsonl, writeRandomAdapter, type TinyRun } from './helpers';
import { SMOLLM2_135M } from '../util/llama_configs';
import { writeLlamaFolder, type LlamaFolder } from '../util/llama_folder';
import { hashDir } from '../util/files';
import { loadLlamaFolder } from '../../trainer/models/llama/folder';
import type { AdapterWeights } from '../../trainer/lora/types';
import type { Task } from '../../trainer/task';
import type { ClassifyResult, EvalResult, GenerateResult } from '../../trainer/protocol';
import { loadTokenizer } from '../../trainer/tokenizer/tokenizer';
import { type LlamaRefConfig, llamaRefModel, refLlamaCausalLogits, refLlamaCausalNll, refLlamaSeqClsLogits } from '../reference/llama_f64';
import { readAdapterF64, readFolderF64 } from '../reference/safetensors_f64';

/**
 * `lora-studio train` for 2 steps (r = 2, lora_alpha 4, q_proj and v_proj, learning rate 1e-2) on `data`, into
 * `outDir`: two finite losses and an adapter. Returns its adapter_config.json.
 */
async function trainTwoSteps(model: string, task: Task, data: string, outDir: string, o: { batch: number; seed: number }): Promise<Record<string, unknown>> {
  const runConfig = `${outDir}-run.json`;
  fs.writeFileSync(runConfig, JSON.stringify({
    model, task, data: { train: data, eval: data, max_length: 16 }, lora: { r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'] },
    training: { output_dir: outDir, max_steps: 2, per_device_train_batch_size: o.batch, learning_rate: 1e-2, logging_steps: 1, eval_strategy: 'no', save_strategy: 'no', load_best_model_at_end: false, seed: o.seed },
  }));
  const train = await runCli(['train', '--config', runConfig, '--json']);
  assert.equal(train.code, 0, train.stderr);
  const steps = train.events.filter((e) => e.event === 'step');
  assert.equal(steps.length, 2);
  for (const s of steps) assert.ok(Number.isFinite(s.loss as number), JSON.stringify(s));
  assert.ok(fs.existsSync(path.join(outDir, 'adapter_model.safetensors')));
  return JSON.parse(fs.readFileSync(path.join(outDir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
}

describe('Llama-family folders through the CLI (real processes)', () => {
  let work: string;
  let smol: string;
  let tiny: LlamaFolder;
  let gpt2: TinyRun;

  before(() => {
    work = scratch('lora-llama-cli-');
    smol = path.join(work, 'smollm2');
    fs.mkdirSync(smol);
    fs.writeFileSync(path.join(smol, 'config.json'), JSON.stringify(SMOLLM2_135M, null, 2));
    tiny = writeLlamaFolder(path.join(work, 'tiny-llama'), { sharded: true, seed: 4, words: ['hello', 'there', 'general', 'kenobi'] });
    gpt2 = tinyRun({ task: 'causal-lm' });
  });
  after(() => {
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(gpt2.dir, { recursive: true, force: true });
  });

  it('inspect SmolLM2-135M --target-modules q_proj,v_proj --r 8 prints PEFT\'s line exactly', async () => {
    const res = await runCli(['inspect', smol, '--target-modules', 'q_proj,v_proj', '--r', '8']);
    assert.equal(res.code, 0, res.stderr);
    const lines = res.stdout.trimEnd().split('\n');
    assert.equal(lines.at(-1), 'trainable params: 460,800 || all params: 134,975,808 || trainable%: 0.3414');
    assert.ok(lines.some((l) => /^ {10}q_proj {2}Linear {2}576→576 {2}331,776 {2}◆ LoRA r=8 α=8$/.test(l)), res.stdout.slice(0, 2000));
    assert.doesNotMatch(res.stderr, /fan_in_fan_out/);
  });

  it('inspect --json: the module table the Modules view renders, and select-ready names', async () => {
    const res = await runCli(['inspect', tiny.dir, '--json']);
    assert.equal(res.code, 0, res.stderr);
    const out = res.events.at(-1) as unknown as { model_type: string; modules: Array<{ name: string; type: string; lora?: unknown }>; targets: Array<{ name: string }> };
    assert.equal(out.model_type, 'llama');
    const q = out.modules.find((m) => m.name === 'model.layers.0.self_attn.q_proj');
    assert.equal(q?.type, 'Linear');
    assert.ok(q?.lora, 'q_proj is a default target (PEFT: q_proj, v_proj)');
    assert.deepEqual(out.targets.map((t) => t.name), ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']);
  });

  it('merge: W + s·B·A on the adapter\'s targets, every other tensor bit for bit, the source untouched', async () => {
    const adapterDir = path.join(work, 'adapter');
    const q = 'model.layers.0.self_attn.q_proj';
    const v = 'model.layers.1.self_attn.v_proj';
    const adapter: AdapterWeights = writeRandomAdapter(adapterDir, gpt2.modelDir, { targets: ['q_proj', 'v_proj'], r: 2, lora_alpha: 4, modules: { [q]: [32, 32], [v]: [32, 16] } });
    const before = hashDir(tiny.dir);
    const out = path.join(work, 'merged');
    const res = await runCli(['merge', tiny.dir, '--adapter', adapterDir, '--out', out]);
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(hashDir(tiny.dir), before, 'the source folder is never written');
    const merged = loadLlamaFolder(out);
    assert.deepEqual([...merged.weights.keys()].sort(), [...tiny.weights.keys()].sort());
    for (const [key, t] of tiny.weights) {
      const module = key.slice(0, -'.weight'.length);
      const lora = adapter.lora.get(module);
      const got = merged.weights.get(key)!.data;
      if (!lora) {
        assert.deepEqual(got, t.data, `${key} unchanged`);
        continue;
      }
      const [outF, inF] = t.shape;
      const r = lora.A.shape[0];
      let maxErr = 0;
      for (let o = 0; o < outF; o++) {
        for (let i = 0; i < inF; i++) {
          let ba = 0;
          for (let k = 0; k < r; k++) ba += lora.B.data[o * r + k] * lora.A.data[k * inF + i];
          maxErr = Math.max(maxErr, Math.abs(got[o * inF + i] - (t.data[o * inF + i] + 2 * ba)));
        }
      }
      assert.ok(maxErr < 1e-6, `${key}: max |merged − (W + 2·B·A)| = ${maxErr}`);
    }
  });

  it('train (2 steps), eval and generate on a tiny Llama folder: the loss and the greedy tokens are the float64 reference\'s, through the adapter and the merged model', async () => {
    const texts = ['hello there', 'general kenobi', 'hello general kenobi there', 'there'];
    const data = writeJsonl(path.join(work, 'data.jsonl'), Array.from({ length: 8 }, (_, i) => ({ text: texts[i % 4] })));
    const outDir = path.join(work, 'out');
    const cfg = await trainTwoSteps(tiny.dir, 'causal-lm', data, outDir, { batch: 4, seed: 3 });
    assert.equal(cfg.fan_in_fan_out, false);
    assert.deepEqual([...(cfg.target_modules as string[])].sort(), ['q_proj', 'v_proj']);

    const { lora, extra: saved } = readAdapterF64(outDir);
    assert.equal(lora.size, 4, 'q_proj and v_proj of both layers');
    assert.deepEqual([...saved.keys()], []);
    const ref = llamaRefModel(tiny.config as LlamaRefConfig, 'causal-lm', 0, readFolderF64(tiny.dir), lora);
    const tok = loadTokenizer(tiny.dir);
    assert.equal(tok.encode('hello')[0], tiny.tokens.bos_token_id, 'the post-processor adds BOS (Llama 3)');

    // eval: mean NLL over the predicted tokens of each text (BOS included), against the reference
    const ev = await runCliJson(['eval', tiny.dir, '--data', data, '--adapter', outDir]);
    assert.equal(ev.res.code, 0, ev.res.stderr);
    const result = ev.json as unknown as EvalResult;
    assert.equal(result.task, 'causal-lm');
    const want = refLlamaCausalNll(ref, Array.from({ length: 8 }, (_, i) => tok.encode(texts[i % 4])));
    assert.equal(result.num_tokens, want.count);
    const loss = result.loss!;
    assert.ok(Math.abs(loss - want.nll / want.count) < 1e-5, `${loss} vs ${want.nll / want.count}`);
    const base = await runCliJson(['eval', tiny.dir, '--data', data]);
    assert.ok(Math.abs((base.json.loss as number) - loss) > 1e-4, 'the trained adapter changes the loss');

    // generate: greedy with the KV cache; each token is the reference's argmax (up to float32) given the ones before
    const prompt = 'hello there';
    const args = ['--adapter', outDir, '--prompt', prompt, '--max-new-tokens', '6', '--temperature', '0'];
    const gen = await runCliJson(['generate', tiny.dir, ...args]);
    assert.equal(gen.res.code, 0, gen.res.stderr);
    const g = gen.json as unknown as GenerateResult;
    assert.equal(g.prompt, prompt);
    assert.ok(g.token_ids.length === 6 || (g.token_ids.length < 6 && g.token_ids.at(-1) === tiny.tokens.eos_token_id), `stops at 6 tokens or at eos: ${JSON.stringify(g.token_ids)}`);
    const ids = tok.encode(prompt);
    const V = tiny.config.vocab_size;
    for (const [j, t] of g.token_ids.entries()) {
      assert.ok(j === g.token_ids.length - 1 || t !== tiny.tokens.eos_token_id, 'nothing after eos');
      const last = refLlamaCausalLogits(ref, ids).subarray((ids.length - 1) * V);
      const max = Math.max(...last);
      assert.ok(last[t] >= max - 1e-4, `token ${j}: ${t} has logit ${last[t]}, the reference's argmax ${last.indexOf(max)} has ${max}`);
      ids.push(t);
    }
    assert.equal(g.completion, tok.decode(g.token_ids));
    const merged = path.join(work, 'merged-trained');
    const m = await runCli(['merge', tiny.dir, '--adapter', outDir, '--out', merged]);
    assert.equal(m.code, 0, m.stderr);
    const fromMerged = await runCliJson(['generate', merged, ...args.slice(2)]);
    assert.equal(fromMerged.res.code, 0, fromMerged.res.stderr);
    assert.deepEqual((fromMerged.json as unknown as GenerateResult).token_ids, g.token_ids, 'the merged model generates the same tokens');
  });

  it('seq-cls on a Qwen2 causal-lm folder (tied, q/k/v biases): train a new score head with LoRA, merge, eval and classify agree with each other and the float64 reference', async () => {
    const qwen = writeLlamaFolder(path.join(work, 'tiny-qwen'), { model_type: 'qwen2', seed: 6, words: ['good', 'bad', 'film', 'plot'] });
    assert.equal(qwen.config.tie_word_embeddings, true);
    assert.ok(qwen.weights.has('model.layers.0.self_attn.q_proj.bias') && !qwen.weights.has('lm_head.weight'));
    const rows = ['good film', 'bad film', 'good plot', 'bad plot', 'film good', 'plot bad'].map((text) => ({ text, label: text.includes('good') ? 'positive' : 'negative' }));
    const data = writeJsonl(path.join(work, 'cls.jsonl'), rows);
    const outDir = path.join(work, 'cls-out');
    const cfg = await trainTwoSteps(qwen.dir, 'seq-cls', data, outDir, { batch: 3, seed: 5 });
    assert.equal(cfg.task_type, 'SEQ_CLS');
    assert.deepEqual(cfg.modules_to_save, ['score']);

    const { lora, extra: saved } = readAdapterF64(outDir);
    assert.deepEqual([...saved.keys()], ['score.weight']);
    assert.deepEqual(saved.get('score.weight')!.shape, [2, qwen.config.hidden_size]);
    const weights = new Map([...readFolderF64(qwen.dir), ...saved]);
    const ref = llamaRefModel(qwen.config as LlamaRefConfig, 'seq-cls', 2, weights, lora);
    const noLora = llamaRefModel(qwen.config as LlamaRefConfig, 'seq-cls', 2, weights);
    const tok = loadTokenizer(qwen.dir);

    const merged = path.join(work, 'cls-merged');
    const m = await runCli(['merge', qwen.dir, '--adapter', outDir, '--out', merged]);
    assert.equal(m.code, 0, m.stderr);
    const mergedCfg = JSON.parse(fs.readFileSync(path.join(merged, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(mergedCfg.architectures, ['Qwen2ForSequenceClassification']);
    const labels = mergedCfg.id2label as Record<string, string>;
    assert.deepEqual(Object.values(labels).sort(), ['negative', 'positive']);

    for (const text of ['good film', 'plot bad']) {
      const a = await runCliJson(['classify', qwen.dir, '--adapter', outDir, '--text', text]);
      const b = await runCliJson(['classify', merged, '--text', text]);
      assert.equal(a.res.code, 0, a.res.stderr);
      assert.equal(b.res.code, 0, b.res.stderr);
      const ca = a.json as unknown as ClassifyResult;
      const cb = b.json as unknown as ClassifyResult;
      const logits = refLlamaSeqClsLogits(ref, tok.encode(text));
      const without = refLlamaSeqClsLogits(noLora, tok.encode(text));
      assert.ok(Math.abs(logits[1] - logits[0] - (without[1] - without[0])) > 1e-3, `${text}: the trained LoRA changes the logits`);
      const z = Math.max(...logits);
      const sum = logits.reduce((acc, l) => acc + Math.exp(l - z), 0);
      for (const [id, name] of Object.entries(labels)) {
        const p = Math.exp(logits[Number(id)] - z) / sum;
        assert.ok(Math.abs(ca.probabilities[name] - p) < 1e-6, `${text}: p(${name}) ${ca.probabilities[name]} vs the reference's ${p}`);
        assert.ok(Math.abs(cb.probabilities[name] - p) < 1e-6, `${text}: merged p(${name}) ${cb.probabilities[name]} vs the reference's ${p}`);
      }
      assert.equal(ca.label, labels[String(logits.indexOf(z))]);
      assert.equal(cb.label, ca.label);
    }
    const ea = await runCliJson(['eval', qwen.dir, '--adapter', outDir, '--data', data]);
    const eb = await runCliJson(['eval', merged, '--data', data]);
    assert.equal(ea.res.code, 0, ea.res.stderr);
    assert.equal(eb.res.code, 0, eb.res.stderr);
    assert.equal(ea.json.task, 'seq-cls');
    assert.equal(ea.json.accuracy, eb.json.accuracy);
    assert.ok(Math.abs((ea.json.loss as number) - (eb.json.loss as number)) < 1e-5, `${ea.json.loss} vs ${eb.json.loss}`);
  });
});
