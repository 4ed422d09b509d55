import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TrainEvent } from '../../../trainer/protocol';
import { backendLabel } from '../../../extension/backendLabel';
import { decodeImageDataUrl, imageFileName, writeFileAtomic } from '../../../extension/analyze/image';
import { isPanelWebviewMessage, toAnalysisData } from '../../../extension/analyze/messages';
import { diffConfigs, flattenConfig, recordedRunConfig, runConfigOf, runCurves, runNames } from '../../../extension/analyze/runs';
import { isAnalyzeHostMessage, isCompareHostMessage } from '../../../webview/protocol';

const PNG_1x1 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

describe('the backend, named once', () => {
  const sw = { vendor: 'mesa', architecture: '', device: 'llvmpipe (LLVM 15.0.6, 256 bits)', description: '', software: true };
  const hw = { vendor: 'nvidia', architecture: 'hopper', device: 'NVIDIA H200', description: 'NVIDIA H200 (driver 550)', software: false };
  it('says WASM, CPU, TensorFlow (GPU/CPU) and the WebGPU adapter', () => {
    assert.deepEqual(backendLabel({ backend: 'wasm', gpu: false }), { kind: 'WASM', text: 'WASM' });
    assert.deepEqual(backendLabel({ backend: 'cpu', gpu: false }), { kind: 'CPU', text: 'CPU' });
    assert.deepEqual(backendLabel({ backend: 'tensorflow', gpu: true }), { kind: 'GPU', text: 'TensorFlow (GPU)' });
    assert.deepEqual(backendLabel({ backend: 'tensorflow', gpu: false }), { kind: 'CPU', text: 'TensorFlow (CPU)' });
    assert.deepEqual(backendLabel({ backend: 'webgpu', gpu: true, adapter: hw }), { kind: 'GPU', text: 'WebGPU · NVIDIA H200' });
    assert.deepEqual(backendLabel({ backend: 'webgpu', gpu: false, adapter: sw }), { kind: 'CPU', text: 'WebGPU · llvmpipe (software)' });
    assert.equal(backendLabel({ backend: 'webgpu', gpu: false, adapter: { ...sw, device: '', description: '', vendor: '' } }).text, 'WebGPU · unnamed adapter (software)');
    assert.equal(backendLabel({ backend: 'webgpu', gpu: false }).text, 'WebGPU');
  });
});

const analyzeJson = {
  backend: null, gpu: false, adapter: '/a', base: '/m',
  modules: [
    { name: 'transformer.h.0.attn.c_attn', r: 2, singular_values: [2, 1], delta_fro: Math.sqrt(5), stable_rank: 1.25, amplification: { factor: 3.5, projected_fro: 0.6, random_fro: 0.1 } },
    { name: 'score', r: 2, singular_values: [1, 0], delta_fro: 1, stable_rank: 1 },
  ],
  similarity: [{ name: 'transformer.h.0.attn.c_attn', phi: [[1, 0.5], [0.5, 0.75]] }],
  warnings: ['w'],
};

