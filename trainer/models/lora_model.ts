/**
 * What every family's trainable model shares: the parameters (frozen tensors and trainable tf.Variables, by PEFT
 * key without `base_model.model.`), built from a Plan (plan.ts); the adapter in PEFT's layout both ways; the spec
 * of a replica for data-parallel workers; dropout streams; dispose. A family's model extends it with its forward
 * pass. Keys in `transposed` are held as [in, out] inside (Linear weights, LoRA A as [in, r], B as [r, out]);
 * every value leaving or entering through this class is in PEFT's / HF's layout.
 */
import * as tf from '@tensorflow/tfjs-core';
import { LoraStudioError } from '../errors';
import type { HostTensor } from '../io/safetensors';
import type { Task } from '../task';
import type { AdapterConfigJson, AdapterWeights } from '../lora/types';
import type { LoraTarget } from '../protocol';
import { transposeHost } from '../lora/layer';
import { Rng } from '../util/rng';
import { DropoutStream } from '../ops/layers';
import { type Batch, causalTargets } from '../data/collate';
import { releaseAsBackpropPasses } from '../util/tape';
import { installWasmKernels, readInto } from '../ops/wasm_kernels';
import { installHeapKernels } from '../ops/heap_kernels';
import { gemmAvailable } from '../ops/gemm';
import { type HalfFormat, type HalfMatrix, halfBitsInto, halfMatrix, type Matrix } from '../ops/half';
import { halfHost } from '../io/safetensors';
import type { ForwardOptions, Kernels, ModelSpec } from './family';
import { fmt, hint, type Plan, sameShape } from './plan';

let modelCount = 0;

const isLoraKey = (key: string) => /\.lora_[AB]\.weight$/.test(key);

export abstract class LoraModelBase {
  /** trainable parameters by PEFT key without `base_model.model.` (internal [in, out]-style layout) */
  readonly trainable = new Map<string, tf.Variable>();
  readonly task: Task;
  readonly num_labels: number;
  readonly targets: LoraTarget[];
  readonly pad_token_id: number;
  readonly kernels: Kernels;
  /** every parameter tensor (frozen or trainable) by key, internal layout; a family may add derived ones */
  protected readonly params = new Map<string, tf.Tensor>();
  /** the frozen weights held in 16 bits (HF layout), by key; `params` holds their int32 storage */
  private readonly halves = new Map<string, HalfMatrix>();
  protected readonly scaling: Map<string, number>;
  private readonly transposed: Set<string>;
  private readonly baseKeys: Set<string>;
  private readonly dropoutSeeds: Rng;
  private disposed = false;
  /** the spec this model was built from, without its weights and adapter (for replicas) */
  private readonly specShape: Omit<ModelSpec, 'weights' | 'adapter'>;

