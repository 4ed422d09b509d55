/**
 * Frees memory while tfjs backpropagates. tfjs-core's engine keeps every gradient it makes, and every tensor a
 * node saved for its backward pass, until the whole backward pass ends, so the memory a training step needs is
 * all saved activations plus all intermediate gradients at once. releaseAsBackpropPasses() wraps the gradient of
 * each node on the active tape so that, once the node has handed out the gradients of all its inputs, its
 * output gradients (used by no other node) and its saved tensors (clones kept for it alone) are disposed.
 * Values are unchanged; only when memory is released changes. A no-op outside a gradient computation.
 */
import * as tf from '@tensorflow/tfjs-core';

type GradientThunks = Record<string, () => tf.Tensor>;
interface TapeNode {
  inputs: Record<string, tf.Tensor>;
  saved?: tf.Tensor[];
  gradient?: (dys: Array<tf.Tensor | null>) => GradientThunks;
}

const wrapped = new WeakSet<TapeNode>();

/** Call inside the function given to tf.variableGrads / tf.grads, after the forward pass (e.g. with the loss). */
export function releaseAsBackpropPasses(): void {
  const state = (tf.engine() as unknown as { state: { activeTape: TapeNode[] | null; gradientDepth: number } }).state;
  // inside one gradient computation the depth is 1; a nested one (higher-order gradients) needs the tensors again
  if (!state.activeTape || state.gradientDepth !== 1) return;
  for (const node of state.activeTape) {
    const gradient = node.gradient;
    if (!gradient || wrapped.has(node)) continue;
    wrapped.add(node);
    node.gradient = (dys) => {
      const thunks = gradient(dys);
      let left = Object.keys(node.inputs).length;
      const handedOut = new Set<tf.Tensor>();
      const release = () => {
        // a gradient function may pass a dy on as an input's gradient: that one lives on
        for (const t of [...dys, ...(node.saved ?? [])]) if (t && !handedOut.has(t)) t.dispose();
      };
      const out: GradientThunks = {};
      for (const [name, thunk] of Object.entries(thunks)) {
        out[name] = () => {
          const dx = thunk();
          handedOut.add(dx);
          if (--left === 0) release();
          return dx;
        };
      }
      return out;
    };
  }
}
