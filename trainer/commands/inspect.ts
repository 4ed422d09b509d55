/**
 * `inspect`: the module tree of a model folder as named_modules() names it, with the LoRA targets and
 * modules_to_save marked, and PEFT's trainable-parameters line. Reads config.json only, never the weights.
 */
import * as path from 'node:path';
import { readModelConfig } from '../models/registry';
import type { LoraConfig } from '../lora/config';
import type { Task } from '../task';
import { resolveTargets } from '../lora/targets';
import { countParams, thousands } from '../lora/peft_line';
import type { InspectModule, InspectResult, ModuleInfo } from '../protocol';

export interface InspectOptions {
  modelDir: string;
  task?: Task;
  num_labels?: number;
  lora: LoraConfig;
  /** modules_to_save came from the user (see resolveTargets) */
  explicitModulesToSave?: boolean;
  /** the file the LoRA settings came from (a run config), named in errors */
  loraFile?: string;
}

export function inspect(opts: InspectOptions): InspectResult {
  const { family, config } = readModelConfig(opts.modelDir);
  const task = opts.task ?? family.taskFromConfig(config);
  const num_labels = opts.num_labels ?? family.numLabels(config);
  const table = family.namedModules(config, task, num_labels);
  const resolved = resolveTargets(table, opts.lora, task, {
    explicitModulesToSave: opts.explicitModulesToSave, file: opts.loraFile, defaults: { model_type: config.model_type, target_modules: family.defaultTargetModules },
  });
  const counts = countParams(table, resolved.targets, resolved.modules_to_save, opts.lora.bias);

  const byName = new Map(resolved.targets.map((t) => [t.name, t]));
  const saved = new Set(resolved.modules_to_save);
  const modules: InspectModule[] = table.map((m) => {
    const out: InspectModule = { ...m, weight_keys: [...m.weight_keys] };
    const t = byName.get(m.name);
    if (t) out.lora = { r: t.r, lora_alpha: t.lora_alpha, scaling: t.scaling };
    if (saved.has(m.name)) out.modules_to_save = true;
    return out;
  });

  return {
    model_dir: path.resolve(opts.modelDir),
    model_type: config.model_type,
    task,
    num_labels,
    modules,
    targets: resolved.targets,
    modules_to_save: resolved.modules_to_save,
    warnings: resolved.warnings,
    fan_in_fan_out: resolved.fan_in_fan_out,
    ...counts,
  };
}

/**
 * A readable tree, one module a line, indented by its dotted path:
 *   attn  GPT2Attention
 *     c_attn  Conv1D  768→2304  1,771,776  ◆ LoRA r=8 α=16
 * then PEFT's line. The warnings are not part of it: the CLI prints them once, on stderr (and in --json's object).
 */
export function formatInspect(result: InspectResult): string {
  const lines: string[] = [];
  lines.push(`${result.model_dir}  (${result.model_type}, ${result.task}${result.task === 'seq-cls' ? `, ${result.num_labels} labels` : ''})`);
  for (const m of result.modules) {
    const depth = m.name === '' ? 0 : m.name.split('.').length;
    const label = m.name === '' ? '(root)' : m.name.slice(m.name.lastIndexOf('.') + 1);
    const parts = [`${'  '.repeat(depth)}${label}`, m.type];
    const shape = shapeText(m);
    if (shape) parts.push(shape);
    if (m.params > 0) parts.push(thousands(m.params));
    if (m.tied_to) parts.push(`(weight tied to ${m.tied_to})`);
    if (m.lora) parts.push(`◆ LoRA r=${m.lora.r} α=${fmtNum(m.lora.lora_alpha)}${m.lora.scaling !== m.lora.lora_alpha / m.lora.r ? ` scaling=${fmtNum(m.lora.scaling)}` : ''}`);
    if (m.modules_to_save) parts.push('● modules_to_save (trained in full)');
    lines.push(parts.join('  '));
  }
  lines.push('');
  lines.push(`${result.targets.length} LoRA target(s)${result.modules_to_save.length ? `; modules_to_save: ${result.modules_to_save.join(', ')}` : ''}`);
  lines.push(result.line);
  return lines.join('\n');
}

function shapeText(m: ModuleInfo): string {
  if (m.in_features === undefined || m.out_features === undefined) return '';
  if (m.type === 'LayerNorm' || m.type.endsWith('RMSNorm')) return `[${m.in_features}]`;
  if (m.type === 'Embedding') return `${m.in_features}×${m.out_features}`;
  return `${m.in_features}→${m.out_features}`;
}

const fmtNum = (x: number) => (Number.isInteger(x) ? String(x) : String(Number(x.toPrecision(6))));
