/**
 * Folds a LoRA adapter into base weights (W' = W + scaling · transpose(B·A, fan_in_fan_out)) and back out,
 * refusing non-finite results as PEFT's safe_merge does. Which modules are Conv1D (fan_in_fan_out) the caller
 * says, from the model's family; the "model folder + adapter → new folder" step is commands/merge.ts, which streams
 * (lora/merge_stream.ts) and is tested bit for bit against mergeAdapter here.
 */
import { LoraStudioError, preview } from '../errors';
import { type HostTensor, f16ToF32, f32ToF16, f32ToBf16 } from '../io/safetensors';
import { rankTable } from './patterns';
import type { AdapterWeights } from './types';

/**
 * Returns a NEW map with every LoRA module merged and `extra` tensors (modules_to_save, biases) put in place of
 * the base tensors of the same key. Inputs are not modified; untouched tensors are shared with `weights`.
 * Each tensor keeps its dtype. Throws (naming the module) if any merged value is not finite in that dtype.
 */
export function mergeAdapter(weights: Map<string, HostTensor>, adapter: AdapterWeights, isConv1D: (module: string) => boolean): Map<string, HostTensor> {
  const out = applyDeltas(weights, adapter, +1, isConv1D);
  for (const [key, t] of adapter.extra) {
    const base = out.get(key);
    if (!base) throw new LoraStudioError(`the adapter replaces ${key}, which the model does not have`, undefined, key);
    if (!sameShape(base.shape, t.shape)) {
      throw new LoraStudioError(`the adapter's ${preview(t.shape)} does not match the model's ${JSON.stringify(base.shape)}`, undefined, key);
    }
    const data = Float32Array.from(t.data);
    checkFinite(data, base.dtype, key);
    out.set(key, { shape: [...base.shape], data, dtype: base.dtype });
  }
  return out;
}

/**
 * W = W' − scaling · transpose(B·A): takes the LoRA deltas back out. `extra` tensors cannot be restored
 * (the replaced base values are not in the adapter), so they are left as they are in `weights`.
 */
export function unmergeAdapter(weights: Map<string, HostTensor>, adapter: AdapterWeights, isConv1D: (module: string) => boolean): Map<string, HostTensor> {
  return applyDeltas(weights, adapter, -1, isConv1D);
}

function applyDeltas(weights: Map<string, HostTensor>, adapter: AdapterWeights, sign: 1 | -1, isConv1D: (module: string) => boolean): Map<string, HostTensor> {
  const out = new Map(weights);
  const ranks = rankTable(adapter.config, [...adapter.lora.keys()]).byName;
  for (const [module, { A, B }] of adapter.lora) {
    const key = `${module}.weight`;
    const W = weights.get(key);
    if (!W) throw new LoraStudioError(`module ${module} has LoRA weights but the model has no ${key}`, undefined, module);
    const { scaling } = ranks.get(module)!;
    const fanInFanOut = isConv1D(module);
    const [r, inF] = A.shape;
    const outF = B.shape[0];
    const want = fanInFanOut ? [inF, outF] : [outF, inF];
    if (B.shape[1] !== r || !sameShape(W.shape, want)) {
      throw new LoraStudioError(
        `lora_A ${JSON.stringify(A.shape)} and lora_B ${JSON.stringify(B.shape)} need a weight of shape ${JSON.stringify(want)}, the model has ${JSON.stringify(W.shape)}`,
        undefined,
        module,
      );
    }
    const data = mergedValues(W.data, A, B, sign * scaling, fanInFanOut);
    checkFinite(data, W.dtype, module);
    out.set(key, { shape: [...W.shape], data, dtype: W.dtype });
  }
  return out;
}

/**
 * w + s · transpose(B·A, fanInFanOut) as a new array, for A [r, in], B [out, r] and w [in, out] (fanInFanOut) or
 * [out, in]: each dot product float64, summed from +0 over k in order, then w + s·dot rounded once to F32. The
 * one definition of the merge's arithmetic (the WebAssembly kernel, ops/rank_update_wat.ts, is held to it bit
 * for bit). Not checked for finiteness: checkFinite.
 */
export function mergedValues(w: Float32Array, A: HostTensor, B: HostTensor, s: number, fanInFanOut: boolean): Float32Array {
  const [r, inF] = A.shape;
  const outF = B.shape[0];
  const a = A.data;
  const b = B.data;
  const data = new Float32Array(w.length);
  const bRow = new Float64Array(r);
  for (let o = 0; o < outF; o++) {
    for (let k = 0; k < r; k++) bRow[k] = b[o * r + k];
    for (let i = 0; i < inF; i++) {
      let dot = 0;
      for (let k = 0; k < r; k++) dot += bRow[k] * a[k * inF + i];
      const idx = fanInFanOut ? i * outF + o : o * inF + i;
      data[idx] = w[idx] + s * dot;
    }
  }
  return data;
}

/** safe_merge: every value must stay finite once stored in the tensor's dtype (F16 overflows above 65504). */
export function checkFinite(data: Float32Array, dtype: HostTensor['dtype'], name: string): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    const stored = dtype === 'F32' ? v : dtype === 'F16' ? f16ToF32(f32ToF16(v)) : bf16Round(v);
    if (!Number.isFinite(stored)) throw new LoraStudioError(nonFiniteMessage(v, i, dtype), undefined, name);
  }
}

/** safe_merge's refusal: value `v` at flat index `i` is not finite once stored as `dtype`. */
export function nonFiniteMessage(v: number, i: number, dtype: HostTensor['dtype']): string {
  return `merging gives a non-finite value (${v} at flat index ${i}${dtype === 'F32' ? '' : `, stored as ${dtype}`}); the adapter is broken or does not belong to this model. Nothing was written`;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bf16Round(v: number): number {
  u32[0] = f32ToBf16(v) << 16;
  return f32[0];
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