  /** Builds the parameters of `plan` (values transposed one at a time where the plan says, then put on the device). */
  protected constructor(spec: ModelSpec, plan: Plan) {
    this.task = spec.task;
    this.num_labels = spec.num_labels;
    this.targets = spec.targets;
    this.pad_token_id = spec.pad_token_id;
    // webgpu: the plain tf-op path (the fast path's head reads values back inside the step, which webgpu can only do async)
    this.kernels = spec.kernels ?? (tf.getBackend() === 'webgpu' ? 'reference' : 'fast');
    if (tf.getBackend() === 'wasm') {
      installWasmKernels();
      installHeapKernels();
    }
    this.dropoutSeeds = new Rng(spec.seed ^ 0x5bd1e995);
    const { weights: _w, adapter: _a, ...shape } = spec;
    this.specShape = shape;
    this.scaling = plan.scaling;
    this.transposed = plan.transposed;
    this.baseKeys = plan.baseKeys;
    const id = ++modelCount;
    // 16 bits where the GEMM reads them: the wasm fast path (ops/half.ts)
    const keepHalf = this.kernels === 'fast' && gemmAvailable();
    try {
      for (const [key, host] of plan.values) {
        if (keepHalf && plan.half.has(key) && host.bits) {
          const m = halfMatrix(host.bits, host.shape as [number, number], host.dtype as HalfFormat);
          this.halves.set(key, m);
          this.params.set(key, m.packed);
          continue;
        }
        const t = this.transposed.has(key) ? transposeHost(host) : host;
        const value = tf.tensor(t.data, t.shape, 'float32');
        if (plan.trainable.has(key)) {
          this.trainable.set(key, tf.variable(value, true, `lora_studio_${id}/${key}`));
          value.dispose();
        }
        this.params.set(key, this.trainable.get(key) ?? value);
      }
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** The trained parameters in PEFT's layout (host F32), ready for adapter_model.safetensors. */
  async exportAdapter(config: AdapterConfigJson): Promise<AdapterWeights> {
    const lora = new Map<string, { A: HostTensor; B: HostTensor }>();
    const extra = new Map<string, HostTensor>();
    for (const t of this.targets) {
      lora.set(t.name, { A: await this.hostValueAsync(`${t.name}.lora_A.weight`), B: await this.hostValueAsync(`${t.name}.lora_B.weight`) });
    }
    for (const key of this.trainable.keys()) {
      if (!isLoraKey(key)) extra.set(key, await this.hostValueAsync(key));
    }
    return { config, lora, extra };
  }

  /** Sets the trainable parameters from an adapter in PEFT's layout (a checkpoint, or the best model at the end). */
  loadAdapter(adapter: AdapterWeights): void {
    const source = 'adapter';
    for (const t of this.targets) {
      const f = adapter.lora.get(t.name);
      if (!f) throw new LoraStudioError(`has no LoRA factors for target module ${t.name}`, source, t.name);
      this.assign(`${t.name}.lora_A.weight`, f.A, source);
      this.assign(`${t.name}.lora_B.weight`, f.B, source);
    }
    for (const name of adapter.lora.keys()) {
      if (!this.targets.some((t) => t.name === name)) throw new LoraStudioError(`holds LoRA factors for ${name}, which is not a target of this run`, source, name);
    }
    for (const [key, t] of adapter.extra) {
      if (!this.trainable.has(key)) {
        throw new LoraStudioError(`holds ${key}, which is not trainable in this run${hint(key, this.trainable.keys())}`, source, key);
      }
      this.assign(key, t, source);
    }
  }

  /**
   * The spec of an identical replica (for a data-parallel worker): the base weights read back from this model
   * (canonical HF keys and layout), and the current trainable values as an adapter, all views into `buffer`.
   */
  replicaSpec(): { spec: ModelSpec; buffer: ArrayBuffer } {
    const frozen = [...this.params.keys()].filter((key) => this.baseKeys.has(key) && !this.trainable.has(key));
    const extraKeys = [...this.trainable.keys()].filter((key) => !isLoraKey(key));
    const loraKeys = this.targets.flatMap((t) => [`${t.name}.lora_A.weight`, `${t.name}.lora_B.weight`]);
    // one buffer for every value: a worker gets it by transfer (no copy), and no per-tensor copies are left over;
    // a 16-bit weight goes as its stored values (its int32 storage holds two per element, 4-byte aligned)
    const buffer = new ArrayBuffer([...frozen, ...extraKeys, ...loraKeys].reduce((n, key) => n + this.p(key).size * 4, 0));
    let offset = 0;
    const take = (key: string): HostTensor => {
      const half = this.halves.get(key);
      if (half) {
        const bits = new Uint16Array(buffer, offset, half.shape[0] * half.shape[1]);
        offset += this.p(key).size * 4;
        halfBitsInto(half, bits);
        return halfHost([...half.shape], bits, half.format);
      }
      const data = new Float32Array(buffer, offset, this.p(key).size);
      offset += data.byteLength;
      return this.hostValue(key, data);
    };
    const weights = new Map<string, HostTensor>(frozen.map((key) => [key, take(key)]));
    const lora = new Map<string, { A: HostTensor; B: HostTensor }>(this.targets.map((t) => [t.name, { A: take(`${t.name}.lora_A.weight`), B: take(`${t.name}.lora_B.weight`) }]));
    const extra = new Map<string, HostTensor>(extraKeys.map((key) => [key, take(key)]));
    // a trained base tensor (bias, modules_to_save) still needs a base value to plan from
    for (const key of extra.keys()) if (this.baseKeys.has(key) && !weights.has(key)) weights.set(key, extra.get(key)!);
    return { spec: { ...this.specShape, weights, adapter: { config: {} as AdapterConfigJson, lora, extra } }, buffer };
  }

  /** Number of scalars in the trainable parameters. */
  trainableParamCount(): number {
    let n = 0;
    for (const v of this.trainable.values()) n += v.size;
    return n;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.params.values()) t.dispose();
    for (const v of this.trainable.values()) if (!v.isDisposed) v.dispose();
    this.params.clear();
    this.halves.clear();
    this.trainable.clear();
  }

  // ---- for the families ----

  protected p(key: string): tf.Tensor {
    const t = this.params.get(key);
    if (!t) throw new Error(`internal: no parameter ${key}`);
    return t;
  }

  /** A frozen matrix: its 16-bit form (HF layout) when held so, else the tensor (internal layout). */
  protected m(key: string): Matrix {
    return this.halves.get(key) ?? (this.p(key) as tf.Tensor2D);
  }

  /** How many base weights are held in 16 bits (tests and the start line). */
  get halfWeights(): number {
    return this.halves.size;
  }

  protected has(key: string): boolean {
    return this.params.has(key);
  }

  /** Per-row NLL (rows that predict nothing are 0) and the number of predictions: each family's forward pass and head. */
  protected abstract rowNll(batch: Batch, drop: DropoutStream, withGrad: boolean): { rows: tf.Tensor1D; count: number };

  /** Mean cross entropy: over predicted tokens (causal) or over examples (seq-cls). */
  loss(batch: Batch, opts: ForwardOptions = { training: false }): tf.Scalar {
    return tf.tidy(() => {
      const { rows, count } = this.rowNll(batch, this.dropout(opts, batch), true);
      const loss = tf.div(tf.sum(rows), opts.denominator ?? Math.max(count, 1)) as tf.Scalar;
      // under tf.variableGrads: each node's saved tensors and output gradients go as soon as backprop passes it
      releaseAsBackpropPasses();
      return loss;
    });
  }

  /** Eval: total NLL (summed in float64 on the host) and how many tokens (causal) or examples (seq-cls) it covers. */
  async nllSum(batch: Batch): Promise<{ nll: number; count: number }> {
    const rows = tf.tidy(() => this.rowNll(batch, this.dropout({ training: false }, batch), false).rows);
    const data = await rows.data();
    rows.dispose();
    let nll = 0;
    for (const v of data) nll += v;
    return { nll, count: this.task === 'seq-cls' ? batch.batch_size : causalTargets(batch).count };
  }

  protected dropout(opts: ForwardOptions, batch: { batch_size: number }): DropoutStream {
    return new DropoutStream(opts.training, opts.training ? opts.seed ?? this.dropoutSeeds.int(2 ** 31) : 0, batch.batch_size, opts.rowOffset ?? 0);
  }

  /** hostValue, read with the async data() on backends other than wasm (webgpu has no synchronous read). */
  private async hostValueAsync(key: string): Promise<HostTensor> {
    const t = this.p(key);
    if (tf.getBackend() === 'wasm') return this.hostValue(key);
    const host: HostTensor = { shape: [...t.shape], data: Float32Array.from(await t.data()), dtype: 'F32' };
    return this.transposed.has(key) ? transposeHost(host) : host;
  }

  /** A parameter's value on the host, in PEFT's layout; read into `data` when given (a view of a shared buffer). */
  private hostValue(key: string, data = new Float32Array(this.p(key).size)): HostTensor {
    const t = this.p(key);
    readInto(t, data);
    const host: HostTensor = { shape: [...t.shape], data, dtype: 'F32' };
    return this.transposed.has(key) ? transposeHost(host) : host;
  }

  private assign(key: string, value: HostTensor, source: string): void {
    const v = this.trainable.get(key)!;
    const flip = this.transposed.has(key);
    const t = flip ? transposeHost(value) : value;
    if (!sameShape(t.shape, v.shape)) {
      const expected = flip ? [...v.shape].reverse() : v.shape;
      throw new LoraStudioError(`has shape ${fmt(value.shape)}, expected ${fmt(expected)}`, source, key);
    }
    tf.tidy(() => v.assign(tf.tensor(t.data, t.shape, 'float32')));
  }
}
