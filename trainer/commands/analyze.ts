/**
 * `analyze`: what an adapter learned, by the LoRA paper's section 7 — the spectrum of each module's ΔW, its stable
 * rank and energy; with --base, how much ΔW amplifies directions W already has (Table 7); with --compare, the
 * subspace similarity φ of two adapters' A matrices (Figures 3 and 4). Everything in float64 on the host.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoraStudioError } from '../errors';
import { mat, type Mat } from '../analysis/linalg';
import { amplification, deltaSpectrum, energy, subspaceSimilarity } from '../analysis/lowrank';
import type { HostTensor } from '../io/safetensors';
import { ADAPTER_WEIGHTS_FILE, checkAdapterFitsModel, loadAdapter } from '../lora/adapter_io';
import { familyForDir } from '../models/registry';
import type { ModelFamily } from '../models/family';
import { taskFromPeft } from '../task';
import { rankTable } from '../lora/patterns';
import type { AnalyzeResult, AnalyzedModule } from '../protocol';
import { Rng } from '../util/rng';
import { CLI, type Output } from './output';

export interface AnalyzeOptions {
  adapterDir: string;
  base?: string;
  compare?: string;
  /** seed of the random subspaces of the amplification baseline */
  seed?: number;
}

const toMat = (t: HostTensor): Mat => mat(t.shape[0], t.shape[1], t.data);

export function analyzeAdapter(opts: AnalyzeOptions): AnalyzeResult {
  const adapter = loadAdapter(opts.adapterDir);
  const adapterFile = path.join(opts.adapterDir, ADAPTER_WEIGHTS_FILE);
  // named_modules() order for GPT-2's numbered blocks: h.2 before h.10
  const names = [...adapter.lora.keys()].sort(new Intl.Collator('en', { numeric: true }).compare);
  const ranks = rankTable(adapter.config, names, { file: path.join(opts.adapterDir, 'adapter_config.json') });
  const warnings: string[] = [];

  let weights: Map<string, HostTensor> | undefined;
  let family: ModelFamily | undefined;
  if (opts.base !== undefined) {
    const task = taskFromPeft(adapter.config.task_type) ?? 'causal-lm';
    const score = adapter.extra.get('score.weight');
    family = familyForDir(opts.base);
    const model = family.load(opts.base, { task, num_labels: task === 'seq-cls' && score ? score.shape[0] : undefined });
    checkAdapterFitsModel(adapter, adapterFile, family.adapterFacts(model.config), model.weights);
    weights = model.weights;
  }

  const rng = new Rng(opts.seed ?? 42);
  const modules: AnalyzedModule[] = names.map((name) => {
    const { A, B } = adapter.lora.get(name)!;
    const spec = deltaSpectrum(toMat(A), toMat(B), ranks.byName.get(name)!.scaling);
    const out: AnalyzedModule = { name, r: A.shape[0], singular_values: spec.singular_values, delta_fro: spec.delta_fro, stable_rank: spec.stable_rank };
    if (weights && family) {
      const w = weights.get(`${name}.weight`)!; // checkAdapterFitsModel checked it is there, with a matching shape
      out.amplification = amplification(spec, toMat(w), family.isConv1D(name), () => rng.next());
    }
    return out;
  });

  const similarity: AnalyzeResult['similarity'] = [];
  if (opts.compare !== undefined) {
    const other = loadAdapter(opts.compare);
    const otherFile = path.join(opts.compare, ADAPTER_WEIGHTS_FILE);
    const shared = names.filter((n) => other.lora.has(n));
    if (shared.length === 0) {
      throw new LoraStudioError(
        `shares no adapted module with ${adapterFile} (this one adapts ${preview(names)}, that one ${preview([...other.lora.keys()])}); φ compares the same module of two adapters`,
        otherFile,
        'target_modules',
      );
    }
    const only = names.length - shared.length + (other.lora.size - shared.length);
    if (only > 0) warnings.push(`${only} module(s) adapted by only one of the two adapters are left out of the similarity`);
    for (const name of shared) {
      const a1 = adapter.lora.get(name)!.A;
      const a2 = other.lora.get(name)!.A;
      if (a1.shape[1] !== a2.shape[1]) {
        throw new LoraStudioError(`lora_A of ${name} is ${a2.shape[1]} wide here but ${a1.shape[1]} wide in ${adapterFile}: the adapters were trained on different models`, otherFile, `base_model.model.${name}.lora_A.weight`);
      }
      similarity.push({ name, phi: subspaceSimilarity(toMat(a1), toMat(a2)) });
    }
  }
  return {
    adapter: path.resolve(opts.adapterDir),
    ...(opts.base !== undefined ? { base: path.resolve(opts.base) } : {}),
    ...(opts.compare !== undefined ? { compare: path.resolve(opts.compare) } : {}),
    modules,
    similarity,
    warnings,
  };
}

function preview(names: string[]): string {
  return names.length <= 3 ? names.join(', ') : `${names.slice(0, 3).join(', ')} and ${names.length - 3} more`;
}

const fmt = (x: number) => (x === 0 ? '0' : Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3 ? x.toExponential(2) : x.toPrecision(4));
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** The readable table: per module the top singular values, the energy in the top 1/2/4 directions, the stable rank. */
export function formatAnalysis(res: AnalyzeResult): string {
  const header = ['module', 'r', 'top singular values', 'energy@1', '@2', '@4', 'stable rank', '‖ΔW‖_F'];
  if (res.base) header.push('amplification');
  const rows = res.modules.map((m) => {
    const [e1, e2, e4] = energy(m.singular_values, [1, 2, 4]);
    const row = [m.name, String(m.r), m.singular_values.slice(0, 4).map(fmt).join(' '), pct(e1), pct(e2), pct(e4), m.stable_rank.toFixed(2), fmt(m.delta_fro)];
    if (res.base) row.push(m.amplification ? `${m.amplification.factor.toFixed(2)}× (random ${fmt(m.amplification.random_fro)})` : '');
    return row;
  });
  const lines = [`${res.adapter}${res.base ? `  on ${res.base}` : ''}`, ...table([header, ...rows])];
  if (res.similarity.length > 0) {
    lines.push('', `subspace similarity φ with ${res.compare} (1 = the same directions, 0 = orthogonal)`);
    const sim = res.similarity.map((s) => {
      const k = Math.min(s.phi.length, s.phi[0]?.length ?? 0);
      return [s.name, fmt(s.phi[0][0]), fmt(s.phi[k - 1][k - 1]), `${s.phi.length}×${s.phi[0]?.length ?? 0}`];
    });
    lines.push(...table([['module', 'φ(1, 1)', 'φ(k, k), k = min r', 'grid'], ...sim]));
  }
  return lines.join('\n');
}

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd());
}

/** `lora-studio analyze ADAPTER_DIR [--base MODEL_DIR] [--compare ADAPTER_DIR2] [--json]` */
export async function runAnalyze(adapterDir: string, o: { base?: string; compare?: string }, out: Output): Promise<void> {
  for (const [value, flag] of [[adapterDir, '<adapter-dir>'], [o.base, '--base'], [o.compare, '--compare']] as const) {
    if (value !== undefined && !fs.existsSync(value)) throw new LoraStudioError(`no such folder: ${value}`, CLI, flag);
  }
  const res = analyzeAdapter({ adapterDir, base: o.base, compare: o.compare });
  res.warnings.forEach((w) => out.warn(w));
  out.info('backend: none (the analyses are host-side float64 arithmetic)');
  out.info(formatAnalysis(res));
  out.result({ backend: null, gpu: false, ...res });
}
