/**
 * Every command of the extension, in one table, registered in one loop. Each entry has its enabled
 * behaviour (`run`) and the gates it `needs`; the first unmet one is its disabled behaviour: in Restricted Mode the
 * commands that run the trainer on workspace files (training, merging, evaluating, trying) show why instead
 * of running; the module filters need an open model. package.json's `when` clauses mirror this for menus.
 * The implementations live in commands/, one file per concern.
 */
import * as vscode from 'vscode';
import type { LoraContext } from './context';
import { loadAdapter, saveAdapterAs } from './commands/adapters';
import { evaluateAdapter, mergeAdapter, tryAdapter } from './commands/adapterJobs';
import { analyzeAdapter, compareRuns } from './commands/analyze';
import { installGpuBackend, installNativeBackend } from './commands/install';
import { filterRegex, openModel } from './commands/model';
import { newRunConfig } from './commands/newRunConfig';
import { showTrainerError } from './run';

type Gate = 'trust' | 'model' | 'run';

interface CommandSpec {
  /** without the `loraStudio.` prefix */
  id: string;
  /** what the Restricted Mode message calls it */
  title: string;
  /** conditions, checked in order; the first unmet one is the disabled behaviour */
  needs?: Gate[];
  run(ctx: LoraContext, ...args: unknown[]): unknown;
}

/** Why a command cannot run now, or undefined when it can. */
function disabledReason(ctx: LoraContext, spec: CommandSpec): { message: string; action?: [string, () => unknown] } | undefined {
  for (const gate of spec.needs ?? []) {
    if (gate === 'trust' && !ctx.trusted) {
      return { message: ctx.restrictedReason(spec.title)!, action: ['Manage Workspace Trust', () => vscode.commands.executeCommand('workbench.trust.manage')] };
    }
    if (gate === 'model' && !ctx.modules.openModel) {
      return { message: `${spec.title} needs an open model.`, action: ['Open Model…', () => vscode.commands.executeCommand('loraStudio.openModel')] };
    }
    if (gate === 'run' && !ctx.runs.isActive) {
      return { message: 'No training run is in progress.' };
    }
  }
  return undefined;
}

export const COMMANDS: CommandSpec[] = [
  { id: 'openModel', title: 'Open Model', run: (ctx, arg) => openModel(ctx, arg) },
  { id: 'startTraining', title: 'Training', needs: ['trust'], run: (ctx) => ctx.runs.startTraining() },
  { id: 'stopTraining', title: 'Stop Training', needs: ['run'], run: (ctx) => ctx.runs.stopTraining() },
  { id: 'resumeTraining', title: 'Resuming training', needs: ['trust'], run: (ctx) => ctx.runs.resumeTraining() },
  { id: 'showDashboard', title: 'Show Dashboard', run: (ctx) => ctx.showDashboard() },
  { id: 'saveAdapterAs', title: 'Save Adapter As', run: (ctx) => saveAdapterAs(ctx) },
  { id: 'loadAdapter', title: 'Load Adapter', run: (ctx, arg) => loadAdapter(ctx, arg) },
  { id: 'mergeAdapter', title: 'Merging', needs: ['trust'], run: (ctx, arg) => mergeAdapter(ctx, arg) },
  { id: 'evaluateAdapter', title: 'Evaluating an adapter', needs: ['trust'], run: (ctx) => evaluateAdapter(ctx) },
  { id: 'tryAdapter', title: 'Trying an adapter', needs: ['trust'], run: (ctx) => tryAdapter(ctx) },
  { id: 'analyzeAdapter', title: 'Analyzing an adapter', needs: ['trust'], run: (ctx, arg) => analyzeAdapter(ctx, arg) },
  { id: 'compareRuns', title: 'Compare Runs', run: (ctx, arg) => compareRuns(ctx, arg) },
  { id: 'newRunConfig', title: 'New Run Config', run: (ctx) => newRunConfig(ctx) },
  { id: 'installNativeBackend', title: 'Install Native Backend', run: (ctx) => installNativeBackend(ctx) },
  { id: 'installGpuBackend', title: 'Install GPU Backend', run: (ctx) => installGpuBackend(ctx) },
  { id: 'showLog', title: 'Show Log', run: (ctx) => ctx.log.show() },
  { id: 'modules.filterRegex', title: 'Filter by regex', needs: ['model'], run: (ctx) => filterRegex(ctx) },
  { id: 'modules.filterAttention', title: 'Attention only', needs: ['model'], run: (ctx) => ctx.modules.applyFilter({ kind: 'attention' }) },
  { id: 'modules.filterAllLinear', title: 'All linear', needs: ['model'], run: (ctx) => ctx.modules.applyFilter({ kind: 'all-linear' }) },
  { id: 'modules.filterClear', title: 'Clear selection', needs: ['model'], run: (ctx) => ctx.modules.applyFilter({ kind: 'clear' }) },
];

export function registerCommands(ctx: LoraContext): vscode.Disposable[] {
  return COMMANDS.map((spec) =>
    vscode.commands.registerCommand(`loraStudio.${spec.id}`, async (...args: unknown[]) => {
      const off = disabledReason(ctx, spec);
      if (off) {
        const pick = await vscode.window.showWarningMessage(off.message, ...(off.action ? [off.action[0]] : []));
        if (pick && off.action) await off.action[1]();
        return;
      }
      try {
        // the result (a panel, say) goes back to executeCommand's caller: scripts and the integration tests
        return await spec.run(ctx, ...args);
      } catch (e) {
        await showTrainerError(spec.title, e, ctx.log);
        return undefined;
      }
    }),
  );
}
