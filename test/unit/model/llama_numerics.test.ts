/**
 * Issue 13's numeric checks of the Llama family against the independent float64 reference
 * (test/reference/llama_f64.ts), for two tiny random folders written by test/util/llama_folder.ts:
 *
 * - llama: BF16 weights in 2 shards with model.safetensors.index.json, rope_scaling llama3, GQA (4 heads, 2 KV
 *   heads), untied lm_head;
 * - qwen2: q/k/v biases, tied embeddings, F32 (so that a merge can be compared exactly); plus Qwen2 and Mistral
 *   sliding windows shorter than the sequence, for the logits.
 *
 * For each: logits; central differences of the reference loss against the model's gradients of LoRA A and B;
 * eval loss with and without a PEFT adapter written to disk and loaded through the CLI's path (openModel);
 * `merge` (mergeToFolder) against the reference's float64 merge, and the merged model's loss; one training step
 * (loss, grad_norm and torch's AdamW update in checkpoint-1) against float64.
 *
 * The reference never sees the trainer's loader: it reads the safetensors files itself (BF16 → F32 is exact by
 * shifting 16 bits), so a decoding, sharding, tying or transposing mistake in the loader shows up here.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { collate, type Example } from '../../../trainer/data/collate';
import { familyForDir } from '../../../trainer/models/registry';
import type { LoadedModel, LoraModel, ModelSpec } from '../../../trainer/models/family';
import type { LoraTarget } from '../../../trainer/protocol';
import type { AdapterConfigJson, AdapterWeights } from '../../../trainer/lora/types';
import type { HostTensor } from '../../../trainer/io/safetensors';
import { initialLoraFactors } from '../../../trainer/lora/layer';
import { saveAdapter } from '../../../trainer/lora/adapter_io';
import { mergeToFolder } from '../../../trainer/commands/merge';
import { openModel, openTrainingSession } from '../../../trainer/train/session';
import { evaluate } from '../../../trainer/eval';
import { loadRunConfig } from '../../../trainer/config/run_config';
import { train } from '../../../trainer/train/trainer';
import type { StepEvent, TrainEvent } from '../../../trainer/protocol';
import { Rng } from '../../../trainer/util/rng';
import { writeLlamaFolder, type LlamaFolderOptions } from '../../util/llama_folder';
import {
  type LlamaRefConfig, type LlamaRefModel, llamaRefModel, refLlamaCausalLogits, refLlamaCausalNll, refLlamaLoss, refLlamaSeqClsLogits, refMergeLinear,
} from '../../reference/llama_f64';
import { onEachBackend, relErr } from './tiny';
import { type DiskTensor, readAdapterF64, readFolderF64 } from '../../reference/safetensors_f64';

const TOL = 1e-4;
const LLAMA3 = { rope_type: 'llama3', factor: 8, low_freq_factor: 2, high_freq_factor: 32, original_max_position_embeddings: 256 };

// ---------------------------------------------------------------------------------------------------------------
// Setups

interface Case {
  name: string;
  opts: LlamaFolderOptions;
  /** LoRA targets of the in-memory checks: module, r, lora_alpha */
  lora: Array<[string, number, number]>;
  /** gradient coordinates (PEFT layout) */
  coords: Array<{ key: string; at: [number, number] }>;
}

const BODY_LORA: Array<[string, number, number]> = [
  ['model.layers.0.self_attn.q_proj', 2, 4], ['model.layers.0.self_attn.k_proj', 3, 3], ['model.layers.0.self_attn.v_proj', 2, 6],
  ['model.layers.0.self_attn.o_proj', 2, 2], ['model.layers.1.mlp.gate_proj', 2, 5], ['model.layers.1.mlp.up_proj', 1, 2],
  ['model.layers.1.mlp.down_proj', 3, 6], ['model.layers.1.self_attn.v_proj', 2, 4],
];

