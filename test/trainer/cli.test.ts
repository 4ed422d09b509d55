/**
 * The `lora-studio` CLI as a real process: every command with --json (one JSON object on stdout) and without
 * (human output); the backend that ran; inspect's module table and PEFT line; eval(base + adapter) =
 * eval(merged) and the causal loss against the float64 reference; merge's folder and its refusals;
 * deterministic greedy generation; train's JSON Lines event stream, metrics.jsonl, SIGINT and --resume.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hashDir, runCli, runCliJson, scratch, tinyRun, writeJsonl, writeRandomAdapter, type TinyRun } from './helpers';
import { writeRandomGPT2 } from '../../trainer/models/gpt2/random_init';
import { readConfig } from '../../trainer/models/gpt2/config';
import { readSafetensors, tensorToF32, type HostTensor } from '../../trainer/io/safetensors';
import { loadCheckpoint } from '../../trainer/train/checkpoint';
import { refCausalNll, refModel, type RefConfig } from '../reference/gpt2_f64';

const PEFT_LINE = /^trainable params: [\d,]+ \|\| all params: [\d,]+ \|\| trainable%: \d+\.\d{4}$/m;

/** GPT-2's byte order in its vocabulary (printable bytes first): the tiny models' byte-level tokenizer ids. */
function byteIds(text: string): number[] {
  const order: number[] = [];
  for (let b = 33; b <= 126; b++) order.push(b);
  for (let b = 161; b <= 172; b++) order.push(b);
  for (let b = 174; b <= 255; b++) order.push(b);
  for (let b = 0; b < 256; b++) if (!order.includes(b)) order.push(b);
  return [...Buffer.from(text, 'utf8')].map((b) => order.indexOf(b));
}

/** named_modules() of GPT2LMHeadModel / GPT2ForSequenceClassification with n_layer layers, in PyTorch's order. */
function expectedModuleNames(nLayer: number, head: 'lm_head' | 'score'): string[] {
  const names = ['', 'transformer', 'transformer.wte', 'transformer.wpe', 'transformer.drop', 'transformer.h'];
  for (let i = 0; i < nLayer; i++) {
    const h = `transformer.h.${i}`;
    names.push(h, `${h}.ln_1`, `${h}.attn`, `${h}.attn.c_attn`, `${h}.attn.c_proj`, `${h}.attn.attn_dropout`, `${h}.attn.resid_dropout`,
      `${h}.ln_2`, `${h}.mlp`, `${h}.mlp.c_fc`, `${h}.mlp.c_proj`, `${h}.mlp.act`, `${h}.mlp.dropout`);
  }
  names.push('transformer.ln_f', head);
  return names;
}

/** PEFT's line computed here from the tiny config (n_embd 16, vocab 257, n_positions 32, 2 layers). */
function peftLine(trainable: number, all: number): string {
  return `trainable params: ${trainable.toLocaleString('en-US')} || all params: ${all.toLocaleString('en-US')} || trainable%: ${(100 * trainable / all).toFixed(4)}`;
}
const C = 16;
const BASE_PARAMS = 257 * C + 32 * C + 2 * (2 * C + (C * 3 * C + 3 * C) + (C * C + C) + 2 * C + (C * 4 * C + 4 * C) + (4 * C * C + C)) + 2 * C;

type Json = Record<string, unknown>;
const targetsOf = (j: Json) => (j.targets as Array<{ name: string }>).map((t) => t.name);

