/**
 * The LoRA paper's analyses of a low-rank update (Hu et al. 2021, section 7), in float64:
 * - the spectrum of ΔW = scaling · B·A ([out, in], PyTorch's orientation), from the small core of the QR
 *   factors of B and Aᵀ, never from a dense SVD of ΔW (out may be 50,257);
 * - the amplification of W's directions by ΔW (section 7.3, Table 7): ‖ΔW‖_F / ‖Uᵀ W V‖_F, with U, V the singular
 *   vectors of ΔW, against the projection onto seeded random orthonormal U, V of the same rank;
 * - the subspace similarity of two adapters' A matrices (section 7.2, Figures 3 and 4):
 *   φ(A1, A2, i, j) = ‖V1[:, :i]ᵀ V2[:, :j]‖²_F / min(i, j), V the right singular vectors of A.
 */
import { frobenius, leadingColumns, mat, matmul, matmulTN, qr, svdSmall, transpose, type Mat } from './linalg';

export interface DeltaSpectrum {
  /** all r singular values of ΔW, descending (zeros where the rank is lower) */
  singular_values: number[];
  /** ‖ΔW‖_F */
  delta_fro: number;
  /** ‖ΔW‖²_F / σ₁²; 0 for a zero update */
  stable_rank: number;
  /** left singular vectors of ΔW, out × k (k = min(r, out, in)) */
  u: Mat;
  /** right singular vectors of ΔW, in × k */
  v: Mat;
}

/** A basis and coefficients of the columns of a tall-or-short matrix: a = q·r, q with orthonormal columns. */
function factor(a: Mat): { q: Mat; r: Mat } {
  if (a.rows >= a.cols) return qr(a);
  // fewer rows than the rank (e.g. a 2-label head): the identity is a basis already
  const q = mat(a.rows, a.rows);
  for (let i = 0; i < a.rows; i++) q.data[i * a.rows + i] = 1;
  return { q, r: a };
}

/** The SVD of ΔW = scaling · b·a, where a is lora_A [r, in] and b is lora_B [out, r]. */
export function deltaSpectrum(a: Mat, b: Mat, scaling: number): DeltaSpectrum {
  const r = a.rows;
  if (b.cols !== r) throw new Error(`lora_B has ${b.cols} columns but lora_A has ${a.rows} rows`);
  const fb = factor(b); // b = Qb·Rb: Qb out×kb, Rb kb×r
  const fa = factor(transpose(a)); // aᵀ = Qa·Ra: Qa in×ka, Ra ka×r
  // ΔW = scaling · Qb · (Rb · Raᵀ) · Qaᵀ; the core is kb × ka
  const core = matmul(fb.r, transpose(fa.r));
  for (let i = 0; i < core.data.length; i++) core.data[i] *= scaling;
  // svdSmall wants rows ≥ cols for a full set of left vectors: work on the transpose when the core is wide
  const wide = core.rows < core.cols;
  const svd = svdSmall(wide ? transpose(core) : core);
  const k = Math.min(core.rows, core.cols);
  const left = wide ? svd.v : svd.u; // core's left vectors: kb × k
  const right = wide ? svd.u : svd.v; // core's right vectors: ka × k
  const u = matmul(fb.q, leadingColumns(left, k));
  const v = matmul(fa.q, leadingColumns(right, k));
  const s = svd.s.slice(0, k);
  const singular_values = Array.from({ length: r }, (_, i) => (i < s.length ? s[i] : 0));
  const fro2 = s.reduce((acc, x) => acc + x * x, 0);
  return { singular_values, delta_fro: Math.sqrt(fro2), stable_rank: s[0] > 0 ? fro2 / (s[0] * s[0]) : 0, u, v };
}

/** ‖Uᵀ W V‖_F for W [out, in]; with `wIsInOut`, W is stored [in, out] (GPT-2's Conv1D) and is read transposed. */
export function projectedFro(w: Mat, u: Mat, v: Mat, wIsInOut: boolean): number {
  // Uᵀ·W·V with W = Wsᵀ is (Vᵀ·Ws·U)ᵀ: same norm
  return wIsInOut ? frobenius(matmulTN(v, matmul(w, u))) : frobenius(matmulTN(u, matmul(w, v)));
}

