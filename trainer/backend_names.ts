/**
 * The backends' names, in the automatic order: a file of its own, without TensorFlow.js, so that the CLI can offer
 * them as `--backend` choices without loading any backend (backend.ts re-exports them).
 */
export type BackendName = 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export const BACKEND_NAMES: readonly BackendName[] = ['tensorflow', 'webgpu', 'wasm', 'cpu'];
