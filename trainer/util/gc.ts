/**
 * One full garbage collection on demand. After a model's weights were copied into the backend's memory, the
 * host copy (hundreds of MB: a safetensors file, a replica's buffer) is garbage, but V8 collects the old
 * generation only under JavaScript heap pressure, which a training loop barely makes; until then its pages stay
 * resident. Collecting once at that point returns them to the OS. Uses `gc` when the process exposes it,
 * else enables it (the --expose-gc flag, set at run time, then read from a fresh context).
 */
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

let collect: (() => void) | undefined;

export function collectGarbage(): void {
  if (!collect) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) collect = exposed;
    else {
      v8.setFlagsFromString('--expose-gc');
      collect = vm.runInNewContext('gc') as () => void;
    }
  }
  collect();
}
