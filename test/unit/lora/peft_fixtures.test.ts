/**
 * Our PEFT matching against adapters that PEFT itself saved: resolving each adapter_config.json's
 * target_modules over GPT-2 small's module table must give exactly the modules that carry lora_A tensors.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensorsHeader } from '../../../trainer/io/safetensors';
import { LORA_DEFAULTS, type LoraConfig } from '../../../trainer/lora/config';
import type { Task } from '../../../trainer/task';
import { parseConfig } from '../../../trainer/models/gpt2/config';
import { namedModules } from '../../../trainer/models/gpt2/modules';
import { resolveTargets } from '../../../trainer/lora/targets';
import { countParams } from '../../../trainer/lora/peft_line';

const FIXTURES = path.resolve(__dirname, '..', '..', '..', '..', 'shared', 'fixtures');
const skip = fs.existsSync(FIXTURES) ? false : 'skipped: ../shared/fixtures is absent';
const SMALL = parseConfig({ model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 }, 'config.json');

const CASES: Array<{ dir: string; task: Task; count: number; num_labels: number }> = [
  { dir: 'seqcls-gpt2-r8', task: 'seq-cls', count: 12, num_labels: 6 },
  { dir: 'causal-gpt2-r8', task: 'causal-lm', count: 36, num_labels: 2 },
];

describe('PEFT fixtures: target resolution', { skip }, () => {
  for (const c of CASES) {
    it(`${c.dir}: resolved targets are exactly the modules with lora_A keys (${c.count})`, () => {
      const dir = path.join(FIXTURES, 'peft-adapters', c.dir);
      const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
      const l: LoraConfig = {
        ...LORA_DEFAULTS,
        r: cfg.r, lora_alpha: cfg.lora_alpha, target_modules: cfg.target_modules, exclude_modules: cfg.exclude_modules ?? null,
        modules_to_save: cfg.modules_to_save, fan_in_fan_out: cfg.fan_in_fan_out, bias: cfg.bias, use_rslora: cfg.use_rslora,
        rank_pattern: cfg.rank_pattern, alpha_pattern: cfg.alpha_pattern,
      };
      const modules = namedModules(SMALL, c.task, c.num_labels);
      const r = resolveTargets(modules, l, c.task, { explicitModulesToSave: false });

      const header = readSafetensorsHeader(path.join(dir, 'adapter_model.safetensors'));
      const withA = new Set<string>();
      for (const key of header.entries.keys()) {
        const m = /^base_model\.model\.(.+)\.lora_A\.weight$/.exec(key);
        if (m) withA.add(m[1]);
      }
      assert.equal(withA.size, c.count);
      assert.deepEqual(new Set(r.targets.map((t) => t.name)), withA);
      assert.deepEqual(r.warnings, []);

      // shapes: PEFT's lora_A is [r, in], lora_B is [out, r]
      for (const t of r.targets) {
        assert.deepEqual(header.entries.get(`base_model.model.${t.name}.lora_A.weight`)?.shape, [t.r, t.in_features]);
        assert.deepEqual(header.entries.get(`base_model.model.${t.name}.lora_B.weight`)?.shape, [t.out_features, t.r]);
      }
      // modules_to_save: the seq-cls adapter carries the score head
      const saved = [...header.entries.keys()].filter((k) => !/lora_[AB]\.weight$/.test(k)).map((k) => k.replace(/^base_model\.model\./, '').replace(/\.weight$/, ''));
      assert.deepEqual(saved, r.modules_to_save);
      // the LoRA + saved tensors are exactly what countParams calls trainable
      let numel = 0;
      for (const e of header.entries.values()) numel += e.shape.reduce((a, b) => a * b, 1);
      assert.equal(countParams(modules, r.targets, r.modules_to_save, l.bias).trainable_params, numel);
    });
  }
});
