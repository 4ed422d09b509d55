/**
 * The webgpu backend end to end, through the built CLI: the demo job's first training steps on webgpu match wasm
 * (loss and grad_norm within 1e-4), eval and classify run on it, every command reports the adapter, stdout
 * stays clean JSON, and the process exits although a GPU object was alive. Here Dawn's only adapter is Mesa's
 * llvmpipe (OpenGL ES, software), which only a forced `--backend webgpu` takes; without any adapter it skips.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BIN, scratch } from './helpers';
import { buildDemoBase, DEMO_TARGETS } from '../../trainer/commands/demo';
import { sentimentRows } from '../../trainer/demo/sentiment';
import { webgpuSkipReason } from '../unit/model/webgpu_probe';

const STEPS = 5;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 180_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** stdout of a --json run as events; every line must be JSON (Dawn prints its own errors on stdout). */
function events(stdout: string): Array<Record<string, unknown>> {
  return stdout.trim().split('\n').map((line) => {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new Error(`stdout has a line that is not JSON: ${line.slice(0, 200)}`);
    }
  });
}

describe('webgpu through the CLI (demo job)', async () => {
  const skip = await webgpuSkipReason();
  let work = '';
  before(() => {
    if (skip) return;
    work = scratch('lora-webgpu-');
    buildDemoBase(path.join(work, 'base'));
    const toJsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
    fs.mkdirSync(path.join(work, 'data'));
    fs.writeFileSync(path.join(work, 'data', 'train.jsonl'), toJsonl(sentimentRows(2000, 1)));
    fs.writeFileSync(path.join(work, 'data', 'eval.jsonl'), toJsonl(sentimentRows(40, 2)));
    for (const backend of ['wasm', 'webgpu']) {
      // the demo's run config (trainer/commands/demo.ts), cut to its first steps, logging each
      fs.writeFileSync(path.join(work, `${backend}.json`), JSON.stringify({
        model: './base', task: 'seq-cls', num_labels: 2,
        data: { train: 'data/train.jsonl', eval: 'data/eval.jsonl', text_column: 'text', label_column: 'label', max_length: 32 },
        lora: { r: 4, lora_alpha: 8, lora_dropout: 0.0, target_modules: DEMO_TARGETS, modules_to_save: ['score'] },
        training: {
          output_dir: `run-${backend}`, max_steps: STEPS, per_device_train_batch_size: 32, learning_rate: 1e-3, weight_decay: 1e-5,
          lr_scheduler_type: 'linear', warmup_ratio: 0, eval_strategy: 'no', save_strategy: 'no', logging_steps: 1, seed: 42,
        },
      }));
    }
  });

  it('train: the first steps on webgpu match wasm within 1e-4; the start event names the adapter', { skip }, async () => {
    const runs: Record<string, Array<Record<string, unknown>>> = {};
    for (const backend of ['wasm', 'webgpu']) {
      const r = await cli(['train', '--config', path.join(work, `${backend}.json`), '--backend', backend, '--json']);
      assert.equal(r.code, 0, `${backend}: ${r.stderr.slice(-2000)}`);
      runs[backend] = events(r.stdout);
    }
    const start = runs.webgpu.find((e) => e.event === 'start')!;
    assert.equal(start.backend, 'webgpu');
    assert.equal(start.gpu, false, 'llvmpipe is no GPU');
    const adapter = start.adapter as { software: boolean; description: string };
    assert.equal(adapter.software, true);
    assert.match(adapter.description, /\S/);
    assert.equal(runs.wasm.find((e) => e.event === 'start')!.adapter, undefined);
    const steps = (b: string) => runs[b].filter((e) => e.event === 'step') as Array<{ step: number; loss: number; grad_norm: number }>;
    const [w, g] = [steps('wasm'), steps('webgpu')];
    assert.equal(w.length, STEPS);
    assert.equal(g.length, STEPS);
    for (let i = 0; i < STEPS; i++) {
      console.log(`step ${w[i].step}: loss wasm ${w[i].loss.toFixed(7)} webgpu ${g[i].loss.toFixed(7)}; grad_norm ${w[i].grad_norm.toFixed(6)} ${g[i].grad_norm.toFixed(6)}`);
      assert.ok(Math.abs(w[i].loss - g[i].loss) < 1e-4, `step ${i + 1}: loss ${w[i].loss} vs ${g[i].loss}`);
      assert.ok(Math.abs(w[i].grad_norm - g[i].grad_norm) < 1e-4 * Math.max(1, w[i].grad_norm), `step ${i + 1}: grad_norm ${w[i].grad_norm} vs ${g[i].grad_norm}`);
    }
  });

  it('eval and classify run on webgpu, print the adapter, and agree with wasm', { skip }, async () => {
    const adapter = path.join(work, 'run-webgpu');
    assert.ok(fs.existsSync(path.join(adapter, 'adapter_model.safetensors')), 'the train test saved an adapter');
    const base = path.join(work, 'base');
    const out: Record<string, Record<string, unknown>> = {};
    for (const backend of ['wasm', 'webgpu']) {
      const e = await cli(['eval', base, '--adapter', adapter, '--data', path.join(work, 'data', 'eval.jsonl'), '--task', 'seq-cls', '--backend', backend, '--json']);
      assert.equal(e.code, 0, e.stderr.slice(-2000));
      out[`eval-${backend}`] = events(e.stdout).at(-1)!;
      const c = await cli(['classify', base, '--adapter', adapter, '--text', 'the movie was great', '--backend', backend, '--json']);
      assert.equal(c.code, 0, c.stderr.slice(-2000));
      out[`classify-${backend}`] = events(c.stdout).at(-1)!;
    }
    assert.equal(out['eval-webgpu'].backend, 'webgpu');
    assert.equal((out['eval-webgpu'].adapter as { software: boolean }).software, true);
    assert.ok(Math.abs((out['eval-webgpu'].loss as number) - (out['eval-wasm'].loss as number)) < 1e-4);
    assert.equal(out['classify-webgpu'].label, out['classify-wasm'].label);
    const p = (k: string) => out[k].probabilities as Record<string, number>;
    for (const [label, v] of Object.entries(p('classify-wasm'))) assert.ok(Math.abs(p('classify-webgpu')[label] - v) < 1e-4, label);
    // the human-readable backend line names the adapter
    const line = await cli(['classify', base, '--adapter', adapter, '--text', 'bad', '--backend', 'webgpu']);
    assert.equal(line.code, 0, line.stderr.slice(-2000));
    assert.match(line.stdout + line.stderr, /backend: webgpu \(GPU: not found; adapter: .+, software\)/);
  });
});
