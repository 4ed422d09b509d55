/** How commands print the backend they ran on (no imports: the progress printer and the extension may use it). */

interface AdapterFields {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  software: boolean;
}

/** `backend: webgpu (GPU: not found; adapter: llvmpipe-… (OpenGL ES 3.2 Mesa 22.3.6), software)` */
export function backendLine(b: { backend: string; gpu: boolean; adapter?: AdapterFields }): string {
  return `backend: ${b.backend} (GPU: ${b.gpu ? 'found' : 'not found'}${b.adapter ? `; adapter: ${adapterName(b.adapter)}` : ''})`;
}

export function adapterName(a: AdapterFields): string {
  const name = [a.vendor, a.architecture, a.device].filter(Boolean).join(' ') || 'unnamed adapter';
  return `${name}${a.description ? ` (${a.description})` : ''}${a.software ? ', software' : ''}`;
}

/** `{ adapter }` for a command's JSON result, or nothing when the backend has no adapter. */
export function adapterField(b: { adapter?: AdapterFields }): { adapter?: AdapterFields } {
  return b.adapter ? { adapter: b.adapter } : {};
}