const COORDS: Case['coords'] = [
  { key: 'model.layers.0.self_attn.q_proj.lora_A.weight', at: [1, 5] },
  { key: 'model.layers.0.self_attn.q_proj.lora_B.weight', at: [17, 0] },
  { key: 'model.layers.0.self_attn.k_proj.lora_A.weight', at: [2, 30] },
  { key: 'model.layers.0.self_attn.k_proj.lora_B.weight', at: [9, 1] },
  { key: 'model.layers.0.self_attn.v_proj.lora_B.weight', at: [3, 1] },
  { key: 'model.layers.0.self_attn.o_proj.lora_A.weight', at: [0, 12] },
  { key: 'model.layers.1.mlp.gate_proj.lora_B.weight', at: [40, 1] },
  { key: 'model.layers.1.mlp.up_proj.lora_A.weight', at: [0, 3] },
  { key: 'model.layers.1.mlp.down_proj.lora_A.weight', at: [2, 47] },
  { key: 'model.layers.1.mlp.down_proj.lora_B.weight', at: [31, 2] },
];

const CASES: Case[] = [
  {
    name: 'llama (BF16, 2 shards + index, llama3 RoPE, GQA 4/2, untied lm_head)',
    opts: { model_type: 'llama', dtype: 'BF16', sharded: true, tied: false, seed: 11, config: { rope_scaling: LLAMA3 } },
    // untied: the head is an ordinary Linear and takes LoRA too (a tied one is refused by the model)
    lora: [...BODY_LORA, ['lm_head', 2, 4]],
    coords: [...COORDS, { key: 'lm_head.lora_A.weight', at: [1, 7] }, { key: 'lm_head.lora_B.weight', at: [100, 0] }],
  },
  {
    name: 'qwen2 (q/k/v biases, tied embeddings, F32)',
    opts: { model_type: 'qwen2', dtype: 'F32', tied: true, seed: 12 },
    lora: BODY_LORA, coords: COORDS,
  },
];

let root = '';
before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'llama-numerics-'));
});
after(() => fs.rmSync(root, { recursive: true, force: true }));
let folders = 0;

interface Setup {
  dir: string;
  task: 'causal-lm' | 'seq-cls';
  num_labels: number;
  config: LlamaRefConfig;
  disk: Map<string, DiskTensor>;
  pad: number;
  vocab: number;
  loaded: LoadedModel;
  targets: LoraTarget[];
  adapter: AdapterWeights;
}

function adapterConfig(r: number, lora_alpha: number, targets: string[]): AdapterConfigJson {
  return {
    peft_type: 'LORA', task_type: 'CAUSAL_LM', base_model_name_or_path: null, r, lora_alpha, lora_dropout: 0, target_modules: targets,
    modules_to_save: null, bias: 'none', use_rslora: false, fan_in_fan_out: false, init_lora_weights: false, rank_pattern: {}, alpha_pattern: {}, inference_mode: true,
  };
}

/** A folder on disk, loaded by the family's loader, with LoRA factors (non-zero B) for `lora`. */
function setup(c: Case, over: LlamaFolderOptions = {}, lora = c.lora): Setup {
  const dir = path.join(root, `m${folders++}`);
  const f = writeLlamaFolder(dir, { ...c.opts, ...over, config: { ...c.opts.config, ...over.config } });
  const family = familyForDir(dir);
  const task = over.task ?? c.opts.task ?? 'causal-lm';
  const loaded = family.load(dir, { task });
  const shapes = family.weightShapes(loaded.config, task, loaded.num_labels);
  const rng = new Rng(99);
  const targets: LoraTarget[] = [];
  const factors = new Map<string, { A: HostTensor; B: HostTensor }>();
  for (const [name, r, lora_alpha] of lora) {
    const [outF, inF] = name === 'lm_head' ? [loaded.config.vocab_size as number, loaded.config.hidden_size as number] : shapes.get(`${name}.weight`)!;
    targets.push({ name, type: 'Linear', in_features: inF, out_features: outF, r, lora_alpha, scaling: lora_alpha / r });
    factors.set(name, initialLoraFactors(inF, outF, r, false, rng));
  }
  return {
    dir, task, num_labels: loaded.num_labels, config: f.config as LlamaRefConfig, disk: readFolderF64(dir), pad: f.tokens.pad_token_id!, vocab: f.config.vocab_size, loaded, targets,
    adapter: { config: adapterConfig(2, 4, lora.map(([n]) => n)), lora: factors, extra: new Map() },
  };
}

function specOf(s: Setup, over: Partial<ModelSpec> = {}): ModelSpec {
  return {
    config: s.loaded.config, task: s.task, num_labels: s.num_labels, weights: s.loaded.weights, targets: s.targets,
    modules_to_save: s.task === 'seq-cls' ? ['score'] : [], bias: 'none',
    lora_dropout: 0, init_lora_weights: false, seed: 7, adapter: s.adapter, pad_token_id: s.pad, ...over,
  };
}

