import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { TrainEvent } from '../../../trainer/protocol';
import { EventBatcher, chunk, mergeReplay, toDashboardEvent, toDashboardStatus, type Timer } from '../../../extension/dashboard/events';
import { isDashboardEvent, isHostMessage, type DashboardEvent } from '../../../webview/protocol';

const trainEvents: TrainEvent[] = [
  { event: 'start', backend: 'tensorflow', gpu: true, task: 'causal-lm', model: 'gpt2', output_dir: 'out', trainable_params: 294912, all_params: 124734720, total_steps: 100, num_train_epochs: 1, global_step: 0 },
  { event: 'step', step: 1, epoch: 0.01, loss: 3.2, learning_rate: 1e-4, grad_norm: 2.5, tokens_per_second: 1234, samples_per_second: 9, rss_mb: 900, eta_s: 99 },
  { event: 'eval', step: 10, epoch: 0.1, metrics: { eval_loss: 3.0, eval_perplexity: 20.1, eval_runtime: 1.2 } },
  { event: 'checkpoint', step: 10, path: 'out/checkpoint-10' },
  { event: 'log', level: 'warning', message: 'careful' },
  { event: 'done', best: 'out/checkpoint-10', best_metric: 3.0, output_dir: 'out', global_step: 100, stopped: false },
  { event: 'error', message: 'bad value', file: 'lora-run.json', field: 'training.learning_rate' },
];

/** A timer the test advances by hand. */
function fakeTimer() {
  let now = 0;
  const pending = new Map<number, { at: number; fn: () => void }>();
  let next = 1;
  const timer: Timer = {
    set: (fn, ms) => {
      pending.set(next, { at: now + ms, fn });
      return next++;
    },
    clear: (h) => void pending.delete(h as number),
  };
  const advance = (ms: number) => {
    now += ms;
    for (const [h, t] of [...pending]) if (t.at <= now) {
      pending.delete(h);
      t.fn();
    }
  };
  return { timer, advance, pending: () => pending.size };
}

describe('trainer event → webview mapping', () => {
  it('maps every TrainEvent kind to a valid DashboardEvent with the same fields', () => {
    for (const e of trainEvents) {
      const d = toDashboardEvent(e);
      assert.ok(isDashboardEvent(d), e.event);
      assert.equal(d.event, e.event);
    }
    const step = toDashboardEvent(trainEvents[1]);
    assert.deepEqual(step, { event: 'step', step: 1, epoch: 0.01, loss: 3.2, learning_rate: 1e-4, grad_norm: 2.5, tokens_per_second: 1234, rss_mb: 900, eta_s: 99 });
    assert.equal('samples_per_second' in step, false, 'fields the webview does not use stay behind');
    // the start event gains the backend as the header says it (extension/backendLabel.ts)
    assert.deepEqual(toDashboardEvent(trainEvents[0]), { ...trainEvents[0], backend_label: 'TensorFlow (GPU)' });
    const webgpu = toDashboardEvent({ ...(trainEvents[0] as Extract<TrainEvent, { event: 'start' }>), backend: 'webgpu', gpu: false,
      adapter: { vendor: 'mesa', architecture: '', device: 'llvmpipe (LLVM 15.0.6, 256 bits)', description: '', software: true } });
    assert.equal((webgpu as Extract<DashboardEvent, { event: 'start' }>).backend_label, 'WebGPU · llvmpipe (software)');
    assert.ok(!('adapter' in webgpu), 'the adapter details stay with the host');
    assert.deepEqual(toDashboardEvent(trainEvents[6]), { event: 'error', message: 'bad value — lora-run.json — training.learning_rate' });
    assert.ok(isHostMessage({ type: 'events', events: trainEvents.map(toDashboardEvent) }));
  });

  it('maps the run status', () => {
    assert.deepEqual(toDashboardStatus({ state: 'idle' }), { state: 'idle', configFile: null, outputDir: null, canResume: false });
    assert.deepEqual(toDashboardStatus({ state: 'done', configFile: '/w/lora-run.json', outputDir: '/w/out', latestCheckpoint: '/w/out/checkpoint-10' }),
      { state: 'done', configFile: '/w/lora-run.json', outputDir: '/w/out', canResume: true });
  });

  it('merges a replay with the live events that overlap it', () => {
    const d = trainEvents.slice(0, 5).map(toDashboardEvent);
    const history = d.slice(0, 3);
    const live = [d[2], d[3], d[4]]; // d[2] arrived live while metrics.jsonl already had it
    assert.deepEqual(mergeReplay(history, live), d);
    assert.deepEqual(mergeReplay([], live), live);
  });

  it('chunks a long replay', () => {
    const items = Array.from({ length: 12_001 }, (_, i) => i);
    const parts = chunk(items, 5000);
    assert.deepEqual(parts.map((p) => p.length), [5000, 5000, 2001]);
    assert.deepEqual(parts.flat(), items);
    assert.deepEqual(chunk([], 10), []);
  });
});

describe('EventBatcher (the live throttle)', () => {
  it('sends one batch per interval, in order', () => {
    const t = fakeTimer();
    const sent: number[][] = [];
    const b = new EventBatcher<number>((batch) => sent.push(batch), 100, 5000, t.timer);
    for (let i = 0; i < 1000; i++) b.push(i);
    assert.equal(sent.length, 0, 'nothing before the interval');
    t.advance(99);
    assert.equal(sent.length, 0);
    t.advance(1);
    assert.equal(sent.length, 1);
    assert.deepEqual(sent[0], Array.from({ length: 1000 }, (_, i) => i));
    t.advance(1000);
    assert.equal(sent.length, 1, 'no empty batches');
    b.push(1000);
    t.advance(100);
    assert.deepEqual(sent[1], [1000]);
  });

  it('bounds a batch: 100,000 events at once become messages of at most maxBatch', () => {
    const t = fakeTimer();
    const sent: number[][] = [];
    const b = new EventBatcher<number>((batch) => sent.push(batch), 100, 5000, t.timer);
    for (let i = 0; i < 100_000; i++) b.push(i);
    t.advance(100);
    assert.equal(sent.length, 20);
    assert.ok(sent.every((s) => s.length <= 5000));
    assert.equal(sent.flat().length, 100_000);
    assert.equal(sent.flat()[99_999], 99_999);
  });

  it('clear drops what is pending; dispose stops it; the interval can change', () => {
    const t = fakeTimer();
    const sent: number[][] = [];
    const b = new EventBatcher<number>((batch) => sent.push(batch), 100, 5000, t.timer);
    b.push(1);
    b.clear();
    t.advance(200);
    assert.equal(sent.length, 0);
    assert.equal(t.pending(), 0);
    b.setInterval(10);
    b.push(2);
    t.advance(10);
    assert.deepEqual(sent, [[2]]);
    b.push(3);
    b.flush();
    assert.deepEqual(sent, [[2], [3]]);
    b.dispose();
    b.push(4);
    t.advance(1000);
    assert.deepEqual(sent, [[2], [3]]);
  });

  it('really waits on the real timer (interval 0 batches one tick)', async () => {
    const sent: DashboardEvent[][] = [];
    const b = new EventBatcher<DashboardEvent>((batch) => sent.push(batch), 0);
    for (const e of trainEvents) b.push(toDashboardEvent(e));
    assert.equal(sent.length, 0);
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(sent.length, 1);
    assert.equal(sent[0].length, trainEvents.length);
  });
});