describe('the analyze result on its way to the webview', () => {
  it('keeps the fields the panel draws and passes the webview guard', () => {
    const d = toAnalysisData(analyzeJson);
    assert.equal(d.base, '/m');
    assert.equal(d.compare, null);
    assert.deepEqual(d.modules[0].amplification, { factor: 3.5, projected_fro: 0.6, random_fro: 0.1 });
    assert.equal(d.modules[1].amplification, undefined);
    assert.ok(isAnalyzeHostMessage({ type: 'analysis', data: d }));
    assert.ok(!('backend' in d));
  });

  it('names the field that is wrong', () => {
    assert.throws(() => toAnalysisData({ ...analyzeJson, modules: [{ ...analyzeJson.modules[0], singular_values: [1, 'x'] }] }), /modules\[0\]\.singular_values/);
    assert.throws(() => toAnalysisData({ ...analyzeJson, modules: [{ ...analyzeJson.modules[0], amplification: { factor: 1 } }] }), /modules\[0\]\.amplification/);
    assert.throws(() => toAnalysisData({ ...analyzeJson, similarity: [{ name: 'x', phi: [[NaN]] }] }), /similarity\[0\]/);
    assert.throws(() => toAnalysisData({ modules: [] }), /adapter/);
  });

  it('the webview guards refuse malformed host messages', () => {
    const d = toAnalysisData(analyzeJson);
    assert.ok(isAnalyzeHostMessage({ type: 'error', message: 'adapter_config.json: r: must be a positive integer' }));
    assert.ok(isAnalyzeHostMessage({ type: 'notice', level: 'info', message: 'saved' }));
    assert.ok(!isAnalyzeHostMessage({ type: 'analysis', data: { ...d, modules: [{ ...d.modules[0], r: '2' }] } }));
    assert.ok(!isAnalyzeHostMessage({ type: 'analysis', data: { ...d, similarity: [{ name: 'x', phi: [1] }] } }));
    assert.ok(!isAnalyzeHostMessage({ type: 'notice', level: 'warn', message: 'x' }));
    assert.ok(!isAnalyzeHostMessage(null));
    const run = { name: 'a', dir: '/a', loss: [[1, 2], [3, 2]], evals: { eval_loss: [[2], [2.5]] } };
    assert.ok(isCompareHostMessage({ type: 'compare', runs: [run], diff: [{ path: 'lora.r', values: ['4', null] }], configSources: ['/a/x', null] }));
    assert.ok(!isCompareHostMessage({ type: 'compare', runs: [{ ...run, loss: [[1, 2], [3]] }], diff: [], configSources: [] }));
    assert.ok(!isCompareHostMessage({ type: 'compare', runs: [run], diff: [{ path: 'lora.r', values: [4] }], configSources: [] }));
  });

  it('the host checks what the panels send', () => {
    assert.ok(isPanelWebviewMessage({ type: 'ready' }));
    assert.ok(isPanelWebviewMessage({ type: 'saveImage', name: 'heatmap', dataUrl: `data:image/png;base64,${PNG_1x1}` }));
    assert.ok(isPanelWebviewMessage({ type: 'rendered', charts: { heatmap: 36 } }));
    assert.ok(!isPanelWebviewMessage({ type: 'saveImage', name: '', dataUrl: 'data:image/png;base64,' }));
    assert.ok(!isPanelWebviewMessage({ type: 'saveImage', name: 'x', dataUrl: 'file:///etc/passwd' }));
    assert.ok(!isPanelWebviewMessage({ type: 'rendered', charts: { heatmap: 'x' } }));
    assert.ok(!isPanelWebviewMessage({ type: 'start' }));
  });
});

