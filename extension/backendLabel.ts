/**
 * How the dashboard header and the status bar name the backend a run computes on, from the trainer's start event:
 * "WASM", "CPU", "TensorFlow (GPU)" / "TensorFlow (CPU)", and for webgpu the adapter Dawn gave, e.g.
 * "WebGPU · NVIDIA H200" or "WebGPU · llvmpipe (software)". One owner, so the two always agree. No vscode import.
 */
import type { StartEvent } from '../trainer/protocol';

export type BackendKind = 'GPU' | 'CPU' | 'WASM';

/** The adapter's shortest telling name: device, else description, else vendor/architecture, without "(…)" details. */
function adapterName(a: NonNullable<StartEvent['adapter']>): string {
  const raw = [a.device, a.description, [a.vendor, a.architecture].filter(Boolean).join(' ')].map((s) => (s ?? '').trim()).find(Boolean) ?? '';
  const short = raw.replace(/\s*\(.*$/, '').trim() || raw;
  return short || 'unnamed adapter';
}

export function backendLabel(e: Pick<StartEvent, 'backend' | 'gpu' | 'adapter'>): { kind: BackendKind; text: string } {
  switch (e.backend) {
    case 'wasm':
      return { kind: 'WASM', text: 'WASM' };
    case 'cpu':
      return { kind: 'CPU', text: 'CPU' };
    case 'tensorflow':
      return { kind: e.gpu ? 'GPU' : 'CPU', text: `TensorFlow (${e.gpu ? 'GPU' : 'CPU'})` };
    case 'webgpu': {
      const a = e.adapter;
      if (!a) return { kind: e.gpu ? 'GPU' : 'CPU', text: 'WebGPU' };
      return { kind: a.software ? 'CPU' : 'GPU', text: `WebGPU · ${adapterName(a)}${a.software ? ' (software)' : ''}` };
    }
    default:
      return { kind: e.gpu ? 'GPU' : 'CPU', text: e.gpu ? `${e.backend} (GPU)` : e.backend };
  }
}
