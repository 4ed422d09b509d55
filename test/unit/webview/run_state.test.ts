import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DashboardEvent, DashStart, DashStep } from '../../../webview/protocol';
import { RunState, TAIL_LINES, formatDuration, formatEvent, isRunSummary } from '../../../webview/runState';
import { FORM_LAYOUT, buildForm, formatFieldValue, getPath, parseFieldInput } from '../../../webview/fields';
import type { FieldKind } from '../../../webview/protocol';
import { DASHBOARD_FIELDS } from '../../../extension/dashboard/messages';
import { backendLabel, buttonStates } from '../../../webview/view';

const start = (global_step = 0): DashStart => ({ event: 'start', backend: 'wasm', gpu: false, task: 'seq-cls', model: 'm', output_dir: 'out', trainable_params: 10, all_params: 1000, total_steps: 100, num_train_epochs: 2, global_step });
const step = (s: number, loss = 1 / s): DashStep => ({ event: 'step', step: s, epoch: s / 50, loss, learning_rate: 1e-3, grad_norm: 1, tokens_per_second: 500, rss_mb: 256, eta_s: 100 - s });

describe('RunState', () => {
  it('builds the series, progress and tail from events', () => {
    const r = new RunState();
    r.apply([start(), ...Array.from({ length: 20 }, (_, i) => step(i + 1))]);
    r.apply([
      { event: 'eval', step: 10, epoch: 0.2, metrics: { eval_loss: 0.5, eval_accuracy: 0.75, eval_f1: 0.7, eval_runtime: 3 } },
      { event: 'eval', step: 20, epoch: 0.4, metrics: { eval_loss: 0.4, eval_accuracy: 0.8, eval_f1: 0.78, eval_runtime: 3 } },
      { event: 'checkpoint', step: 20, path: 'out/checkpoint-20' },
    ]);
    assert.equal(r.train.length, 20);
    assert.equal(r.train.cols.get('loss')!.get(19), 1 / 20);
    assert.deepEqual(Array.from(r.evals.x.view()), [10, 20]);
    assert.deepEqual(r.evalMetricNames(), ['eval_accuracy', 'eval_f1'], 'timings are not metrics; loss has its own chart');
    assert.deepEqual(r.progress, { step: 20, total_steps: 100, epoch: 0.4, num_train_epochs: 2, eta_s: 80 });
    assert.equal(r.lastCheckpoint, 'out/checkpoint-20');
    assert.equal(r.tail.length, 24);
    assert.match(r.tail[r.tail.length - 1], /checkpoint @20/);
  });

  it('drops repeated steps (a replay overlapping live events) and keeps the tail bounded', () => {
    const r = new RunState();
    r.apply([start(), step(1), step(2), step(2), step(1), step(3)]);
    assert.deepEqual(Array.from(r.train.x.view()), [1, 2, 3]);
    r.apply(Array.from({ length: 1000 }, (_, i) => step(i + 4)));
    assert.equal(r.tail.length, TAIL_LINES);
    assert.match(r.tail[TAIL_LINES - 1], /^step 1003 /);
  });

  it('a resumed run replaces what came after its checkpoint; a fresh run starts over', () => {
    const r = new RunState();
    r.apply([start(), ...[1, 2, 3, 4, 5, 6].map((s) => step(s)), { event: 'eval', step: 6, epoch: 0.1, metrics: { eval_loss: 1 } }]);
    r.apply([start(4), step(5, 9), step(6, 9)]);
    assert.deepEqual(Array.from(r.train.x.view()), [1, 2, 3, 4, 5, 6]);
    assert.equal(r.train.cols.get('loss')!.get(4), 9, 'step 5 is the resumed run\'s');
    assert.equal(r.evals.length, 0, 'the eval after the checkpoint is gone');
    r.apply([start(0), step(1)]);
    assert.equal(r.train.length, 1);
  });

  it('back-fills eval metrics that appear later with NaN', () => {
    const r = new RunState();
    r.apply([
      { event: 'eval', step: 1, epoch: 0, metrics: { eval_loss: 1 } },
      { event: 'eval', step: 2, epoch: 0, metrics: { eval_loss: 0.9, eval_perplexity: 2.4 } },
    ]);
    assert.ok(Number.isNaN(r.evals.cols.get('eval_perplexity')!.get(0)));
    assert.equal(r.evals.cols.get('eval_perplexity')!.get(1), 2.4);
  });

  it('records done and error, and reset forgets the run', () => {
    const r = new RunState();
    r.apply([start(), step(1), { event: 'done', best: null, best_metric: null, output_dir: 'out', global_step: 1, stopped: true }]);
    assert.equal(r.done?.stopped, true);
    r.apply([{ event: 'error', message: 'out of memory' }]);
    assert.equal(r.error, 'out of memory');
    const v = r.version;
    r.reset();
    assert.ok(r.version > v);
    assert.equal(r.start, null);
    assert.equal(r.train.length, 0);
    assert.equal(r.tail.length, 0);
  });

  it('its summary survives JSON (setState) and is small', () => {
    const r = new RunState();
    r.apply([start(), ...Array.from({ length: 100_000 }, (_, i) => step(i + 1, i === 50_000 ? 99 : 1 / (i + 1)))]);
    r.apply([{ event: 'eval', step: 5, epoch: 0, metrics: { eval_loss: 1 } }, { event: 'eval', step: 7, epoch: 0, metrics: { eval_loss: 0.5, eval_accuracy: 0.9 } }]);
    const json = JSON.stringify(r.summary(300));
    assert.ok(json.length < 200_000, `${json.length} characters`);
    const back = JSON.parse(json);
    assert.ok(isRunSummary(back));
    const r2 = new RunState();
    r2.restore(back);
    assert.ok(r2.train.length <= 300);
    assert.equal(r2.train.x.get(0), 1);
    assert.equal(r2.train.x.last(), 100_000);
    assert.equal(Math.max(...r2.train.cols.get('loss')!.view()), 99, 'the spike is kept');
    assert.ok(Number.isNaN(r2.evals.cols.get('eval_accuracy')!.get(0)), 'NaN → null → NaN');
    assert.deepEqual(r2.progress, r.progress);
    assert.equal(isRunSummary({ tail: [] }), false);
  });

  it('formats tail lines and durations', () => {
    const lines = ([start(), step(3), { event: 'log', level: 'warning', message: 'w' }] as DashboardEvent[]).map(formatEvent);
    assert.match(lines[0], /on wasm/);
    assert.match(lines[1], /^step 3 +epoch 0\.06 +loss 0\.3333/);
    assert.equal(lines[2], 'warning: w');
    assert.equal(formatDuration(3725), '1h 2m');
    assert.equal(formatDuration(65), '1m 5s');
    assert.equal(formatDuration(null), '—');
  });
});

