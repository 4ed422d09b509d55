/**
 * The training child process that the extension forks (counterpart: extension/trainerClient.ts).
 * It speaks the typed messages of trainer/protocol.ts over Node IPC, streams TrainEvents as notifications,
 * stops cleanly on `cancel` (checkpoint first), and exits when its parent is gone: a run never outlives the editor.
 */
import type { ChildMessage, ParentMessage } from './protocol';
import { ERROR_CODES, isParentMessage } from './protocol';
import { LoraStudioError } from './errors';
import { loadRunConfig } from './config/run_config';
import { train } from './train/trainer';
import { inspect } from './commands/inspect';
import { selectModules } from './commands/select';
import { LORA_DEFAULTS } from './lora/config';
import { resolveModelDir } from './io/hub_model';

const PARENT_POLL_MS = 2000;
const running = new Map<number, AbortController>();

function send(m: ChildMessage): void {
  process.send?.(m);
}

function parentAlive(ppid: number): boolean {
  try {
    process.kill(ppid, 0);
    return true;
  } catch {
    return false;
  }
}

async function handle(m: ParentMessage): Promise<void> {
  if (m.kind === 'cancel') {
    running.get(m.id)?.abort();
    return;
  }
  const abort = new AbortController();
  running.set(m.id, abort);
  try {
    let result: unknown;
    if (m.method === 'train') {
      const p = m.params;
      const cfg = loadRunConfig(p.config_file, p.resume_from_checkpoint !== undefined ? { training: { resume_from_checkpoint: p.resume_from_checkpoint } } : undefined);
      result = await train(cfg, {
        onEvent: (event) => send({ kind: 'notification', id: m.id, event }),
        signal: abort.signal,
        backend: p.backend,
        configFile: p.config_file,
      });
    } else if (m.method === 'select') {
      const p = m.params;
      const modelDir = await resolveModelDir(p.model_dir, 'model', { configOnly: true });
      result = selectModules({ modelDir, task: p.task, num_labels: p.num_labels, target_modules: p.target_modules });
    } else if ('config_file' in m.params) {
      const cfg = loadRunConfig(m.params.config_file);
      const modelDir = await resolveModelDir(cfg.model, 'model', { configFile: m.params.config_file, configOnly: true });
      result = inspect({ modelDir, task: cfg.task, num_labels: cfg.num_labels ?? undefined, lora: cfg.lora, explicitModulesToSave: cfg.lora.modules_to_save !== null, loraFile: m.params.config_file });
    } else {
      const p = m.params;
      const modelDir = await resolveModelDir(p.model_dir, 'model', { configOnly: true });
      result = inspect({ modelDir, task: p.task, num_labels: p.num_labels, lora: { ...LORA_DEFAULTS, ...p.lora }, explicitModulesToSave: p.lora?.modules_to_save != null });
    }
    send({ kind: 'response', id: m.id, result });
  } catch (e) {
    const err = e instanceof LoraStudioError ? e : null;
    send({
      kind: 'response', id: m.id,
      error: { code: err ? ERROR_CODES.invalid_input : ERROR_CODES.internal, message: err ? err.message : (e as Error)?.stack ?? String(e), file: err?.file, field: err?.field },
    });
  } finally {
    running.delete(m.id);
  }
}

export function startChild(): void {
  if (!process.send) {
    process.stderr.write('trainer/main: this entry point is forked by the extension; use `lora-studio` on the command line\n');
    process.exit(2);
  }
  const ppid = process.ppid;
  const watchdog = setInterval(() => {
    if (!parentAlive(ppid)) process.exit(0);
  }, PARENT_POLL_MS);
  watchdog.unref();
  process.on('disconnect', () => process.exit(0));
  process.on('message', (m: unknown) => {
    if (!isParentMessage(m)) {
      process.stderr.write(`trainer/main: ignored a malformed message: ${JSON.stringify(m)}\n`);
      return;
    }
    void handle(m);
  });
  // SIGTERM from the parent: stop every run cleanly (each saves a checkpoint), then leave.
  process.on('SIGTERM', () => {
    for (const a of running.values()) a.abort();
    if (running.size === 0) process.exit(0);
  });
  send({ kind: 'ready', pid: process.pid });
}

if (require.main === module) startChild();
