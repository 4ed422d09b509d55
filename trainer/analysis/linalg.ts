/**
 * Small dense linear algebra in float64 for the adapter analyses: thin Householder QR of a tall matrix and the SVD
 * of a small square matrix by one-sided Jacobi rotations. Matrices are row-major Float64Arrays with explicit shapes;
 * the tall side may be 50,257 long (GPT-2's vocabulary), the small side is a LoRA rank (≤ a few hundred).
 */

export interface Mat {
  rows: number;
  cols: number;
  /** row-major */
  data: Float64Array;
}

export function mat(rows: number, cols: number, data?: ArrayLike<number>): Mat {
  const m = { rows, cols, data: new Float64Array(rows * cols) };
  if (data) m.data.set(data);
  return m;
}

export function transpose(a: Mat): Mat {
  const t = mat(a.cols, a.rows);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < a.cols; j++) t.data[j * a.rows + i] = a.data[i * a.cols + j];
  return t;
}

/** a · b */
export function matmul(a: Mat, b: Mat): Mat {
  if (a.cols !== b.rows) throw new Error(`matmul: ${a.rows}×${a.cols} · ${b.rows}×${b.cols}`);
  const c = mat(a.rows, b.cols);
  for (let i = 0; i < a.rows; i++) {
    const ci = i * b.cols;
    for (let k = 0; k < a.cols; k++) {
      const aik = a.data[i * a.cols + k];
      if (aik === 0) continue;
      const bk = k * b.cols;
      for (let j = 0; j < b.cols; j++) c.data[ci + j] += aik * b.data[bk + j];
    }
  }
  return c;
}

/** aᵀ · b, without forming aᵀ (a is tall: n×p, b is n×q). */
export function matmulTN(a: Mat, b: Mat): Mat {
  if (a.rows !== b.rows) throw new Error(`matmulTN: (${a.rows}×${a.cols})ᵀ · ${b.rows}×${b.cols}`);
  const c = mat(a.cols, b.cols);
  for (let k = 0; k < a.rows; k++) {
    const ak = k * a.cols;
    const bk = k * b.cols;
    for (let i = 0; i < a.cols; i++) {
      const aki = a.data[ak + i];
      if (aki === 0) continue;
      const ci = i * b.cols;
      for (let j = 0; j < b.cols; j++) c.data[ci + j] += aki * b.data[bk + j];
    }
  }
  return c;
}

export function frobenius(a: Mat): number {
  let s = 0;
  for (const x of a.data) s += x * x;
  return Math.sqrt(s);
}

/**
 * Thin QR of a tall m×n matrix (m ≥ n) by Householder reflections: Q is m×n with orthonormal columns, R is n×n upper
 * triangular, a = Q·R. A rank-deficient a gives zero rows in R and still orthonormal Q.
 */
export function qr(a: Mat): { q: Mat; r: Mat } {
  const m = a.rows;
  const n = a.cols;
  if (m < n) throw new Error(`qr: needs rows ≥ cols, got ${m}×${n}`);
  // work column-major: each column contiguous
  const w = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) w[j * m + i] = a.data[i * n + j];
  const vs: Float64Array[] = [];
  for (let k = 0; k < n; k++) {
    const col = k * m;
    let norm = 0;
    for (let i = k; i < m; i++) norm += w[col + i] * w[col + i];
    norm = Math.sqrt(norm);
    const v = new Float64Array(m - k);
    if (norm === 0) {
      vs.push(v); // nothing to reflect: a zero v is the identity
      continue;
    }
    const alpha = w[col + k] > 0 ? -norm : norm;
    for (let i = k; i < m; i++) v[i - k] = w[col + i];
    v[0] -= alpha;
    let vn = 0;
    for (const x of v) vn += x * x;
    vn = Math.sqrt(vn);
    if (vn > 0) for (let i = 0; i < v.length; i++) v[i] /= vn;
    vs.push(v);
    // apply H = I − 2vvᵀ to columns k..n-1
    for (let j = k; j < n; j++) {
      const cj = j * m;
      let dot = 0;
      for (let i = k; i < m; i++) dot += v[i - k] * w[cj + i];
      for (let i = k; i < m; i++) w[cj + i] -= 2 * dot * v[i - k];
    }
  }
  const r = mat(n, n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) r.data[i * n + j] = w[j * m + i];
  // Q = H_0 … H_{n-1} applied to the first n columns of I
  const qc = new Float64Array(m * n); // column-major
  for (let j = 0; j < n; j++) qc[j * m + j] = 1;
  for (let k = n - 1; k >= 0; k--) {
    const v = vs[k];
    for (let j = 0; j < n; j++) {
      const cj = j * m;
      let dot = 0;
      for (let i = k; i < m; i++) dot += v[i - k] * qc[cj + i];
      if (dot === 0) continue;
      for (let i = k; i < m; i++) qc[cj + i] -= 2 * dot * v[i - k];
    }
  }
  const q = mat(m, n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) q.data[i * n + j] = qc[j * m + i];
  return { q, r };
}

/**
 * SVD of a small n×n matrix, a = U·diag(s)·Vᵀ, singular values descending, by one-sided Jacobi (Hestenes): rotate
 * pairs of columns of a·V until they are orthogonal; their norms are the singular values. Accurate to machine
 * precision for the sizes here. Columns of U for zero singular values are left zero.
 */
export function svdSmall(a: Mat): { u: Mat; s: number[]; v: Mat } {
  const n = a.cols;
  const m = a.rows;
  const w = Float64Array.from(a.data); // m×n, row-major; becomes U·diag(s)
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  const col = (x: Float64Array, rows: number, j: number, k: number) => {
    let s = 0;
    for (let i = 0; i < rows; i++) s += x[i * n + j] * x[i * n + k];
    return s;
  };
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const alpha = col(w, m, p, p);
        const beta = col(w, m, q, q);
        const gamma = col(w, m, p, q);
        if (gamma === 0 || Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) continue;
        off = Math.max(off, Math.abs(gamma) / Math.sqrt(alpha * beta));
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < m; i++) {
          const wp = w[i * n + p];
          const wq = w[i * n + q];
          w[i * n + p] = c * wp - s * wq;
          w[i * n + q] = s * wp + c * wq;
        }
        for (let i = 0; i < n; i++) {
          const vp = v[i * n + p];
          const vq = v[i * n + q];
          v[i * n + p] = c * vp - s * vq;
          v[i * n + q] = s * vp + c * vq;
        }
      }
    }
    if (off < 1e-15) break;
  }
  const norms = Array.from({ length: n }, (_, j) => Math.sqrt(col(w, m, j, j)));
  const order = norms.map((_, j) => j).sort((x, y) => norms[y] - norms[x]);
  const u = mat(m, n);
  const vv = mat(n, n);
  const s: number[] = [];
  order.forEach((j, k) => {
    s.push(norms[j]);
    for (let i = 0; i < m; i++) u.data[i * n + k] = norms[j] > 0 ? w[i * n + j] / norms[j] : 0;
    for (let i = 0; i < n; i++) vv.data[i * n + k] = v[i * n + j];
  });
  return { u, s, v: vv };
}

/** The first `k` columns of a. */
export function leadingColumns(a: Mat, k: number): Mat {
  const out = mat(a.rows, k);
  for (let i = 0; i < a.rows; i++) for (let j = 0; j < k; j++) out.data[i * k + j] = a.data[i * a.cols + j];
  return out;
}
