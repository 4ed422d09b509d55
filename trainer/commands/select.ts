/**
 * `select` (IPC only): what a target_modules value selects in a model folder's module table, for the editor's
 * Modules view, which renders the trainer's answer instead of matching names itself. Reads config.json only.
 */
import { configNumLabels, readConfig } from '../models/gpt2/config';
import { namedModules } from '../models/gpt2/modules';
import { taskFromConfig } from '../models/gpt2/folder';
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
  const config = readConfig(opts.modelDir);
  const task = opts.task ?? taskFromConfig(config);
  const table = namedModules(config, task, opts.num_labels ?? configNumLabels(config));
  return selectTargets(table, opts.target_modules, { field: 'target_modules' });
}