describe('saving a chart image', () => {
  it('decodes PNG and SVG data URLs and refuses anything else', () => {
    const png = decodeImageDataUrl(`data:image/png;base64,${PNG_1x1}`);
    assert.ok(png.ok && png.ext === 'png' && png.bytes.length > 60);
    const svg = decodeImageDataUrl(`data:image/svg+xml;base64,${Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>').toString('base64')}`);
    assert.ok(svg.ok && svg.ext === 'svg');
    assert.ok(!decodeImageDataUrl(`data:image/png;base64,${Buffer.from('not a png').toString('base64')}`).ok);
    assert.ok(!decodeImageDataUrl('data:image/gif;base64,R0lGOD').ok);
    assert.ok(!decodeImageDataUrl('data:image/png,rawbytes').ok);
  });

  it('makes a file name from the chart name', () => {
    assert.equal(imageFileName('spectrum-transformer.h.0.attn.c_attn', 'png'), 'spectrum-transformer.h.0.attn.c_attn.png');
    assert.equal(imageFileName('compare-Eval loss', 'png'), 'compare-Eval-loss.png');
    assert.equal(imageFileName('../../x', 'svg'), 'x.svg');
    assert.equal(imageFileName('///', 'png'), 'chart.png');
  });

  it('writes atomically: the file appears whole and no temporary file is left', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-img-'));
    const file = path.join(dir, 'a.png');
    fs.writeFileSync(file, 'old');
    writeFileAtomic(file, Buffer.from('new bytes'));
    assert.equal(fs.readFileSync(file, 'utf8'), 'new bytes');
    assert.deepEqual(fs.readdirSync(dir), ['a.png']);
    assert.throws(() => writeFileAtomic(path.join(dir, 'missing', 'b.png'), Buffer.from('x')));
    assert.deepEqual(fs.readdirSync(dir), ['a.png']);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('comparing runs', () => {
  const step = (s: number, loss: number) => ({ event: 'step', step: s, epoch: s / 10, loss, learning_rate: 1e-3, grad_norm: 1, tokens_per_second: 100, rss_mb: 1, eta_s: 0 }) as TrainEvent;
  const start = (g: number) => ({ event: 'start', backend: 'wasm', gpu: false, task: 'causal-lm', model: 'm', output_dir: 'o', trainable_params: 1, all_params: 2, total_steps: 10, num_train_epochs: 1, global_step: g }) as TrainEvent;
  const evalAt = (s: number, m: Record<string, number>) => ({ event: 'eval', step: s, epoch: 1, metrics: m }) as TrainEvent;

  it('takes the loss and eval curves; a resumed run replaces what followed its checkpoint', () => {
    const events = [start(0), step(1, 3), step(2, 2.5), step(3, 2.4), evalAt(3, { eval_loss: 2.6, eval_runtime: 1 }), step(4, 9), start(2), step(3, 2.2), step(4, 2.0), evalAt(4, { eval_loss: 2.1, eval_accuracy: 0.5 })];
    const c = runCurves(events);
    assert.deepEqual(c.loss, [[1, 2, 3, 4], [3, 2.5, 2.2, 2.0]]);
    assert.deepEqual(c.evals.eval_loss, [[4], [2.1]]);
    assert.deepEqual(c.evals.eval_accuracy, [[4], [0.5]]);
    assert.ok(!('eval_runtime' in c.evals));
    assert.deepEqual(runCurves([start(0), step(1, NaN), step(2, 1)]).loss, [[2], [1]]);
  });

  it('names runs by folder, with parents only where the names clash', () => {
    assert.deepEqual(runNames(['/w/runs/a', '/w/runs/b']), ['a', 'b']);
    assert.deepEqual(runNames(['/w/x/run', '/w/y/run']), ['x/run', 'y/run']);
  });

  it('lists the fields that differ, in order, with absent fields as null', () => {
    const a = { $schema: 'x', model: 'gpt2', lora: { r: 4, lora_alpha: 8, target_modules: ['c_attn'] }, training: { learning_rate: 1e-3, seed: 1 } };
    const b = { $schema: 'y', model: 'gpt2', lora: { r: 8, lora_alpha: 8, target_modules: ['c_attn', 'c_proj'] }, training: { learning_rate: 1e-3 } };
    assert.deepEqual(diffConfigs([a, b]), [
      { path: 'lora.r', values: ['4', '8'] },
      { path: 'lora.target_modules', values: ['["c_attn"]', '["c_attn","c_proj"]'] },
      { path: 'training.seed', values: ['1', null] },
    ]);
    assert.deepEqual(diffConfigs([a, undefined, a]), []);
    assert.deepEqual(diffConfigs([a, undefined]), []);
    assert.deepEqual(diffConfigs([a, undefined, b]).map((r) => r.values), [['4', null, '8'], ['["c_attn"]', null, '["c_attn","c_proj"]'], ['1', null, null]]);
    assert.deepEqual([...flattenConfig({ data: { eval: null }, lora: {} })], [['data.eval', 'null'], ['lora', '{}']]);
  });

  it('finds the run config the trainer recorded, else the lora-run.json whose output_dir it is', () => {
    const w = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-cmp-'));
    const run1 = path.join(w, 'runs', 'one');
    const run2 = path.join(w, 'runs', 'two');
    for (const d of [path.join(run1, 'checkpoint-4'), path.join(run1, 'checkpoint-12'), run2]) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(run1, 'checkpoint-4', 'run_config.json'), JSON.stringify({ lora: { r: 1 } }));
    fs.writeFileSync(path.join(run1, 'checkpoint-12', 'run_config.json'), JSON.stringify({ lora: { r: 2 } }));
    const cfg = path.join(w, 'two.lora-run.json');
    fs.writeFileSync(cfg, JSON.stringify({ lora: { r: 3 }, training: { output_dir: 'runs/two' } }));
    const other = path.join(w, 'lora-run.json');
    fs.writeFileSync(other, JSON.stringify({ lora: { r: 9 }, training: { output_dir: 'runs/elsewhere' } }));
    assert.equal(recordedRunConfig(run1)?.file, path.join(run1, 'checkpoint-12', 'run_config.json'));
    assert.deepEqual(runConfigOf(run1, [other, cfg])?.config, { lora: { r: 2 } });
    assert.equal(runConfigOf(run2, [other, cfg])?.file, cfg);
    assert.equal(runConfigOf(path.join(w, 'runs', 'none'), [other, cfg]), undefined);
    fs.rmSync(w, { recursive: true, force: true });
  });
});
