/**
 * Whether this machine can run the webgpu tests: Dawn (npm `webgpu`) must offer some adapter, a software one
 * (Mesa llvmpipe through OpenGL ES) included. Asked once per process.
 */
import { findAdapter } from '../../../trainer/backend_webgpu';

let probe: Promise<string | false> | null = null;

/** false when webgpu can run here, else the skip message saying why not. */
export function webgpuSkipReason(): Promise<string | false> {
  probe ??= findAdapter(false).then(
    () => false as const,
    (e: unknown) => `skipped: no WebGPU adapter (${(e instanceof Error ? e.message : String(e)).replace(/^Dawn found no WebGPU adapter \((.*)\)$/s, 'Dawn found none: $1')})`,
  );
  return probe;
}
