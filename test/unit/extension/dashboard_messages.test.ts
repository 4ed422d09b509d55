/**
 * The host's side of the dashboard protocol (extension/dashboard/messages.ts, events.ts): the webview → host
 * command guard, the editable-field table the host owns and sends, and the host's check of trainer events
 * (live or read back from metrics.jsonl) before they are mapped for the webview.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DASHBOARD_FIELDS, fitsKind, isValidFieldValue, isWebviewMessage } from '../../../extension/dashboard/messages';
import { mapTrainEvent } from '../../../extension/dashboard/events';
import { parseMetrics } from '../../../extension/runFiles';
import { isDashboardEvent, isHostMessage } from '../../../webview/protocol';
import { parseFieldInput } from '../../../webview/fields';
import { RunConfigSchema } from '../../../trainer/config/schema';
import { runConfigJsonSchema } from '../../../trainer/config/json_schema';

describe('webview → host commands (checked by the host)', () => {
  it('accepts the plain commands', () => {
    for (const type of ['ready', 'start', 'stop', 'resume', 'analyze', 'compare']) assert.ok(isWebviewMessage({ type }), type);
  });

  it('accepts editConfig for editable fields with values they allow', () => {
    assert.ok(isWebviewMessage({ type: 'editConfig', path: 'lora.r', value: 16 }));
    assert.ok(isWebviewMessage({ type: 'editConfig', path: 'training.learning_rate', value: 2e-4 }));
    assert.ok(isWebviewMessage({ type: 'editConfig', path: 'data.eval', value: null }));
    assert.ok(isWebviewMessage({ type: 'editConfig', path: 'training.lr_scheduler_type', value: 'cosine' }));
    assert.ok(isWebviewMessage({ type: 'editConfig', path: 'task', value: 'seq-cls' }));
  });

  it('rejects malformed and unknown messages', () => {
    const bad: unknown[] = [
      null, undefined, 42, 'ready', [], [{ type: 'ready' }], {}, { type: 'READY' }, { type: 'eval' }, { command: 'start' },
      { type: 'editConfig' },
      { type: 'editConfig', path: 'lora.r' }, // no value
      { type: 'editConfig', path: 'lora.r', value: '16' }, // a string for an integer
      { type: 'editConfig', path: 'lora.r', value: 0 }, // below the minimum
      { type: 'editConfig', path: 'lora.r', value: 1.5 },
      { type: 'editConfig', path: 'lora.lora_dropout', value: 1 }, // must be < 1
      { type: 'editConfig', path: 'lora.lora_alpha', value: 0 }, // must be > 0
      { type: 'editConfig', path: 'training.learning_rate', value: Number.NaN },
      { type: 'editConfig', path: 'training.learning_rate', value: Infinity },
      { type: 'editConfig', path: 'training.lr_scheduler_type', value: 'exp' },
      { type: 'editConfig', path: 'model', value: '' },
      { type: 'editConfig', path: 'data.train', value: null },
      { type: 'editConfig', path: 'lora.target_modules', value: ['c_attn'] }, // read-only in the form
      { type: 'editConfig', path: 'training.output_dir', value: '/etc' }, // not editable from the webview
      { type: 'editConfig', path: '__proto__', value: 1 },
      { type: 'editConfig', path: 'constructor', value: 'x' },
      { type: 'editConfig', path: 'toString', value: 'x' },
      { type: 'editConfig', path: 7, value: 1 },
    ];
    for (const m of bad) assert.equal(isWebviewMessage(m), false, JSON.stringify(m) ?? String(m));
  });
});

describe('the editable fields (owned by the host)', () => {
  it('names run-config paths once each, with a known kind', () => {
    const paths = DASHBOARD_FIELDS.map((f) => f.path);
    assert.equal(new Set(paths).size, paths.length);
    for (const { path, kind } of DASHBOARD_FIELDS) {
      assert.match(path, /^(model|task|data\.\w+|lora\.\w+|training\.\w+)$/);
      assert.ok(['string', 'string-or-null', 'number', 'integer', 'enum'].includes(kind.type));
    }
    assert.equal(paths.includes('training.output_dir'), false);
    assert.equal(paths.includes('lora.target_modules'), false);
    assert.equal(isValidFieldValue('training.num_train_epochs', 0.5), true);
    assert.equal(isValidFieldValue('training.num_train_epochs', 0), false);
    assert.equal(fitsKind({ type: 'number', max: 2 }, 2), true);
    assert.equal(fitsKind({ type: 'number', max: 2, maxExclusive: true }, 2), false);
  });

  it('accepts no value the trainer\'s run-config schema refuses for that field, and offers its enum options', () => {
    const probes: unknown[] = ['', ' ', 'gpt2', 'data/t.jsonl', 'cosine', 'exp', 'no', 'steps', 'epoch', 'causal-lm', 'seq-cls', 'linear',
      'constant', 'constant_with_warmup', null, true, -1, 0, 1e-4, 0.5, 1, 1.5, 8, 65_536, 65_537, 1e6, 1e6 + 1, 1e9, 1e300, Infinity, NaN];
    for (const { path, kind } of DASHBOARD_FIELDS) {
      const [a, b] = path.split('.');
      const trainerAccepts = (v: unknown) => {
        const cfg: Record<string, unknown> = { model: 'gpt2', data: { train: 't.jsonl' }, lora: {}, training: {} };
        if (b) (cfg[a] as Record<string, unknown>)[b] = v;
        else cfg[a] = v;
        const r = RunConfigSchema.safeParse(cfg);
        return r.success || !r.error.issues.some((i) => i.path.join('.') === path);
      };
      for (const v of probes) if (isValidFieldValue(path, v)) assert.ok(trainerAccepts(v), `${path}: the dashboard accepts ${String(v)}, the trainer refuses it`);
      if (kind.type === 'enum') {
        let node = runConfigJsonSchema() as { properties: Record<string, unknown> };
        for (const k of path.split('.')) node = node.properties[k] as typeof node;
        assert.deepEqual(kind.options, (node as unknown as { enum: string[] }).enum, path);
      }
    }
  });

  it('goes to the webview in the config message, which the webview accepts', () => {
    assert.ok(isHostMessage({ type: 'config', config: {}, configFile: '/w/lora-run.json', fields: [...DASHBOARD_FIELDS] }));
    // the same table survives the JSON of postMessage
    assert.ok(isHostMessage(JSON.parse(JSON.stringify({ type: 'config', config: null, configFile: null, fields: DASHBOARD_FIELDS }))));
  });

  it('the webview parses text into exactly the values the host accepts', () => {
    const texts = ['', ' ', '0', '1', '-1', '0.5', '1.5', '16', '2e-4', '1e309', 'NaN', 'Infinity', 'abc', 'gpt2',
      'data/train.jsonl', 'cosine', 'exp', 'no', 'steps', 'epoch', 'seq-cls', 'causal-lm', ' 8 '];
    for (const { path, kind } of DASHBOARD_FIELDS) {
      for (const text of texts) {
        const p = parseFieldInput(kind, text);
        if (p.ok) assert.ok(isValidFieldValue(path, p.value), `${path} ← ${JSON.stringify(text)}: the webview sends what the host refuses`);
        else {
          // what the webview refuses, the host refuses too (as the webview would have read it)
          const t = text.trim();
          const value = kind.type === 'number' || kind.type === 'integer' ? (t === '' ? NaN : Number(t)) : kind.type === 'string-or-null' && t === '' ? null : t;
          assert.equal(isValidFieldValue(path, value), false, `${path} ← ${JSON.stringify(text)}: the webview refuses what the host accepts`);
        }
      }
    }
  });
});

describe('trainer events checked by the host', () => {
  const good = [
    { event: 'start', backend: 'wasm', gpu: false, task: 'seq-cls', model: 'm', output_dir: 'out', trainable_params: 10, all_params: 100, total_steps: 50, num_train_epochs: 2, global_step: 0 },
    { event: 'step', step: 1, epoch: 0.1, loss: 0.7, learning_rate: 1e-3, grad_norm: 1, tokens_per_second: 100, samples_per_second: 4, rss_mb: 300, eta_s: 12 },
    { event: 'eval', step: 1, epoch: 0.1, metrics: { eval_loss: 0.5 } },
    { event: 'checkpoint', step: 5, path: 'out/checkpoint-5' },
    { event: 'log', level: 'info', message: 'hi' },
    { event: 'done', best: null, best_metric: null, output_dir: 'out', global_step: 50, stopped: true },
    { event: 'error', message: 'boom', field: 'lora.r' },
  ];

  it('maps well-formed events to events the webview accepts', () => {
    for (const e of good) {
      const d = mapTrainEvent(e);
      assert.ok(d && isDashboardEvent(d), e.event);
    }
  });

  it('drops events missing or mistyping a field the dashboard draws (the host maps, the webview checks)', () => {
    const bad: unknown[] = [
      null, 'step', [], {}, { event: 'party' },
      { ...good[0], gpu: 'yes' }, { ...good[1], loss: 'nan' }, { ...good[1], step: undefined },
      { ...good[2], metrics: { eval_loss: '0.5' } }, { ...good[2], metrics: null },
      { ...good[3], path: 5 }, { ...good[4], level: 'debug' }, { ...good[5], best: 1 }, { ...good[5], stopped: undefined },
      { ...good[6], message: 3 },
    ];
    for (const e of bad) {
      const d = mapTrainEvent(e);
      assert.ok(d === undefined || !isDashboardEvent(d), JSON.stringify(e));
    }
    // an error keeps its message when its file is not a string; only strings are shown
    assert.deepEqual(mapTrainEvent({ ...good[6], file: 3 }), { event: 'error', message: 'boom — lora.r' });
  });

  it('keeps the good lines of a damaged metrics.jsonl', () => {
    const text = [
      JSON.stringify(good[0]),
      JSON.stringify({ event: 'step', step: 2 }), // the right name, fields missing
      JSON.stringify(good[1]),
      '{"event":"step","step":3,"ep', // cut off by a killed run
    ].join('\n');
    const mapped = parseMetrics(text).map(mapTrainEvent).filter((d) => d !== undefined).filter(isDashboardEvent);
    assert.deepEqual(mapped.map((d) => d.event), ['start', 'step']);
    assert.ok(isHostMessage({ type: 'events', events: mapped }));
  });
});