describe('lora-studio CLI (real processes)', () => {
  let run: TinyRun;
  let adapterDir: string;
  let work: string;

  before(() => {
    run = tinyRun({ task: 'causal-lm' });
    work = scratch();
    adapterDir = path.join(work, 'adapter');
    writeRandomAdapter(adapterDir, run.modelDir, { targets: ['c_attn', 'c_proj', 'c_fc'], r: 2, seed: 5 });
  });
  after(() => {
    fs.rmSync(run.dir, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  });

  describe('inspect', () => {
    it('--json: modules as named_modules() names them, targets marked, the PEFT line; no backend ran', async () => {
      const { res, json } = await runCliJson(['inspect', run.modelDir, '--target-modules', 'c_attn', '--r', '2']);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.events.length, 1, 'one JSON object on stdout');
      assert.equal(json.backend, null);
      assert.equal(json.gpu, false);
      const modules = json.modules as Array<Json>;
      assert.deepEqual(modules.map((m) => m.name), expectedModuleNames(2, 'lm_head'));
      const marked = modules.filter((m) => m.lora).map((m) => m.name);
      assert.deepEqual(marked, ['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_attn']);
      assert.deepEqual(modules.find((m) => m.name === 'transformer.h.0.attn.c_attn')!.lora, { r: 2, lora_alpha: 8, scaling: 4 });
      const c_attn = modules.find((m) => m.name === 'transformer.h.1.attn.c_attn')!;
      assert.equal(c_attn.type, 'Conv1D');
      assert.equal(c_attn.in_features, 16);
      assert.equal(c_attn.out_features, 48);
      assert.equal(c_attn.params, 16 * 48 + 48);
      // LoRA on c_attn, r=2: A [2,16] + B [48,2] per layer
      const trainable = 2 * (2 * 16 + 48 * 2);
      assert.equal(json.trainable_params, trainable);
      assert.equal(json.all_params, BASE_PARAMS + trainable);
      assert.equal(json.line, peftLine(trainable, BASE_PARAMS + trainable));
    });

    it('human output: "backend: none", the tree with LoRA marks, then the PEFT line', async () => {
      const res = await runCli(['inspect', run.modelDir, '--target-modules', 'c_attn', '--r', '2']);
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /^backend: none\b/m);
      const trainable = 2 * (2 * 16 + 48 * 2);
      assert.ok(res.stdout.trimEnd().endsWith(peftLine(trainable, BASE_PARAMS + trainable)), res.stdout);
      const marked = res.stdout.split('\n').filter((l) => l.includes('LoRA r=2'));
      assert.equal(marked.length, 2);
      assert.ok(marked.every((l) => /^\s+c_attn\s+Conv1D\s+16→48/.test(l)), marked.join('\n'));
      assert.match(res.stdout, /^\s+lm_head\s+Linear/m);
    });

    it('target spec parsing: a regex must match the whole name, a list entry matches exactly or as a .suffix', async () => {
      const cases: Array<[string, string[]]> = [
        ['transformer\\.h\\.0\\.attn\\.c_attn', ['transformer.h.0.attn.c_attn']],
        ['.*\\.1\\.(attn|mlp)\\.c_proj', ['transformer.h.1.attn.c_proj', 'transformer.h.1.mlp.c_proj']],
        ['attn.c_proj', ['transformer.h.0.attn.c_proj', 'transformer.h.1.attn.c_proj']],
        ['c_proj', ['transformer.h.0.attn.c_proj', 'transformer.h.0.mlp.c_proj', 'transformer.h.1.attn.c_proj', 'transformer.h.1.mlp.c_proj']],
        ['c_fc, attn.c_attn', ['transformer.h.0.attn.c_attn', 'transformer.h.0.mlp.c_fc', 'transformer.h.1.attn.c_attn', 'transformer.h.1.mlp.c_fc']],
        ['["h.0.mlp.c_fc"]', ['transformer.h.0.mlp.c_fc']],
      ];
      for (const [spec, expected] of cases) {
        const { res, json } = await runCliJson(['inspect', run.modelDir, '--target-modules', spec, '--r', '2']);
        assert.equal(res.code, 0, `${spec}: ${res.stderr}`);
        assert.deepEqual(targetsOf(json).sort(), expected, spec);
      }
      const all = await runCliJson(['inspect', run.modelDir, '--target-modules', 'all-linear']);
      assert.equal(targetsOf(all.json).length, 8, 'all-linear: every Conv1D, not lm_head');
      assert.ok(!targetsOf(all.json).includes('lm_head'));
      // A regex that only matches part of a name matches nothing: an error that names close modules.
      const partial = await runCli(['inspect', run.modelDir, '--target-modules', 'h\\.0\\.attn\\.c_attn']);
      assert.notEqual(partial.code, 0);
      assert.match(partial.stderr, /target_modules/);
      assert.match(partial.stderr, /transformer\.h\.0\.attn\.c_attn/);
    });

    it('--config run.json: takes task, num_labels and lora (incl. the seq-cls head as modules_to_save) from the run config', async () => {
      const cfgFile = path.join(work, 'inspect-run.json');
      fs.writeFileSync(cfgFile, JSON.stringify({
        model: path.relative(work, run.modelDir), task: 'seq-cls', num_labels: 3, data: { train: 'x.jsonl' },
        lora: { r: 4, lora_alpha: 16, target_modules: 'transformer\\.h\\.\\d+\\.attn\\.c_.*' },
      }));
      const { res, json } = await runCliJson(['inspect', run.modelDir, '--config', cfgFile]);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(json.task, 'seq-cls');
      assert.equal(json.num_labels, 3);
      assert.deepEqual((json.modules as Json[]).map((m) => m.name), expectedModuleNames(2, 'score'));
      assert.deepEqual(targetsOf(json).sort(), ['transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj', 'transformer.h.1.attn.c_attn', 'transformer.h.1.attn.c_proj']);
      assert.deepEqual(json.modules_to_save, ['score']);
      const score = (json.modules as Json[]).find((m) => m.name === 'score')!;
      assert.equal(score.out_features, 3);
      assert.equal(score.modules_to_save, true);
      // r=4 on c_attn (A 4×16, B 48×4) and attn.c_proj (A 4×16, B 16×4) per layer, plus the score head 3×16
      const lora = 2 * (4 * 16 + 48 * 4 + 4 * 16 + 16 * 4);
      const base = BASE_PARAMS + 3 * 16;
      assert.equal(json.trainable_params, lora + 3 * 16);
      // PEFT counts the head once in the base model and once more as its trainable copy
      assert.equal(json.all_params, base + lora + 3 * 16);
      assert.equal(json.line, peftLine(lora + 3 * 16, base + lora + 3 * 16));
    });
    it('--config run.json takes the model folder from the run config\'s `model` (issue 2: "reads its model, task, num_labels and lora")', async () => {
      const { res, json } = await runCliJson(['inspect', '--config', run.configFile]);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(fs.realpathSync(json.model_dir as string), fs.realpathSync(run.modelDir));
    });
  });

  describe('eval, merge, generate', () => {
    it('causal-lm: eval(base + adapter) = eval(merged) within 1e-5, on the backend asked for; loss = NLL / predicted tokens (float64 reference)', async () => {
      const texts = ['yes', 'red blue cat', 'no sun', 'a much longer sentence here'];
      const data = writeJsonl(path.join(work, 'causal.jsonl'), texts.map((text) => ({ text })));
      const merged = path.join(work, 'merged-causal');
      const m = await runCliJson(['merge', run.modelDir, '--adapter', adapterDir, '--out', merged]);
      assert.equal(m.res.code, 0, m.res.stderr);
      assert.equal(m.json.backend, null);
      assert.equal(m.json.merged_modules, 8);
      let adapterLoss = NaN;
      for (const backend of ['cpu', 'wasm']) {
        const a = await runCliJson(['eval', run.modelDir, '--adapter', adapterDir, '--data', data, '--backend', backend]);
        const b = await runCliJson(['eval', merged, '--data', data, '--backend', backend]);
        assert.equal(a.res.code, 0, a.res.stderr);
        assert.equal(b.res.code, 0, b.res.stderr);
        assert.equal(a.json.backend, backend);
        assert.equal(a.json.gpu, false);
        assert.equal(b.json.backend, backend);
        assert.equal(a.json.task, 'causal-lm');
        assert.equal(a.json.num_tokens, b.json.num_tokens);
        assert.ok(Math.abs((a.json.loss as number) - (b.json.loss as number)) < 1e-5, `${backend}: ${a.json.loss} vs ${b.json.loss}`);
        assert.ok(Math.abs((a.json.perplexity as number) - Math.exp(a.json.loss as number)) < 1e-6 * (a.json.perplexity as number));
        adapterLoss = a.json.loss as number;
      }

      // the adapter changes the model, so the equality above is not vacuous
      const base = await runCliJson(['eval', run.modelDir, '--data', data, '--backend', 'wasm']);
      assert.ok(Math.abs((base.json.loss as number) - adapterLoss) > 1e-3, `base ${base.json.loss} vs adapter ${adapterLoss}`);

      // The float64 reference on the same weights and adapter factors.
      const config = readConfig(run.modelDir);
      const st = readSafetensors(path.join(run.modelDir, 'model.safetensors'));
      const weights = new Map<string, HostTensor>([...st.entries.keys()].map((k) => [k, tensorToF32(st, k)]));
      const ad = readSafetensors(path.join(adapterDir, 'adapter_model.safetensors'));
      const lora = new Map<string, { A: HostTensor; B: HostTensor; scaling: number }>();
      for (const key of ad.entries.keys()) {
        const mm = /^base_model\.model\.(.+)\.lora_A\.weight$/.exec(key);
        if (mm) lora.set(mm[1], { A: tensorToF32(ad, key), B: tensorToF32(ad, key.replace('lora_A', 'lora_B')), scaling: 4 / 2 });
      }
      assert.equal(lora.size, 8);
      const ref = refModel(config as unknown as RefConfig, 'causal-lm', 0, weights, lora);
      const rows = texts.map(byteIds);
      const full = refCausalNll(ref, rows);
      const got = await runCliJson(['eval', run.modelDir, '--adapter', adapterDir, '--data', data, '--batch-size', '3']);
      assert.equal(got.json.num_tokens, full.count);
      assert.ok(Math.abs((got.json.loss as number) - full.nll / full.count) < 1e-4, `${got.json.loss} vs ${full.nll / full.count}`);
      // --max-length truncates every example before counting
      const cut = refCausalNll(ref, rows.map((r) => r.slice(0, 5)));
      const short = await runCliJson(['eval', run.modelDir, '--adapter', adapterDir, '--data', data, '--max-length', '5']);
      assert.equal(short.json.num_tokens, cut.count);
      assert.ok(Math.abs((short.json.loss as number) - cut.nll / cut.count) < 1e-4, `${short.json.loss} vs ${cut.nll / cut.count}`);
    });

    it('eval human output names the backend and whether a GPU was found', async () => {
      const data = writeJsonl(path.join(work, 'h.jsonl'), [{ text: 'red cat' }]);
      const res = await runCli(['eval', run.modelDir, '--data', data, '--backend', 'cpu']);
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /^backend: cpu \(GPU: not found\)$/m);
      assert.match(res.stdout, /^loss: \d+\.\d+$/m);
      assert.match(res.stdout, /^perplexity: \d+\.\d+$/m);
    });

    it('seq-cls: eval(base + adapter) and eval(merged) give the same accuracy, weighted F1 and loss', async () => {
      const dir = path.join(work, 'cls');
      const model = path.join(dir, 'model');
      writeRandomGPT2(model, { task: 'seq-cls', num_labels: 3, seed: 9, std: 0.2, config: { n_embd: 16, n_head: 2, n_layer: 2, n_positions: 32 } });
      const adapter = path.join(dir, 'adapter');
      writeRandomAdapter(adapter, model, { task: 'seq-cls', targets: ['c_attn', 'mlp.c_proj'], r: 2, seed: 8, std: 0.5 });
      const rows = ['red yes cat', 'no', 'blue dog sun rain', 'tall', 'small yes', 'cat cat cat dog', 'rain no sun', 'yes'].map((text, i) => ({ text, label: i % 3 }));
      const data = writeJsonl(path.join(dir, 'cls.jsonl'), rows);
      const merged = path.join(dir, 'merged');
      const m = await runCli(['merge', model, '--adapter', adapter, '--out', merged]);
      assert.equal(m.code, 0, m.stderr);
      const cfg = JSON.parse(fs.readFileSync(path.join(merged, 'config.json'), 'utf8'));
      assert.deepEqual(cfg.architectures, ['GPT2ForSequenceClassification']);
      assert.equal(cfg.num_labels, 3);
      const a = await runCliJson(['eval', model, '--adapter', adapter, '--data', data]);
      const b = await runCliJson(['eval', merged, '--data', data]);
      const base = await runCliJson(['eval', model, '--data', data, '--task', 'seq-cls']);
      assert.equal(a.res.code, 0, a.res.stderr);
      assert.equal(b.res.code, 0, b.res.stderr);
      assert.equal(a.json.task, 'seq-cls');
      assert.equal(b.json.task, 'seq-cls');
      assert.equal(a.json.num_examples, 8);
      assert.equal(a.json.accuracy, b.json.accuracy);
      assert.equal(a.json.f1, b.json.f1);
      assert.ok(Math.abs((a.json.loss as number) - (b.json.loss as number)) < 1e-5, `${a.json.loss} vs ${b.json.loss}`);
      // the adapter (new score head + LoRA) changes the model: the check above is not vacuous
      assert.ok(Math.abs((a.json.loss as number) - (base.json.loss as number)) > 1e-3);

      // classify: base + adapter and the merged model give the same label and probabilities
      const ca = await runCliJson(['classify', model, '--adapter', adapter, '--text', 'red yes cat']);
      const cb = await runCliJson(['classify', merged, '--text', 'red yes cat']);
      assert.equal(ca.res.code, 0, ca.res.stderr);
      assert.equal(ca.json.label, cb.json.label);
      const pa = ca.json.probabilities as Record<string, number>;
      const pb = cb.json.probabilities as Record<string, number>;
      assert.deepEqual(Object.keys(pa), ['LABEL_0', 'LABEL_1', 'LABEL_2']);
      assert.ok(Math.abs(Object.values(pa).reduce((x, y) => x + y, 0) - 1) < 1e-6);
      for (const k of Object.keys(pa)) assert.ok(Math.abs(pa[k] - pb[k]) < 1e-5, k);
    });

    it('merge writes a complete HF folder, leaves the base folder byte-identical, refuses an existing --out and the model folder', async () => {
      const before = hashDir(run.modelDir);
      const out = path.join(work, 'merged-2');
      const res = await runCli(['merge', run.modelDir, '--adapter', adapterDir, '--out', out]);
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /^backend: none\b/m);
      assert.deepEqual(fs.readdirSync(out).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
      assert.deepEqual(hashDir(run.modelDir), before);
      // same keys and dtypes as the input, different values in the LoRA modules only
      const src = readSafetensors(path.join(run.modelDir, 'model.safetensors'));
      const dst = readSafetensors(path.join(out, 'model.safetensors'));
      assert.deepEqual([...dst.entries.keys()].sort(), [...src.entries.keys()].sort());
      assert.notDeepEqual(tensorToF32(dst, 'transformer.h.0.attn.c_attn.weight').data, tensorToF32(src, 'transformer.h.0.attn.c_attn.weight').data);
      assert.deepEqual(tensorToF32(dst, 'transformer.wte.weight').data, tensorToF32(src, 'transformer.wte.weight').data);
      assert.equal(fs.readFileSync(path.join(out, 'tokenizer.json'), 'utf8'), fs.readFileSync(path.join(run.modelDir, 'tokenizer.json'), 'utf8'));

      const outHash = hashDir(out);
      for (const target of [out, run.modelDir, path.join(run.modelDir, 'inside')]) {
        const again = await runCli(['merge', run.modelDir, '--adapter', adapterDir, '--out', target]);
        assert.notEqual(again.code, 0, target);
        assert.match(again.stderr, /^lora-studio: error: .*(already exists|must not be the model folder)/m, again.stderr);
        assert.ok(again.stderr.includes(target), again.stderr);
        assert.equal(again.stdout, '');
      }
      assert.deepEqual(hashDir(out), outHash, 'a refused merge leaves the existing folder alone');
      assert.deepEqual(hashDir(run.modelDir), before);
      assert.ok(!fs.existsSync(path.join(run.modelDir, 'inside')));
    });

    it('generate: greedy is deterministic across runs, respects --max-new-tokens, JSON has completion and token_ids', async () => {
      const args = ['generate', run.modelDir, '--adapter', adapterDir, '--prompt', 'red yes', '--max-new-tokens', '6', '--temperature', '0'];
      const a = await runCliJson(args);
      const b = await runCliJson(args);
      assert.equal(a.res.code, 0, a.res.stderr);
      assert.deepEqual(a.json, b.json);
      const ids = a.json.token_ids as number[];
      assert.ok(Array.isArray(ids) && ids.every((t) => Number.isInteger(t) && t >= 0 && t < 257));
      // 6 tokens, or fewer ending in <|endoftext|> (id 256)
      assert.ok(ids.length === 6 || (ids.length < 6 && ids.at(-1) === 256), JSON.stringify(ids));
      assert.equal(typeof a.json.completion, 'string');
      assert.equal(a.json.prompt, 'red yes');
      assert.equal(a.json.gpu, false);
      assert.ok(['cpu', 'wasm', 'tensorflow'].includes(a.json.backend as string));
      const two = await runCliJson([...args.slice(0, 6), '--max-new-tokens', '2', '--backend', 'cpu']);
      assert.equal(two.json.backend, 'cpu');
      assert.deepEqual(two.json.token_ids, ids.slice(0, 2), 'greedy: a shorter run is a prefix of the longer one');
      const human = await runCli(args);
      assert.match(human.stdout, /^backend: \w+ \(GPU: (found|not found)\)$/m);
      assert.ok(human.stdout.includes('red yes'), human.stdout);
    });
  });

  describe('train', () => {
    it('--json: stdout is JSON Lines of start/step/eval/checkpoint/done; metrics.jsonl holds the same events', async () => {
      const r = tinyRun({ task: 'causal-lm', training: { max_steps: 4, eval_strategy: 'steps', eval_steps: 2, save_strategy: 'steps', save_steps: 2 } });
      try {
        const res = await runCli(['train', '--config', r.configFile, '--json', '--backend', 'cpu']);
        assert.equal(res.code, 0, res.stderr);
        const lines = res.stdout.trim().split('\n');
        assert.equal(res.events.length, lines.length, 'every stdout line is JSON');
        const ev = res.events.filter((e) => e.event !== 'log');
        assert.deepEqual(ev.map((e) => e.event), ['start', 'step', 'step', 'eval', 'checkpoint', 'step', 'step', 'eval', 'checkpoint', 'done']);
        const start = ev[0] as Json;
        assert.equal(start.backend, 'cpu');
        assert.equal(start.gpu, false);
        assert.equal(start.total_steps, 4);
        const ins = await runCliJson(['inspect', r.modelDir, '--config', r.configFile]);
        assert.equal(start.trainable_params, ins.json.trainable_params);
        assert.equal(start.all_params, ins.json.all_params);
        const steps = ev.filter((e) => e.event === 'step') as Json[];
        assert.deepEqual(steps.map((s) => s.step), [1, 2, 3, 4]);
        steps.forEach((s, i) => {
          for (const k of ['epoch', 'loss', 'learning_rate', 'grad_norm', 'tokens_per_second', 'samples_per_second', 'rss_mb', 'eta_s']) {
            assert.ok(typeof s[k] === 'number' && Number.isFinite(s[k]), `step ${s.step}: ${k} = ${s[k]}`);
          }
          // linear schedule, no warm-up: lr · (1 − i / total)
          assert.ok(Math.abs((s.learning_rate as number) - 1e-2 * (1 - i / 4)) < 1e-12, `lr ${s.learning_rate}`);
          assert.equal(s.epoch, (i + 1) / 4, '32 rows / batch 8 = 4 steps an epoch');
        });
        for (const e of ev.filter((x) => x.event === 'eval') as Json[]) {
          const m = e.metrics as Record<string, number>;
          assert.ok(Number.isFinite(m.eval_loss));
          assert.ok(Math.abs(m.eval_perplexity - Math.exp(m.eval_loss)) < 1e-6 * m.eval_perplexity);
        }
        const cks = ev.filter((e) => e.event === 'checkpoint') as Json[];
        assert.deepEqual(cks.map((c) => path.basename(c.path as string)), ['checkpoint-2', 'checkpoint-4']);
        for (const c of cks) assert.ok(fs.existsSync(path.join(c.path as string, 'adapter_model.safetensors')));
        const done = ev.at(-1) as Json;
        assert.equal(done.stopped, false);
        assert.equal(done.global_step, 4);
        assert.ok(done.best === null || typeof done.best === 'string');
        assert.equal(fs.realpathSync(done.output_dir as string), fs.realpathSync(r.outputDir));
        assert.ok(fs.existsSync(path.join(r.outputDir, 'adapter_model.safetensors')));
        const metrics = fs.readFileSync(path.join(r.outputDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
        assert.deepEqual(metrics, res.events);
      } finally {
        fs.rmSync(r.dir, { recursive: true, force: true });
      }
    });

    it('without --json: a human progress output with the backend, the PEFT line, steps and the summary', async () => {
      const r = tinyRun({ task: 'seq-cls', training: { max_steps: 4, eval_strategy: 'no', save_strategy: 'no' } });
      try {
        const res = await runCli(['train', '--config', r.configFile, '--backend', 'wasm']);
        assert.equal(res.code, 0, res.stderr);
        assert.equal(res.events.length, 0, 'no JSON on stdout without --json');
        assert.match(res.stdout, /^backend: wasm \(GPU: not found\)$/m);
        assert.match(res.stdout, PEFT_LINE);
        assert.match(res.stdout, /step 4\/4 .*loss \d+\.\d+/);
        assert.match(res.stdout, /^done: 4 steps/m);
      } finally {
        fs.rmSync(r.dir, { recursive: true, force: true });
      }
    });

    it('SIGINT after the 2nd step: exit 0, a loadable checkpoint, done.stopped; then --resume runs to the end', async () => {
      const r = tinyRun({ task: 'causal-lm', training: { num_train_epochs: 20, eval_strategy: 'no', save_strategy: 'no' } });
      try {
        let sent = false;
        const res = await runCli(['train', '--config', r.configFile, '--json'], {
          onLine: (line, child) => {
            if (!sent && line.includes('"event":"step"') && JSON.parse(line).step === 2) {
              sent = true;
              child.kill('SIGINT');
            }
          },
        });
        assert.ok(sent);
        assert.equal(res.code, 0, res.stderr);
        assert.match(res.stderr, /SIGINT/);
        const done = res.events.at(-1) as Json;
        assert.equal(done.event, 'done');
        assert.equal(done.stopped, true);
        const stoppedAt = done.global_step as number;
        assert.ok(stoppedAt >= 2 && stoppedAt < 80, `stopped at ${stoppedAt}`);
        const ck = res.events.filter((e) => e.event === 'checkpoint').at(-1) as Json;
        assert.equal(path.basename(ck.path as string), `checkpoint-${stoppedAt}`);
        const loaded = loadCheckpoint(ck.path as string);
        assert.equal(loaded.state.global_step, stoppedAt);
        assert.ok(loaded.adapter.lora.size > 0);
        const evalCk = await runCliJson(['eval', r.modelDir, '--adapter', ck.path as string, '--data', path.join(r.dir, 'eval.jsonl')]);
        assert.equal(evalCk.res.code, 0, evalCk.res.stderr);
        assert.ok(Number.isFinite(evalCk.json.loss));

        const resumed = await runCli(['train', '--config', r.configFile, '--resume', '--json']);
        assert.equal(resumed.code, 0, resumed.stderr);
        const start = resumed.events.find((e) => e.event === 'start') as Json;
        assert.equal(start.global_step, stoppedAt);
        const steps = resumed.events.filter((e) => e.event === 'step').map((e) => e.step);
        assert.equal(steps[0], stoppedAt + 1);
        assert.equal(steps.at(-1), 80);
        const end = resumed.events.at(-1) as Json;
        assert.equal(end.event, 'done');
        assert.equal(end.stopped, false);
        assert.equal(end.global_step, 80);
        assert.ok(fs.existsSync(path.join(r.outputDir, 'adapter_model.safetensors')));
        const metrics = fs.readFileSync(path.join(r.outputDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
        assert.equal(metrics.filter((e) => e.event === 'start').length, 2, 'the resumed run appends to metrics.jsonl');
      } finally {
        fs.rmSync(r.dir, { recursive: true, force: true });
      }
    });
  });
});