function createModel(s: Setup, over: Partial<ModelSpec> = {}): LoraModel {
  return familyForDir(s.dir).createModel(specOf(s, over));
}

/** The reference from the weights on disk and the setup's LoRA factors (scaling lora_alpha / r per target). */
function refOf(s: Setup, lora: Map<string, { A: HostTensor | Float64Array; B: HostTensor | Float64Array; r?: number; scaling: number }> | 'setup' = 'setup', weights = s.disk): LlamaRefModel {
  const factors = lora === 'setup'
    ? new Map(s.targets.map((t) => [t.name, { ...s.adapter.lora.get(t.name)!, scaling: t.scaling }]))
    : lora;
  return llamaRefModel(s.config, s.task, s.num_labels, new Map([...weights].map(([k, t]) => [k, t.data])), factors);
}

/** Uneven rows of token ids below `vocab`, never the pad id. */
function randomRows(lengths: number[], seed: number, vocab: number, pad: number): number[][] {
  const rng = new Rng(seed);
  return lengths.map((n) => Array.from({ length: n }, () => {
    let id = rng.int(vocab);
    while (id === pad) id = rng.int(vocab);
    return id;
  }));
}

async function lossOf(model: LoraModel, examples: Example[], pad: number): Promise<number> {
  const l = model.loss(collate(examples, pad), { training: false });
  const v = (await l.data())[0];
  l.dispose();
  return v;
}

async function expectLogits(model: LoraModel, ref: LlamaRefModel, rows: number[][], pad: number, what: string): Promise<void> {
  const logits = model.logits(collate(rows.map((input_ids) => ({ input_ids })), pad), { training: false });
  const V = ref.config.vocab_size;
  assert.deepEqual(logits.shape, [rows.length, Math.max(...rows.map((r) => r.length)), V]);
  const got = (await logits.array()) as number[][][];
  logits.dispose();
  rows.forEach((ids, b) => {
    const want = refLlamaCausalLogits(ref, ids);
    const real = got[b].slice(0, ids.length).flat();
    assert.ok(relErr(real, want) < TOL, `${what}, row ${b}: rel err ${relErr(real, want)}`);
  });
}

// ---------------------------------------------------------------------------------------------------------------