describe('the form fields', () => {
  it('lays out every field the host lets it edit; the targets stay read-only', () => {
    const laidOut = FORM_LAYOUT.flatMap((s) => s.fields.map((f) => f.path));
    for (const f of DASHBOARD_FIELDS) assert.ok(laidOut.includes(f.path), `${f.path} has a place in the form`);
    const form = buildForm(DASHBOARD_FIELDS).flatMap((s) => s.fields);
    assert.deepEqual(form.filter((f) => !f.kind).map((f) => f.path), ['lora.target_modules']);
    assert.deepEqual(form.find((f) => f.path === 'training.lr_scheduler_type')?.kind, DASHBOARD_FIELDS.find((f) => f.path === 'training.lr_scheduler_type')?.kind);
  });

  it('builds the form from what the host sends: nothing sent, nothing editable; unknown paths go under Other', () => {
    assert.ok(buildForm([]).flatMap((s) => s.fields).every((f) => f.kind === undefined));
    const sections = buildForm([{ path: 'lora.r', kind: { type: 'integer', min: 2 } }, { path: 'training.seed', kind: { type: 'integer', min: 0 } }]);
    assert.deepEqual(sections.map((s) => s.title), ['Model', 'Data', 'LoRA', 'Training', 'Other']);
    assert.deepEqual(sections.flatMap((s) => s.fields).filter((f) => f.kind).map((f) => f.path), ['lora.r', 'training.seed']);
    assert.deepEqual(sections[4].fields, [{ path: 'training.seed', label: 'training.seed', defaultText: '', kind: { type: 'integer', min: 0 } }]);
  });

  it('parses text into values of the kind the host sent', () => {
    const kind = (path: string): FieldKind | undefined => DASHBOARD_FIELDS.find((f) => f.path === path)?.kind;
    assert.deepEqual(parseFieldInput(kind('lora.r'), ' 16 '), { ok: true, value: 16 });
    assert.deepEqual(parseFieldInput(kind('training.learning_rate'), '2e-4'), { ok: true, value: 2e-4 });
    assert.deepEqual(parseFieldInput(kind('data.eval'), ''), { ok: true, value: null });
    assert.deepEqual(parseFieldInput(kind('data.train'), 'data/train.jsonl'), { ok: true, value: 'data/train.jsonl' });
    assert.equal(parseFieldInput(kind('lora.r'), '1.5').ok, false);
    assert.equal(parseFieldInput(kind('lora.r'), '').ok, false);
    assert.equal(parseFieldInput(kind('lora.lora_dropout'), '1').ok, false);
    assert.equal(parseFieldInput(kind('training.lr_scheduler_type'), 'exp').ok, false);
    assert.equal(parseFieldInput(kind('lora.target_modules'), 'c_attn').ok, false, 'not editable: no kind');
    const bad = parseFieldInput(kind('lora.lora_dropout'), 'x');
    assert.ok(!bad.ok && /number >= 0 and < 1/.test(bad.error));
    const r = parseFieldInput({ type: 'integer', min: 4 }, '2');
    assert.ok(!r.ok && /integer >= 4/.test(r.error), 'the bounds are the ones sent');
    assert.deepEqual(parseFieldInput({ type: 'enum', options: ['x', 'y'] }, 'y'), { ok: true, value: 'y' });
  });

  it('reads and shows config values', () => {
    const cfg = { model: 'gpt2', lora: { r: 4, target_modules: ['c_attn', 'c_proj'] }, data: { eval: null } };
    assert.equal(getPath(cfg, 'lora.r'), 4);
    assert.equal(getPath(cfg, 'training.learning_rate'), undefined);
    assert.equal(getPath(cfg, 'lora.r.x'), undefined);
    assert.equal(getPath(null, 'model'), undefined);
    assert.equal(getPath({}, 'constructor'), undefined);
    assert.equal(formatFieldValue(getPath(cfg, 'lora.target_modules')), 'c_attn, c_proj');
    assert.equal(formatFieldValue(getPath(cfg, 'data.eval')), '');
  });
});