/** A seeded random n×k matrix with orthonormal columns (Gaussian, then QR). */
export function randomOrthonormal(n: number, k: number, next: () => number): Mat {
  const g = mat(n, k);
  for (let i = 0; i < g.data.length; i += 2) {
    // Box–Muller
    const u1 = Math.max(next(), 1e-300);
    const u2 = next();
    const rad = Math.sqrt(-2 * Math.log(u1));
    g.data[i] = rad * Math.cos(2 * Math.PI * u2);
    if (i + 1 < g.data.length) g.data[i + 1] = rad * Math.sin(2 * Math.PI * u2);
  }
  return qr(g).q;
}

export interface Amplification {
  /** ‖ΔW‖_F / ‖Uᵀ W V‖_F */
  factor: number;
  projected_fro: number;
  /** ‖Uᵣᵀ W Vᵣ‖_F for seeded random orthonormal Uᵣ, Vᵣ of the same rank (the paper's baseline row) */
  random_fro: number;
}

export function amplification(spec: DeltaSpectrum, w: Mat, wIsInOut: boolean, next: () => number): Amplification {
  const projected = projectedFro(w, spec.u, spec.v, wIsInOut);
  const k = spec.u.cols;
  const ru = randomOrthonormal(spec.u.rows, k, next);
  const rv = randomOrthonormal(spec.v.rows, k, next);
  return { factor: projected > 0 ? spec.delta_fro / projected : 0, projected_fro: projected, random_fro: projectedFro(w, ru, rv, wIsInOut) };
}

/** The right singular vectors of a ([r, in]), in × min(r, in), by descending singular value. */
export function rightSingularVectors(a: Mat): Mat {
  const f = factor(transpose(a)); // aᵀ = Q·R, so a = Rᵀ·Qᵀ and a's right vectors are Q·(R's left vectors)
  const wide = f.r.rows < f.r.cols;
  const svd = svdSmall(wide ? transpose(f.r) : f.r);
  const k = Math.min(f.r.rows, f.r.cols);
  return matmul(f.q, leadingColumns(wide ? svd.v : svd.u, k));
}

/** φ[i-1][j-1] = ‖V1[:, :i]ᵀ V2[:, :j]‖²_F / min(i, j) for i ≤ r1, j ≤ r2. */
export function subspaceSimilarity(a1: Mat, a2: Mat): number[][] {
  if (a1.cols !== a2.cols) throw new Error(`lora_A widths differ: ${a1.cols} and ${a2.cols}`);
  const v1 = rightSingularVectors(a1);
  const v2 = rightSingularVectors(a2);
  const g = matmulTN(v1, v2); // k1 × k2
  const r1 = a1.rows;
  const r2 = a2.rows;
  // prefix sums of the squared entries: P[i][j] = Σ_{a<i, b<j} g_ab²
  const p = Array.from({ length: r1 + 1 }, () => new Float64Array(r2 + 1));
  for (let i = 1; i <= r1; i++) {
    for (let j = 1; j <= r2; j++) {
      const x = i <= g.rows && j <= g.cols ? g.data[(i - 1) * g.cols + (j - 1)] : 0;
      p[i][j] = x * x + p[i - 1][j] + p[i][j - 1] - p[i - 1][j - 1];
    }
  }
  return Array.from({ length: r1 }, (_, i) => Array.from({ length: r2 }, (_, j) => p[i + 1][j + 1] / Math.min(i + 1, j + 1)));
}

/** Share of ‖ΔW‖²_F in the top k directions, for k in `ks`. */
export function energy(singularValues: readonly number[], ks: readonly number[]): number[] {
  const sq = singularValues.map((x) => x * x);
  const total = sq.reduce((a, b) => a + b, 0);
  return ks.map((k) => (total > 0 ? sq.slice(0, k).reduce((a, b) => a + b, 0) / total : 0));
}
