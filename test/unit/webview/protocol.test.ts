import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isDashboardEvent, isEditableField, isFieldKind, isHostMessage } from '../../../webview/protocol';
import { DASHBOARD_FIELDS } from '../../../extension/dashboard/messages';

const start = { event: 'start', backend: 'wasm', gpu: false, task: 'seq-cls', model: 'm', output_dir: 'out', trainable_params: 10, all_params: 100, total_steps: 50, num_train_epochs: 2, global_step: 0 };
const step = { event: 'step', step: 1, epoch: 0.1, loss: 0.7, learning_rate: 1e-3, grad_norm: 1, tokens_per_second: 100, rss_mb: 300, eta_s: 12 };

describe('host → webview notifications', () => {
  it('accepts each kind', () => {
    const good = [
      { type: 'status', status: { state: 'running', configFile: '/w/lora-run.json', outputDir: null, canResume: false } },
      { type: 'config', config: { model: 'gpt2' }, configFile: '/w/lora-run.json', fields: [...DASHBOARD_FIELDS] },
      { type: 'config', config: null, configFile: null, fields: [] },
      { type: 'reset' },
      { type: 'events', events: [] },
      { type: 'events', events: [start, step, { event: 'eval', step: 1, epoch: 0.1, metrics: { eval_loss: 0.5, eval_accuracy: 0.8 } }] },
      { type: 'events', events: [{ event: 'checkpoint', step: 5, path: 'out/checkpoint-5' }, { event: 'log', level: 'warning', message: 'w' }] },
      { type: 'events', events: [{ event: 'done', best: null, best_metric: null, output_dir: 'out', global_step: 50, stopped: false }, { event: 'error', message: 'boom' }] },
      { type: 'notice', level: 'error', message: 'no' },
    ];
    for (const m of good) assert.ok(isHostMessage(m), JSON.stringify(m));
  });

  it('rejects malformed ones', () => {
    const bad: unknown[] = [
      null, {}, { type: 'status' }, { type: 'status', status: { state: 'exploded', configFile: null, outputDir: null, canResume: false } },
      { type: 'status', status: { state: 'idle', configFile: null, outputDir: null } },
      { type: 'config', config: [1], configFile: null, fields: [] }, { type: 'config', config: {}, fields: [] },
      { type: 'config', config: {}, configFile: null }, // no fields
      { type: 'config', config: {}, configFile: null, fields: {} },
      { type: 'config', config: {}, configFile: null, fields: [{ path: 'lora.r' }] },
      { type: 'config', config: {}, configFile: null, fields: [{ path: 'lora.r', kind: { type: 'integer' } }] },
      { type: 'events' }, { type: 'events', events: {} },
      { type: 'notice', level: 'fatal', message: 'x' }, { type: 'notice', level: 'info' },
    ];
    for (const m of bad) assert.equal(isHostMessage(m), false, JSON.stringify(m));
  });

  it('an events batch is checked event by event: malformed events are dropped, the rest kept', () => {
    const batch = [start, { ...step, loss: 'nan' }, step, { event: 'step', step: 1 }, { event: 'party' },
      { event: 'eval', step: 1, epoch: 0, metrics: { eval_loss: '0.5' } }, { ...start, gpu: 'yes' }];
    assert.ok(isHostMessage({ type: 'events', events: batch }));
    assert.deepEqual(batch.filter(isDashboardEvent), [start, step]);
  });

  it('isDashboardEvent checks each event kind', () => {
    assert.ok(isDashboardEvent(start));
    assert.ok(isDashboardEvent(step));
    assert.equal(isDashboardEvent({ ...step, step: undefined }), false);
    assert.equal(isDashboardEvent({ event: 'log', level: 'debug', message: 'x' }), false);
    assert.equal(isDashboardEvent({ event: 'done', best: 1, best_metric: null, output_dir: 'o', global_step: 1, stopped: false }), false);
  });
});

describe('the editable fields the host sends', () => {
  it('accepts every kind the host uses', () => {
    for (const f of DASHBOARD_FIELDS) assert.ok(isEditableField(f), f.path);
    assert.ok(isFieldKind({ type: 'number' }));
    assert.ok(isFieldKind({ type: 'number', min: 0, minExclusive: true, max: 1, maxExclusive: false }));
    assert.ok(isFieldKind({ type: 'enum', options: ['a'] }));
  });

  it('rejects malformed specs', () => {
    const bad: unknown[] = [
      null, {}, { type: 'float' }, { type: 'integer' }, { type: 'integer', min: '1' }, { type: 'integer', min: NaN },
      { type: 'number', min: '0' }, { type: 'number', max: Infinity }, { type: 'number', minExclusive: 1 },
      { type: 'enum' }, { type: 'enum', options: [] }, { type: 'enum', options: [1] }, { type: 'enum', options: 'a' },
    ];
    for (const k of bad) assert.equal(isFieldKind(k), false, JSON.stringify(k));
    assert.equal(isEditableField({ path: '', kind: { type: 'string' } }), false);
    assert.equal(isEditableField({ path: 7, kind: { type: 'string' } }), false);
    assert.equal(isEditableField({ path: 'model', kind: { type: 'text' } }), false);
  });
});
