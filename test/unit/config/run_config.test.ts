/** Run config: the issue's example, defaults, every kind of error (with its field and what is allowed), paths, overrides. */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadRunConfig, parseRunConfig } from '../../../trainer/config/run_config';
import { LoraStudioError } from '../../../trainer/errors';
import { LORA_DEFAULTS } from '../../../trainer/lora/config';
import { EXAMPLE_RUN_CONFIG } from '../../../trainer/config/example';

/** the issue's example, verbatim */
const ISSUE_EXAMPLE = EXAMPLE_RUN_CONFIG;

const FILE = '/configs/lora-run.json';
const clone = <T>(v: T): T => structuredClone(v);
const minimal = () => ({ model: 'gpt2', data: { train: 'train.jsonl' } });

/** Runs parse, expects a LoraStudioError, returns its message lines. */
function errorLines(raw: unknown): { lines: string[]; err: LoraStudioError } {
  try {
    parseRunConfig(raw, FILE, { resolvePaths: false });
  } catch (e) {
    assert.ok(e instanceof LoraStudioError, `expected LoraStudioError, got ${String(e)}`);
    assert.equal(e.file, FILE);
    return { lines: e.message.split('\n'), err: e };
  }
  assert.fail('expected the config to be rejected');
}

describe('parseRunConfig', () => {
  it('accepts the issue example and keeps its values, filling the rest with the defaults', () => {
    const cfg = parseRunConfig(clone(ISSUE_EXAMPLE), FILE, { resolvePaths: false });
    assert.equal(cfg.task, 'seq-cls');
    assert.equal(cfg.num_labels, 2);
    assert.deepEqual(cfg.data, { ...ISSUE_EXAMPLE.data, format: null, packing: false, max_bad_rows_ratio: 0.1 });
    assert.deepEqual(cfg.lora, { ...LORA_DEFAULTS, ...ISSUE_EXAMPLE.lora });
    const t = cfg.training;
    assert.equal(t.learning_rate, 1e-3);
    assert.equal(t.save_steps, null);
    assert.equal(t.greater_is_better, true, 'accuracy: greater is better');
    assert.equal(t.adam_beta1, 0.9);
    assert.equal(t.adam_beta2, 0.999);
    assert.equal(t.adam_epsilon, 1e-8);
    assert.equal(t.warmup_steps, 0);
    assert.equal(t.logging_strategy, 'steps');
    assert.equal(t.eval_on_start, false);
    assert.equal(t.backend, null);
  });

  it('fills TrainingArguments and LoraConfig defaults for a minimal file', () => {
    const cfg = parseRunConfig({ $schema: './lora-run.schema.json', ...minimal() }, FILE, { resolvePaths: false });
    assert.equal(cfg.task, 'causal-lm');
    assert.equal(cfg.num_labels, undefined);
    assert.deepEqual(cfg.lora, LORA_DEFAULTS);
    assert.deepEqual(cfg.data, {
      train: 'train.jsonl', eval: null, format: null, text_column: 'text', label_column: 'label', max_length: 256, eval_split: 0.1,
      packing: false, max_bad_rows_ratio: 0.1,
    });
    assert.deepEqual(cfg.training, {
      output_dir: 'trainer_output', num_train_epochs: 3, max_steps: -1, per_device_train_batch_size: 8, per_device_eval_batch_size: 8,
      gradient_accumulation_steps: 1, learning_rate: 5e-5, weight_decay: 0, adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8,
      max_grad_norm: 1, lr_scheduler_type: 'linear', warmup_ratio: 0, warmup_steps: 0, logging_strategy: 'steps', logging_steps: 500,
      eval_strategy: 'no', eval_steps: null, eval_on_start: false, save_strategy: 'steps', save_steps: 500, save_total_limit: null,
      load_best_model_at_end: false, metric_for_best_model: null, greater_is_better: null, dataloader_drop_last: false, seed: 42,
      resume_from_checkpoint: null, backend: null,
    });
    // defaults are fresh objects, not shared between parses
    cfg.lora.rank_pattern.x = 2;
    assert.deepEqual(parseRunConfig(minimal(), FILE, { resolvePaths: false }).lora.rank_pattern, {});
  });

  it('derives transformers defaults: eval_steps, metric_for_best_model, greater_is_better, num_labels; null max_grad_norm is 0', () => {
    const raw = {
      ...minimal(), task: 'seq-cls',
      training: { eval_strategy: 'steps', save_strategy: 'steps', save_steps: 100, logging_steps: 20, load_best_model_at_end: true, max_grad_norm: null },
    };
    const cfg = parseRunConfig(raw, FILE, { resolvePaths: false });
    assert.equal(cfg.num_labels, 2);
    assert.equal(cfg.training.eval_steps, 20);
    assert.equal(cfg.training.metric_for_best_model, 'loss');
    assert.equal(cfg.training.greater_is_better, false);
    assert.equal(cfg.training.max_grad_norm, 0);
    const f1 = parseRunConfig({ ...minimal(), training: { metric_for_best_model: 'eval_f1' } }, FILE, { resolvePaths: false });
    assert.equal(f1.training.greater_is_better, true);
    const explicit = parseRunConfig({ ...minimal(), training: { metric_for_best_model: 'eval_loss', greater_is_better: true } }, FILE, { resolvePaths: false });
    assert.equal(explicit.training.greater_is_better, true);
  });

  it('unknown fields at every level, with "did you mean", all reported together; field = the first', () => {
    const raw = { ...clone(ISSUE_EXAMPLE), modle: 'x' } as Record<string, unknown>;
    (raw.lora as Record<string, unknown>).lora_alhpa = 16;
    (raw.training as Record<string, unknown>).learning_rat = 1e-4;
    (raw.data as Record<string, unknown>).zzzzzzzzzzzz = 1;
    const { lines, err } = errorLines(raw);
    assert.ok(lines.includes('training.learning_rat: unknown field; did you mean "learning_rate"?'), lines.join('\n'));
    assert.ok(lines.includes('lora.lora_alhpa: unknown field; did you mean "lora_alpha"?'), lines.join('\n'));
    assert.ok(lines.includes('modle: unknown field; did you mean "model"?'), lines.join('\n'));
    const far = lines.find((l) => l.startsWith('data.zzzzzzzzzzzz: unknown field; allowed: train, eval, format'));
    assert.ok(far, lines.join('\n'));
    assert.equal(lines.length, 4);
    assert.equal(err.field, lines[0].split(':')[0]);
    assert.match(err.describe(), /^\/configs\/lora-run\.json: /);
  });

  it('wrong types say what is allowed and what was given', () => {
    const raw = clone(ISSUE_EXAMPLE) as unknown as Record<string, Record<string, unknown>>;
    raw.training.learning_rate = '1e-3';
    raw.training.load_best_model_at_end = 'yes';
    raw.lora.target_modules = 5;
    raw.lora.init_lora_weights = 'gauss';
    const { lines } = errorLines(raw);
    assert.ok(lines.includes('training.learning_rate: must be a number >= 0 (got "1e-3")'), lines.join('\n'));
    assert.ok(lines.includes('training.load_best_model_at_end: must be true or false (got "yes")'), lines.join('\n'));
    assert.ok(lines.includes('lora.target_modules: must be a regular expression matched against whole module names, a list of module names, or null (got 5)'), lines.join('\n'));
    assert.ok(lines.includes('lora.init_lora_weights: must be true, false or "gaussian" (got "gauss")'), lines.join('\n'));
  });

  it('out-of-range values state the allowed range', () => {
    const cases: Array<[string, string, unknown, string]> = [
      ['lora', 'r', 0, 'lora.r: must be an integer >= 1 and <= 65536 (got 0)'],
      ['lora', 'r', 4.5, 'lora.r: must be an integer >= 1 and <= 65536 (got 4.5)'],
      ['lora', 'lora_dropout', 1, 'lora.lora_dropout: must be a number >= 0 and < 1 (got 1)'],
      ['lora', 'lora_dropout', -0.1, 'lora.lora_dropout: must be a number >= 0 and < 1 (got -0.1)'],
      ['data', 'eval_split', -0.1, 'data.eval_split: must be a number >= 0 and < 1 (got -0.1)'],
      ['data', 'eval_split', 1.5, 'data.eval_split: must be a number >= 0 and < 1 (got 1.5)'],
      ['training', 'warmup_ratio', 2, 'training.warmup_ratio: must be a number >= 0 and <= 1 (got 2)'],
      ['training', 'save_total_limit', 0, 'training.save_total_limit: must be an integer >= 1 and <= 1000000000, or null (got 0)'],
      ['training', 'max_steps', -2, 'training.max_steps: must be an integer >= -1 and <= 1000000000 (got -2)'],
      // absurd sizes are refused before anything is allocated or looped over
      ['training', 'num_train_epochs', 1e300, 'training.num_train_epochs: must be a number > 0 and <= 1000000 (got 1e+300)'],
      ['training', 'max_steps', 1e12, 'training.max_steps: must be an integer >= -1 and <= 1000000000 (got 1000000000000)'],
      ['training', 'per_device_train_batch_size', 1e9, 'training.per_device_train_batch_size: must be an integer >= 1 and <= 65536 (got 1000000000)'],
      ['training', 'gradient_accumulation_steps', 1e9, 'training.gradient_accumulation_steps: must be an integer >= 1 and <= 65536 (got 1000000000)'],
      ['training', 'logging_steps', 1e10, 'training.logging_steps: must be an integer >= 1 and <= 1000000000 (got 10000000000)'],
      ['training', 'warmup_steps', 1e10, 'training.warmup_steps: must be an integer >= 0 and <= 1000000000 (got 10000000000)'],
      ['data', 'max_length', 1e9, 'data.max_length: must be an integer >= 1 and <= 1048576 (got 1000000000)'],
    ];
    for (const [section, key, value, line] of cases) {
      const raw = clone(ISSUE_EXAMPLE) as unknown as Record<string, Record<string, unknown>>;
      raw[section][key] = value;
      const { lines, err } = errorLines(raw);
      assert.deepEqual(lines, [line]);
      assert.equal(err.field, `${section}.${key}`);
    }
  });

  it('a bad enum value lists the allowed values and the closest one', () => {
    const raw = clone(ISSUE_EXAMPLE) as unknown as Record<string, Record<string, unknown>>;
    raw.training.lr_scheduler_type = 'cosin';
    const { lines, err } = errorLines(raw);
    assert.deepEqual(lines, [
      'training.lr_scheduler_type: must be one of "linear", "cosine", "constant", "constant_with_warmup" (got "cosin"); did you mean "cosine"?',
    ]);
    assert.equal(err.field, 'training.lr_scheduler_type');
    assert.match(errorLines({ ...minimal(), task: 'classification' }).lines[0], /^task: must be one of "causal-lm", "seq-cls"/);
  });

  it('"steps" save strategy needs save_steps', () => {
    const { lines } = errorLines({ ...minimal(), training: { save_strategy: 'steps', save_steps: null } });
    assert.deepEqual(lines, ['training.save_steps: required when save_strategy is "steps"; must be an integer >= 1']);
  });

  it('load_best_model_at_end needs matching strategies (both named), evaluation, and save_steps a multiple of eval_steps', () => {
    const raw = clone(ISSUE_EXAMPLE) as unknown as Record<string, Record<string, unknown>>;
    raw.training.save_strategy = 'steps';
    raw.training.save_steps = 50;
    const { lines, err } = errorLines(raw);
    assert.equal(err.field, 'training.load_best_model_at_end');
    assert.deepEqual(lines, [
      'training.load_best_model_at_end: needs save_strategy to equal eval_strategy, but eval_strategy is "epoch" and save_strategy is "steps"',
    ]);
    assert.match(errorLines({ ...minimal(), training: { load_best_model_at_end: true, save_strategy: 'no' } }).lines[0], /both "no"/);
    const steps = { ...minimal(), training: { load_best_model_at_end: true, eval_strategy: 'steps', eval_steps: 30, save_strategy: 'steps', save_steps: 100 } };
    assert.deepEqual(errorLines(steps).lines, [
      'training.save_steps: with load_best_model_at_end, save_steps must be a multiple of eval_steps, but 100 is not a multiple of 30',
    ]);
  });

  it('reports type errors and rules between fields together', () => {
    const { lines } = errorLines({ ...minimal(), num_labels: 3, training: { learning_rate: -1, save_steps: null } });
    assert.deepEqual(lines, [
      'training.learning_rate: must be a number >= 0 (got -1)',
      'num_labels: only used with task "seq-cls"; remove it or set "task": "seq-cls"',
      'training.save_steps: required when save_strategy is "steps"; must be an integer >= 1',
    ]);
  });

  it('missing model / data, and a non-object file', () => {
    assert.deepEqual(errorLines({ data: { train: 'a.jsonl' } }).lines, [
      'model: required; must be a model folder (relative to this config file) or a Hugging Face hub id',
    ]);
    assert.deepEqual(errorLines({ model: 'gpt2' }).lines, ['data: required; must be an object with at least "train"']);
    assert.deepEqual(errorLines({ model: 'gpt2', data: {} }).lines, ['data.train: required; must be a file path (relative to this config file)']);
    assert.match(errorLines([1, 2]).lines[0], /^\(top level\): must be a JSON object with at least "model" and "data"/);
  });

  it('rejects invalid regular expressions in target_modules and rank_pattern', () => {
    const { lines } = errorLines({ ...minimal(), lora: { target_modules: 'c_(attn', rank_pattern: { 'h\\.[0': 2 } } });
    assert.equal(lines.length, 2);
    assert.match(lines[0], /^lora\.target_modules: not a valid regular expression: /);
    assert.match(lines[1], /^lora\.rank_pattern: key "h\\\\.\[0" is not a valid regular expression/);
    // a list is names, not regexes; "all-linear" is a keyword
    parseRunConfig({ ...minimal(), lora: { target_modules: ['c_(attn'] } }, FILE, { resolvePaths: false });
    parseRunConfig({ ...minimal(), lora: { target_modules: 'all-linear' } }, FILE, { resolvePaths: false });
  });
});

