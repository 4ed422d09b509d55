/**
 * `select` (IPC only): what a target_modules value selects in a model folder's module table, for the editor's
 * Modules view, which renders the trainer's answer instead of matching names itself. Reads config.json only.
 */
import { readModelConfig } from '../models/registry';
import type { Task } from '../task';
import { selectTargets } from '../lora/select';
import type { SelectResult } from '../protocol';

export interface SelectOptions {
  modelDir: string;
  task?: Task;
  num_labels?: number;
  target_modules: string | string[] | null;
}

export function selectModules(opts: SelectOptions): SelectResult {
  const { family, config } = readModelConfig(opts.modelDir);
  const task = opts.task ?? family.taskFromConfig(config);
  const table = family.namedModules(config, task, opts.num_labels ?? family.numLabels(config));
  return selectTargets(table, opts.target_modules, { field: 'target_modules' }, { model_type: config.model_type, target_modules: family.defaultTargetModules });
}
