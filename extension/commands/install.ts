/**
 * "LoRA: Install Native Backend…" and "LoRA: Install GPU Backend…": an npm install of a pinned package into the
 * extension's global storage (extension/native.ts), where the trainer child finds it through LORA_STUDIO_NATIVE_DIR.
 * One flow for both: ask, install with cancellable progress and npm's output in the log, then recycle the idle
 * trainer so the next run loads the new backend.
 */
import * as vscode from 'vscode';
import type { LoraContext } from '../context';
import { dawnPlatform, gpuPlan, installedGpu, installGpu, WEBGPU_VERSION } from '../gpu';
import { installedNative, installNative, nativePlan, nativeRoot, type InstallOptions, type NativeFlavor, type NativePlan } from '../native';
import { OPEN_LOG } from '../run';

async function confirmAndInstall(
  ctx: LoraContext,
  plan: NativePlan,
  question: string,
  install: (opts: InstallOptions) => Promise<string>,
  installed: (restarted: boolean) => string,
): Promise<void> {
  const root = nativeRoot(ctx.globalStorage);
  const ok = await vscode.window.showInformationMessage(
    question,
    { modal: true, detail: `${plan.requirements}\n\nIt is installed into ${root}, outside your workspace; the trainer loads it from there.` },
    'Install',
  );
  if (!ok) return;
  ctx.log.info(`installing ${plan.spec} into ${root}`);
  try {
    await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Installing ${plan.pkg}`, cancellable: true }, (progress, token) => {
      const abort = new AbortController();
      token.onCancellationRequested(() => abort.abort());
      return install({
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
  void vscode.window.showInformationMessage(installed(ctx.client.recycle()));
}

export async function installNativeBackend(ctx: LoraContext): Promise<void> {
  const current = installedNative(ctx.globalStorage);
  const flavors: Array<vscode.QuickPickItem & { flavor: NativeFlavor }> = [
    { label: '$(chip) GPU (CUDA)', description: '@tensorflow/tfjs-node-gpu', detail: nativePlan('gpu').requirements, flavor: 'gpu' },
    { label: '$(server-process) CPU', description: '@tensorflow/tfjs-node', detail: nativePlan('cpu').requirements, flavor: 'cpu' },
  ];
  const pick = await vscode.window.showQuickPick(flavors, {
    title: 'Install the native TensorFlow backend',
    placeHolder: current ? `Installed now: ${current}` : 'Without it, training runs on WebAssembly or plain JavaScript',
    matchOnDetail: true,
  });
  if (!pick) return;
  const plan = nativePlan(pick.flavor);
  await confirmAndInstall(ctx, plan, `Install ${plan.spec}?`, (opts) => installNative(ctx.globalStorage, pick.flavor, opts), (restarted) =>
    `${plan.pkg} is installed. ${restarted ? 'The next run uses it' : 'Runs started after the current one use it'} (set "loraStudio.backend" to "tensorflow" to require it).`);
}

export async function installGpuBackend(ctx: LoraContext): Promise<void> {
  if (!dawnPlatform()) {
    void vscode.window.showErrorMessage(`The GPU backend (npm "webgpu" ${WEBGPU_VERSION}) has no build for ${process.platform}-${process.arch}. Training runs on WebAssembly.`);
    return;
  }
  const plan = gpuPlan();
  const current = installedGpu(ctx.globalStorage);
  await confirmAndInstall(ctx, plan, current ? `webgpu ${current} is installed. Install ${plan.spec} again?` : `Install ${plan.spec}?`, (opts) => installGpu(ctx.globalStorage, opts), (restarted) =>
    `The GPU backend (webgpu ${WEBGPU_VERSION}) is installed. ${restarted ? 'The next run' : 'Runs started after the current one'} can use it: ` +
      '"auto" takes it when Dawn finds a hardware GPU; set "loraStudio.backend" to "webgpu" to require it.');
}
