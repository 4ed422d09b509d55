/**
 * "LoRA: Install GPU Backend…": npm install of Dawn's Node bindings (`webgpu`, pinned) into the extension's global
 * storage, where the trainer child finds it (extension/gpu.ts). Mirrors "Install Native Backend…".
 */
import * as vscode from 'vscode';
import type { LoraContext } from '../context';
import { dawnPlatform, gpuPlan, installedGpu, installGpu, WEBGPU_VERSION } from '../gpu';
import { nativeRoot } from '../native';
import { OPEN_LOG } from '../run';

export async function installGpuBackend(ctx: LoraContext): Promise<void> {
  const plan = gpuPlan();
  const root = nativeRoot(ctx.globalStorage);
  if (!dawnPlatform()) {
    void vscode.window.showErrorMessage(`The GPU backend (npm "webgpu" ${WEBGPU_VERSION}) has no build for ${process.platform}-${process.arch}. Training runs on WebAssembly.`);
    return;
  }
  const current = installedGpu(ctx.globalStorage);
  const ok = await vscode.window.showInformationMessage(
    current ? `webgpu ${current} is installed. Install ${plan.spec} again?` : `Install ${plan.spec}?`,
    { modal: true, detail: `${plan.requirements}\n\nIt is installed into ${root}, outside your workspace; the trainer loads it from there.` },
    'Install',
  );
  if (!ok) return;
  ctx.log.info(`installing ${plan.spec} into ${root}`);
  try {
    await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Installing ${plan.pkg}`, cancellable: true }, (progress, token) => {
      const abort = new AbortController();
      token.onCancellationRequested(() => abort.abort());
      return installGpu(ctx.globalStorage, {
        signal: abort.signal,
        onLine: (line) => {
          ctx.log.info(`[npm] ${line}`);
          progress.report({ message: line.trim().slice(0, 100) });
        },
      });
    });
  } catch (e) {
    const p = await vscode.window.showErrorMessage(`Could not install ${plan.pkg}: ${(e as Error).message}`, OPEN_LOG);
    if (p) ctx.log.show(true);
    return;
  }
  const restarted = ctx.client.recycle();
  void vscode.window.showInformationMessage(
    `The GPU backend (webgpu ${WEBGPU_VERSION}) is installed. ${restarted ? 'The next run' : 'Runs started after the current one'} can use it: ` +
      '"auto" takes it when Dawn finds a hardware GPU; set "loraStudio.backend" to "webgpu" to require it.',
  );
}