for (const c of CASES) {
  describe(`Llama-family numerics vs float64: ${c.name}`, () => {
    onEachBackend(() => {
      it('logits and loss, with LoRA on every projection kind (and the untied lm_head); padding; the reference reads the files itself', async () => {
        const s = setup(c);
        // the loader's values equal the bytes on disk (BF16 decoded here by shifting), key for key
        for (const [k, t] of s.disk) assert.ok(relErr(s.loaded.weights.get(k)!.data, t.data) === 0, `${k} as loaded differs from the file`);
        const model = createModel(s);
        const ref = refOf(s);
        const rows = randomRows([7, 3, 9, 1], 21, s.vocab, s.pad);
        await expectLogits(model, ref, rows, s.pad, 'with LoRA');
        const loss = await lossOf(model, rows.map((input_ids) => ({ input_ids })), s.pad);
        const want = refLlamaLoss(ref, rows);
        assert.ok(Math.abs(loss - want) < TOL * Math.max(1, want), `loss ${loss} vs reference ${want}`);
        // LoRA matters: the base model's logits are far from these
        assert.ok(relErr((refLlamaCausalLogits(refOf(s, new Map()), rows[0])), refLlamaCausalLogits(ref, rows[0])) > 1e-2);
        model.dispose();
      });

      it('gradients of lora_A / lora_B equal central differences of the float64 loss', async () => {
        const s = setup(c);
        const model = createModel(s);
        const rows = randomRows([6, 4, 8], 8, s.vocab, s.pad);
        const batch = collate(rows.map((input_ids) => ({ input_ids })), s.pad);
        const vars = [...model.trainable.values()];
        const { value, grads } = tf.variableGrads(() => model.loss(batch, { training: false }), vars);
        const h = 1e-5;
        for (const co of c.coords) {
          const m = /^(.*)\.lora_([AB])\.weight$/.exec(co.key)!;
          const t = s.targets.find((x) => x.name === m[1])!;
          const peftShape = m[2] === 'A' ? [t.r, t.in_features] : [t.out_features, t.r];
          const at = (delta: number) => {
            const ref = refOf(s);
            const f = ref.lora.get(m[1])!;
            (m[2] === 'A' ? f.A : f.B)[co.at[0] * peftShape[1] + co.at[1]] += delta;
            return refLlamaLoss(ref, rows);
          };
          const fd = (at(h) - at(-h)) / (2 * h);
          const v = model.trainable.get(co.key);
          assert.ok(v, `no trainable ${co.key}; trainable: ${[...model.trainable.keys()].slice(0, 4).join(', ')}, …`);
          const g = (await grads[v.name].array()) as number[][];
          // PEFT layout [out|r, in|r], or its transpose (a model may keep x·Aᵀ's operand as [in, r])
          const [d0, d1] = v.shape as [number, number];
          const peft = d0 === peftShape[0] && d1 === peftShape[1];
          assert.ok(peft || (d0 === peftShape[1] && d1 === peftShape[0]), `${co.key}: shape ${v.shape}, PEFT's is ${peftShape}`);
          const got = peft ? g[co.at[0]][co.at[1]] : g[co.at[1]][co.at[0]];
          assert.ok(Math.abs(fd) > 1e-6, `${co.key}[${co.at}]: the reference gradient is ~0, pick another coordinate`);
          assert.ok(Math.abs(got - fd) <= 2e-4 + 2e-3 * Math.abs(fd), `${co.key}[${co.at}]: tfjs ${got}, finite difference ${fd}`);
        }
        tf.dispose([value, ...Object.values(grads)]);
        model.dispose();
      });
    });

    it('eval loss without and with a PEFT adapter on disk, loaded as the CLI loads it (openModel)', async () => {
      const s = setup(c, {}, [['model.layers.0.self_attn.q_proj', 2, 5], ['model.layers.0.self_attn.v_proj', 2, 5], ['model.layers.1.mlp.down_proj', 2, 5], ['model.layers.1.self_attn.o_proj', 2, 5]]);
      const adapterDir = path.join(root, `adapter${folders++}`);
      saveAdapter(adapterDir, { ...s.adapter, config: adapterConfig(2, 5, s.targets.map((t) => t.name)) });
      const rows = randomRows([5, 1, 3, 8, 2], 13, s.vocab, s.pad);
      const examples = rows.map((input_ids) => ({ input_ids }));

      const plain = await openModel({ modelDir: s.dir });
      const m0 = await evaluate(plain.model, examples, { batch_size: 2, pad_token_id: plain.pad_token_id });
      plain.model.dispose();
      const ref0 = refLlamaCausalNll(refOf(s, new Map()), rows);
      assert.equal(ref0.count, 14);
      assert.ok('num_tokens' in m0 && m0.num_tokens === 14, JSON.stringify(m0));
      assert.ok(Math.abs(m0.loss - ref0.nll / ref0.count) < TOL, `base: eval ${m0.loss} vs reference ${ref0.nll / ref0.count}`);

      const withAdapter = await openModel({ modelDir: s.dir, adapterDir });
      const m1 = await evaluate(withAdapter.model, examples, { batch_size: 3, pad_token_id: withAdapter.pad_token_id });
      withAdapter.model.dispose();
      const onDisk = readAdapterF64(adapterDir);
      assert.equal(onDisk.lora.size, 4);
      const ref1 = refLlamaCausalNll(refOf(s, onDisk.lora), rows);
      assert.ok(Math.abs(m1.loss - ref1.nll / ref1.count) < TOL, `adapter: eval ${m1.loss} vs reference ${ref1.nll / ref1.count}`);
      assert.ok(Math.abs(m1.loss - m0.loss) > 1e-2, `the adapter changes the loss (${m0.loss} → ${m1.loss})`);
    });

    it('merge: the merged weights are W + s·B·A (in the stored dtype), and the merged model has the unmerged loss', async () => {
      const s = setup(c, {}, [['model.layers.0.self_attn.q_proj', 2, 6], ['model.layers.0.self_attn.k_proj', 2, 6], ['model.layers.1.mlp.gate_proj', 2, 6], ['model.layers.1.mlp.down_proj', 2, 6]]);
      const adapterDir = path.join(root, `adapter${folders++}`);
      saveAdapter(adapterDir, { ...s.adapter, config: adapterConfig(2, 6, s.targets.map((t) => t.name)) });
      const outDir = path.join(root, `merged${folders++}`);
      const result = mergeToFolder(s.dir, adapterDir, outDir);
      assert.equal(result.merged_modules, 4);
      const merged = readFolderF64(outDir);
      const onDisk = readAdapterF64(adapterDir);
      assert.deepEqual([...merged.keys()].sort(), [...s.disk.keys()].sort());
      for (const [k, base] of s.disk) {
        const got = merged.get(k)!;
        assert.equal(got.dtype, base.dtype, `${k} keeps its dtype`);
        const module = k.replace(/\.weight$/, '');
        const f = onDisk.lora.get(module);
        if (!f) {
          assert.deepEqual(got.data, base.data, `${k} has no LoRA and must be unchanged`);
          continue;
        }
        const want = refMergeLinear(base.data, f.A, f.B, f.r, f.scaling);
        let worst = 0;
        for (let i = 0; i < want.length; i++) {
          // F32: float32 rounding of the sum; BF16: within half a BF16 step (8 significant bits) of the exact value
          const step = base.dtype === 'BF16' ? 2 ** (Math.floor(Math.log2(Math.abs(want[i]) || 1e-30)) - 7) : 0;
          worst = Math.max(worst, Math.abs(got.data[i] - want[i]) - step / 2 - 1e-6 * Math.abs(want[i]));
        }
        assert.ok(worst <= 1e-7, `${k}: merged value off by ${worst} beyond the storage rounding`);
        assert.ok(relErr(got.data, base.data) > 1e-4, `${k} changed`);
      }

      const rows = randomRows([6, 2, 7], 31, s.vocab, s.pad);
      const examples = rows.map((input_ids) => ({ input_ids }));
      const opened = await openModel({ modelDir: outDir });
      const m = await evaluate(opened.model, examples, { batch_size: 3, pad_token_id: opened.pad_token_id });
      opened.model.dispose();
      const unmerged = refLlamaCausalNll(refOf(s, onDisk.lora), rows);
      const fromMergedFiles = refLlamaCausalNll(refOf(s, new Map(), merged), rows);
      const u = unmerged.nll / unmerged.count;
      const mf = fromMergedFiles.nll / fromMergedFiles.count;
      assert.ok(Math.abs(m.loss - mf) < TOL, `merged model ${m.loss} vs reference on the merged files ${mf}`);
      // F32: the merge is exact to float32, so the merged model has the unmerged loss; BF16: apart only by what
      // rounding the merged weights to BF16 moves the float64 loss
      const rounding = Math.abs(mf - u);
      if (c.opts.dtype === 'F32') assert.ok(rounding < 1e-5, `F32 merge moved the float64 loss by ${rounding}`);
      assert.ok(Math.abs(m.loss - u) < TOL + rounding, `merged model ${m.loss} vs unmerged reference ${u} (BF16 rounding accounts for ${rounding})`);
    });

    it('one training step: loss, grad_norm, and the AdamW update in checkpoint-1 match float64', async () => {
      const runDir = path.join(root, `run${folders++}`);
      const modelDir = path.join(runDir, 'model');
      const f = writeLlamaFolder(modelDir, { ...c.opts, words: ['hello', 'there', 'cat', 'sat'] });
      const texts = ['a b c', 'hello there', 'x', 'the cat sat', 'no', 'yes yes', 'lora', 'zz top'];
      fs.writeFileSync(path.join(runDir, 'train.jsonl'), texts.map((text) => JSON.stringify({ text })).join('\n') + '\n');
      fs.writeFileSync(path.join(runDir, 'eval.jsonl'), texts.slice(0, 2).map((text) => JSON.stringify({ text })).join('\n') + '\n');
      const lr = 1e-2;
      const wd = 0.1;
      const eps = 1e-3; // a large adam_epsilon makes the first update smooth in the gradient, so it can be compared
      const configFile = path.join(runDir, 'lora-run.json');
      fs.writeFileSync(configFile, JSON.stringify({
        model: './model', task: 'causal-lm',
        data: { train: 'train.jsonl', eval: 'eval.jsonl', max_length: 16 },
        lora: { r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj', 'down_proj'], init_lora_weights: false },
        training: {
          output_dir: 'out', max_steps: 1, per_device_train_batch_size: 8, learning_rate: lr, weight_decay: wd, adam_epsilon: eps,
          lr_scheduler_type: 'constant', max_grad_norm: 0, logging_steps: 1, eval_strategy: 'no', save_strategy: 'steps', save_steps: 1,
          load_best_model_at_end: false, seed: 3,
        },
      }, null, 2));
      const cfg = loadRunConfig(configFile);
      const session = await openTrainingSession(cfg, { configFile, onWarning: () => {} });
      const initial = await session.exportAdapter();
      const ids = session.data.train.map((e) => e.input_ids);
      session.model.dispose();
      assert.equal(ids.length, 8);

      const events: TrainEvent[] = [];
      await train(cfg, { onEvent: (e) => events.push(e), configFile });
      const step = events.find((e): e is StepEvent => e.event === 'step');
      assert.ok(step, `no step event: ${JSON.stringify(events.filter((e) => e.event !== 'step').slice(-2))}`);
      const afterStep = readAdapterF64(path.join(runDir, 'out', 'checkpoint-1'));

      const disk = readFolderF64(modelDir);
      const ref = llamaRefModel(f.config as LlamaRefConfig, 'causal-lm', 0, new Map([...disk].map(([k, t]) => [k, t.data])),
        new Map([...initial.lora].map(([name, fa]) => [name, { ...fa, scaling: 2 }])));
      assert.equal(ref.lora.size, 6, 'q_proj, v_proj and down_proj in 2 layers');
      const loss = () => refLlamaLoss(ref, ids);
      const refLoss = loss();
      assert.ok(Math.abs(step.loss - refLoss) < 1e-5 * Math.max(1, refLoss), `loss ${step.loss} vs reference ${refLoss}`);

      const h = 1e-5;
      let normSq = 0;
      let worst = 0;
      let worstAt = '';
      for (const [name, fa] of ref.lora) {
        const got = afterStep.lora.get(name)!;
        for (const [which, arr, after] of [['A', fa.A, got.A], ['B', fa.B, got.B]] as const) {
          for (let i = 0; i < arr.length; i++) {
            const p = arr[i];
            arr[i] = p + h;
            const up = loss();
            arr[i] = p - h;
            const down = loss();
            arr[i] = p;
            const g = (up - down) / (2 * h);
            normSq += g * g;
            // torch.optim.AdamW, first step: m̂ = g, √v̂ = |g|; decoupled weight decay on every LoRA matrix
            const expected = p * (1 - lr * wd) - (lr * g) / (Math.abs(g) + eps);
            const d = Math.abs(after[i] - expected);
            if (d > worst) [worst, worstAt] = [d, `${name}.lora_${which}[${i}]`];
          }
        }
      }
      assert.ok(worst < 2e-5, `largest difference from the reference AdamW update: ${worst} at ${worstAt}`);
      const refNorm = Math.sqrt(normSq);
      assert.ok(Math.abs(step.grad_norm - refNorm) < 1e-4 * refNorm, `grad_norm ${step.grad_norm} vs reference ${refNorm}`);
    });
  });
}

describe('Llama-family numerics vs float64: config variants (logits)', () => {
  onEachBackend(() => {
    const llama = CASES[0];
    const cases: Array<[string, Case]> = [
      ['qwen2, use_sliding_window, window 3 from layer 1 (max_window_layers 1)', { ...CASES[1], opts: { ...CASES[1].opts, config: { use_sliding_window: true, sliding_window: 3, max_window_layers: 1 } } }],
      ['mistral, window 3 on every layer', { ...llama, opts: { model_type: 'mistral', dtype: 'F32', seed: 13, config: { sliding_window: 3 } } }],
      ["transformers v5's rope_parameters (llama3, rope_theta 500 inside, none at the top level)", {
        ...llama, opts: { ...llama.opts, dtype: 'F16', sharded: false, config: { rope_theta: undefined, rope_scaling: undefined, rope_parameters: { ...LLAMA3, rope_theta: 500 } } },
      }],
      ['linear RoPE (factor 3), head_dim 12 ≠ hidden/heads, attention_bias and mlp_bias', {
        ...llama, opts: { ...llama.opts, config: { rope_scaling: { type: 'linear', factor: 3 }, head_dim: 12, attention_bias: true, mlp_bias: true } },
        lora: [['model.layers.0.self_attn.q_proj', 2, 4], ['model.layers.1.self_attn.o_proj', 2, 4], ['model.layers.0.mlp.up_proj', 2, 4]],
      }],
    ];
    for (const [name, c] of cases) {
      it(`${name}: logits`, async () => {
        const s = setup(c);
        const model = createModel(s);
        const ref = refOf(s);
        const rows = randomRows([9, 4, 7], 41, s.vocab, s.pad);
        await expectLogits(model, ref, rows, s.pad, name);
        model.dispose();
        if (name.startsWith('qwen2') || name.startsWith('mistral')) {
          // the window matters: without it the reference is far from these logits
          const full = llamaRefModel({ ...s.config, sliding_window: null, use_sliding_window: false }, 'causal-lm', 0, ref.weights, ref.lora);
          assert.ok(relErr(refLlamaCausalLogits(full, rows[0]), refLlamaCausalLogits(ref, rows[0])) > 1e-3);
        }
      });
    }

    it('seq-cls (qwen2, 3 labels, LoRA and score): logits at the last real token, the loss, gradients of score and LoRA', async () => {
      const s = setup({ ...CASES[1], opts: { ...CASES[1].opts, task: 'seq-cls', num_labels: 3 } });
      const model = createModel(s);
      const ref = refOf(s);
      const rows = randomRows([6, 2, 8, 1], 5, s.vocab, s.pad);
      const labels = [2, 0, 1, 1];
      const examples = rows.map((input_ids, i) => ({ input_ids, label: labels[i] }));
      const logits = model.logits(collate(examples, s.pad), { training: false });
      assert.deepEqual(logits.shape, [4, 3]);
      const got = (await logits.array()) as number[][];
      logits.dispose();
      rows.forEach((ids, b) => {
        const want = refLlamaSeqClsLogits(ref, ids);
        assert.ok(relErr(got[b], want) < TOL, `row ${b}: ${got[b]} vs ${[...want]}`);
      });
      const loss = await lossOf(model, examples, s.pad);
      const want = refLlamaLoss(ref, rows, labels);
      assert.ok(Math.abs(loss - want) < TOL * Math.max(1, want), `loss ${loss} vs ${want}`);

      // gradients of the head (modules_to_save) and of a LoRA factor against central differences
      const { value, grads } = tf.variableGrads(() => model.loss(collate(examples, s.pad), { training: false }), [...model.trainable.values()]);
      const H = s.config.hidden_size;
      const coords: Array<{ key: string; rows: number; cols: number; at: [number, number]; arr: (m: LlamaRefModel) => Float64Array }> = [
        { key: 'score.weight', rows: 3, cols: H, at: [2, 5], arr: (m) => m.weights.get('score.weight')! },
        { key: 'score.weight', rows: 3, cols: H, at: [0, 30], arr: (m) => m.weights.get('score.weight')! },
        { key: 'model.layers.1.mlp.down_proj.lora_B.weight', rows: H, cols: 3, at: [7, 2], arr: (m) => m.lora.get('model.layers.1.mlp.down_proj')!.B },
      ];
      for (const co of coords) {
        const lossAt = (delta: number) => {
          const r = refOf(s);
          co.arr(r)[co.at[0] * co.cols + co.at[1]] += delta;
          return refLlamaLoss(r, rows, labels);
        };
        const fd = (lossAt(1e-5) - lossAt(-1e-5)) / 2e-5;
        const v = model.trainable.get(co.key)!;
        assert.ok(v, `no trainable ${co.key}`);
        const g = (await grads[v.name].array()) as number[][];
        const peft = v.shape[0] === co.rows;
        assert.ok(peft ? v.shape[1] === co.cols : v.shape[0] === co.cols && v.shape[1] === co.rows, `${co.key}: shape ${v.shape}`);
        const got = peft ? g[co.at[0]][co.at[1]] : g[co.at[1]][co.at[0]];
        assert.ok(Math.abs(fd) > 1e-6, `${co.key}[${co.at}]: the reference gradient is ~0`);
        assert.ok(Math.abs(got - fd) <= 2e-4 + 2e-3 * Math.abs(fd), `${co.key}[${co.at}]: tfjs ${got}, finite difference ${fd}`);
      }
      tf.dispose([value, ...Object.values(grads)]);
      model.dispose();
    });
  });
});
