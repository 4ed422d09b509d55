/** Process helpers shared by the suites that start real processes (trainer, integration, VS Code runner). */

/** Is a process with this pid still there? (signal 0 probes without touching it; EPERM means it exists) */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