describe('loadRunConfig', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-'));
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('names the file and the line/column of bad JSON', () => {
    const file = path.join(root, 'bad.json');
    fs.writeFileSync(file, '{\n  "model": "gpt2",\n  "data": { "train": "a.jsonl" },\n}\n');
    assert.throws(() => loadRunConfig(file), (e: LoraStudioError) => {
      assert.equal(e.file, file);
      assert.match(e.message, /^not valid JSON at line 4, column 1 \(position 55\): \S/);
      return true;
    });
    const truncated = path.join(root, 'truncated.json');
    fs.writeFileSync(truncated, '{"model": "gpt2"');
    assert.throws(() => loadRunConfig(truncated), /not valid JSON at line 1, column 17/);
    assert.throws(() => loadRunConfig(path.join(root, 'absent.json')), (e: LoraStudioError) => e.file!.endsWith('absent.json') && /missing/.test(e.message));
  });

  it('resolves paths against the config file folder; a model name that is no folder there stays a hub id', () => {
    const dir = path.join(root, 'project', 'configs');
    fs.mkdirSync(path.join(dir, 'models', 'tiny'), { recursive: true });
    const file = path.join(dir, 'lora-run.json');
    fs.writeFileSync(file, JSON.stringify({ ...clone(ISSUE_EXAMPLE), model: 'models/tiny', training: { ...ISSUE_EXAMPLE.training, resume_from_checkpoint: '../ck/checkpoint-10' } }));
    const cfg = loadRunConfig(file);
    assert.equal(cfg.model, path.join(dir, 'models', 'tiny'));
    assert.equal(cfg.data.train, path.join(dir, 'data', 'train.jsonl'));
    assert.equal(cfg.data.eval, path.join(dir, 'data', 'eval.jsonl'));
    assert.equal(cfg.training.output_dir, path.join(dir, 'runs', 'sst2'));
    assert.equal(cfg.training.resume_from_checkpoint, path.join(root, 'project', 'ck', 'checkpoint-10'));

    fs.writeFileSync(file, JSON.stringify({ model: 'openai-community/gpt2', data: { train: '/abs/train.csv' } }));
    const hub = loadRunConfig(file);
    assert.equal(hub.model, 'openai-community/gpt2');
    assert.equal(hub.data.train, '/abs/train.csv');
    assert.equal(hub.training.output_dir, path.join(dir, 'trainer_output'));
    // explicit relative paths are paths even when absent, so the loader's error shows where it looked
    fs.writeFileSync(file, JSON.stringify({ model: './missing-model', data: { train: 't.jsonl' } }));
    assert.equal(loadRunConfig(file).model, path.join(dir, 'missing-model'));
  });

  it('applies overrides (their paths relative to cwd) and validates them like the file', () => {
    const file = path.join(root, 'ov.json');
    fs.writeFileSync(file, JSON.stringify(clone(ISSUE_EXAMPLE)));
    const cwd = path.join(root, 'elsewhere');
    const cfg = loadRunConfig(file, { training: { output_dir: 'out', learning_rate: 2e-4, resume_from_checkpoint: true, backend: 'wasm' } }, cwd);
    assert.equal(cfg.training.output_dir, path.join(cwd, 'out'));
    assert.equal(cfg.training.learning_rate, 2e-4);
    assert.equal(cfg.training.resume_from_checkpoint, true);
    assert.equal(cfg.training.backend, 'wasm');
    assert.equal(cfg.training.num_train_epochs, 10, 'other fields stay');
    assert.throws(() => loadRunConfig(file, { training: { lr_scheduler_type: 'exp' as never } }, cwd), /training\.lr_scheduler_type: must be one of/);
  });

  it('hostile files: deep nesting, a BOM, huge values, a folder instead of a file', () => {
    const file = path.join(root, 'hostile.json');
    // 5,000 levels deep used to overflow JSON.stringify while formatting the error
    fs.writeFileSync(file, `{"model": "gpt2", "data": {"train": "t.jsonl"}, "lora": {"target_modules": ${'['.repeat(5000)}${']'.repeat(5000)}}}`);
    assert.throws(() => loadRunConfig(file), (e: LoraStudioError) => {
      assert.ok(e instanceof LoraStudioError);
      assert.equal(e.file, file);
      assert.match(e.field!, /^lora\.target_modules/);
      assert.match(e.message, /nested more than 64 levels/);
      return true;
    });
    // a UTF-8 BOM is accepted
    fs.writeFileSync(file, '\ufeff' + JSON.stringify(minimal()));
    assert.equal(loadRunConfig(file).model, 'gpt2');
    // a huge string value is shown cut short
    fs.writeFileSync(file, JSON.stringify({ ...minimal(), task: 'x'.repeat(500_000) }));
    assert.throws(() => loadRunConfig(file), (e: LoraStudioError) => e.field === 'task' && e.message.length < 300);
    // a folder or a FIFO is refused, never read
    assert.throws(() => loadRunConfig(root), (e: LoraStudioError) => e.file === root && /not a regular file/.test(e.message));
  });

  it('any JSON value at any field gives a LoraStudioError, with a bounded message', () => {
    const deep = JSON.parse('['.repeat(60) + ']'.repeat(60));
    const values: unknown[] = [null, true, 1.5, -1, 1e308, '', 'x'.repeat(100_000), [], deep, { a: deep }, Array(50_000).fill(7), JSON.parse('{"__proto__": 1, "toString": 2}')];
    const fields = [[], ['model'], ['task'], ['num_labels'], ['data'], ['data', 'train'], ['data', 'max_length'], ['lora'], ['lora', 'target_modules'],
      ['lora', 'rank_pattern'], ['lora', 'modules_to_save'], ['training'], ['training', 'save_total_limit'], ['training', 'resume_from_checkpoint']];
    for (const f of fields) {
      for (const v of values) {
        const raw = { ...clone(ISSUE_EXAMPLE) } as Record<string, unknown>;
        if (f.length === 1) raw[f[0]] = v;
        if (f.length === 2) raw[f[0]] = { ...(raw[f[0]] as object), [f[1]]: v };
        try {
          parseRunConfig(f.length === 0 ? v : raw, FILE, { resolvePaths: false });
        } catch (e) {
          assert.ok(e instanceof LoraStudioError, `${f.join('.')}: ${String(e)}`);
          assert.ok(e.message.length < 20_000, `${f.join('.')}: message of ${e.message.length} chars`);
        }
      }
    }
  });

  it('"__proto__" is an ordinary rank_pattern key, and its value is checked', () => {
    const ok = parseRunConfig(JSON.parse('{"model": "gpt2", "data": {"train": "t.jsonl"}, "lora": {"rank_pattern": {"__proto__": 4, "toString": 2}}}'), FILE, { resolvePaths: false });
    assert.deepEqual(Object.entries(ok.lora.rank_pattern), [['toString', 2], ['__proto__', 4]]);
    const { lines } = errorLines(JSON.parse('{"model": "gpt2", "data": {"train": "t.jsonl"}, "lora": {"alpha_pattern": {"__proto__": "big"}}}'));
    assert.deepEqual(lines, ['lora.alpha_pattern.__proto__: must be a number > 0 (got "big")']);
  });

  it('a regex error in a rank_pattern key is checked as PEFT anchors it, and a long key is cut', () => {
    const { lines } = errorLines({ ...minimal(), lora: { rank_pattern: { [`(${'a'.repeat(500)}`]: 2 } } });
    assert.equal(lines.length, 1);
    assert.equal(lines[0], `lora.rank_pattern: key "(${'a'.repeat(57)}… is not a valid regular expression: Unterminated group`);
    assert.ok(lines[0].length < 300);
  });
});