describe('header and buttons', () => {
  it('names the backend once, preferring the host\'s label', () => {
    assert.equal(backendLabel('tensorflow', true).kind, 'GPU');
    assert.equal(backendLabel('tensorflow', true).text, 'TensorFlow (GPU)');
    assert.equal(backendLabel('wasm', false).text, 'WASM');
    assert.equal(backendLabel('wasm', false).kind, 'WASM');
    assert.equal(backendLabel('cpu', false).kind, 'CPU');
    assert.equal(backendLabel('cpu', false).text, 'CPU');
    assert.equal(backendLabel('webgpu', true, 'WebGPU · NVIDIA H200').text, 'WebGPU · NVIDIA H200');
    assert.equal(backendLabel('webgpu', false).text, 'WebGPU');
  });

  it('enables the buttons by status', () => {
    const s = (state: 'idle' | 'running' | 'stopping' | 'done', canResume = false, configFile: string | null = '/w/lora-run.json', hasAdapter?: boolean) =>
      ({ state, configFile, outputDir: null, canResume, hasAdapter });
    const run = (b: ReturnType<typeof buttonStates>) => ({ start: b.start, stop: b.stop, resume: b.resume });
    assert.deepEqual(buttonStates(null), { start: false, stop: false, resume: false, analyze: false, compare: false });
    assert.deepEqual(run(buttonStates(s('idle'))), { start: true, stop: false, resume: false });
    assert.deepEqual(run(buttonStates(s('done', true))), { start: true, stop: false, resume: true });
    assert.deepEqual(run(buttonStates(s('running', true))), { start: false, stop: true, resume: false });
    assert.deepEqual(run(buttonStates(s('stopping'))), { start: false, stop: false, resume: false });
    assert.deepEqual(run(buttonStates(s('idle', true, null))), { start: false, stop: false, resume: false });
    // Analyze needs a finished adapter and no live run; Compare is always there once the host answered
    assert.equal(buttonStates(s('done', true, undefined, true)).analyze, true);
    assert.equal(buttonStates(s('done', true, undefined, false)).analyze, false);
    assert.equal(buttonStates(s('running', true, undefined, true)).analyze, false);
    assert.equal(buttonStates(s('running')).compare, true);
  });
});
