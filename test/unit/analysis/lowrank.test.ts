/**
 * The LoRA paper's analyses against float64 facts that do not go through the code under test: the dense ΔW built
 * entry by entry (its Frobenius norm, and U·diag(σ)·Vᵀ rebuilding it with orthonormal U, V and descending σ ≥ 0,
 * which pins the SVD down), adapters with a known spectrum (exact rank 1, prescribed singular values, fewer rows than
 * the rank), φ on unit-vector subspaces whose overlaps are counted by hand, and amplification with W = ΔW.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mat, type Mat } from '../../../trainer/analysis/linalg';
import { amplification, deltaSpectrum, energy, randomOrthonormal, subspaceSimilarity } from '../../../trainer/analysis/lowrank';

function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const randMat = (rows: number, cols: number, next: () => number) => mat(rows, cols, Array.from({ length: rows * cols }, () => next() * 2 - 1));

/** ΔW = s·B·A, entry by entry. */
function denseDelta(a: Mat, b: Mat, s: number): number[][] {
  return Array.from({ length: b.rows }, (_, i) => Array.from({ length: a.cols }, (_, j) => {
    let x = 0;
    for (let k = 0; k < a.rows; k++) x += b.data[i * b.cols + k] * a.data[k * a.cols + j];
    return s * x;
  }));
}

function assertOrthonormalColumns(m: Mat, tol: number): void {
  for (let p = 0; p < m.cols; p++) {
    for (let q = p; q < m.cols; q++) {
      let d = 0;
      for (let i = 0; i < m.rows; i++) d += m.data[i * m.cols + p] * m.data[i * m.cols + q];
      assert.ok(Math.abs(d - (p === q ? 1 : 0)) < tol, `columns ${p},${q}: ${d}`);
    }
  }
}

describe('deltaSpectrum: the SVD of ΔW from the r×r core', () => {
  for (const [out, inn, r, scale] of [[40, 24, 6, 2], [7, 50, 4, 0.5], [2, 30, 8, 1], [30, 3, 5, 4]] as const) {
    it(`rebuilds the dense ΔW (out ${out}, in ${inn}, r ${r}) with orthonormal U, V and descending σ`, () => {
      const next = seeded(out * 1000 + inn);
      const a = randMat(r, inn, next);
      const b = randMat(out, r, next);
      const spec = deltaSpectrum(a, b, scale);
      const dense = denseDelta(a, b, scale);
      const fro = Math.sqrt(dense.flat().reduce((acc, x) => acc + x * x, 0));
      assert.equal(spec.singular_values.length, r);
      assert.ok(Math.abs(spec.delta_fro - fro) < 1e-10 * fro);
      for (let i = 1; i < r; i++) assert.ok(spec.singular_values[i] <= spec.singular_values[i - 1] + 1e-12);
      assert.ok(spec.singular_values.every((x) => x >= 0));
      const k = spec.u.cols;
      assert.equal(k, Math.min(r, out, inn));
      assert.ok(spec.singular_values.slice(k).every((x) => x === 0), 'rank beyond min(out, in) is zero');
      assertOrthonormalColumns(spec.u, 1e-10);
      assertOrthonormalColumns(spec.v, 1e-10);
      let worst = 0;
      for (let i = 0; i < out; i++) {
        for (let j = 0; j < inn; j++) {
          let x = 0;
          for (let t = 0; t < k; t++) x += spec.u.data[i * k + t] * spec.singular_values[t] * spec.v.data[j * k + t];
          worst = Math.max(worst, Math.abs(x - dense[i][j]));
        }
      }
      assert.ok(worst < 1e-10 * fro, `max |UΣVᵀ − ΔW| = ${worst}`);
      assert.ok(Math.abs(spec.stable_rank - fro * fro / spec.singular_values[0] ** 2) < 1e-9);
    });
  }

  it('an adapter with prescribed singular values: B = Q·diag(d), A = Pᵀ gives σ = scaling·d, sorted', () => {
    const next = seeded(7);
    const q = randomOrthonormal(20, 4, next);
    const p = randomOrthonormal(12, 4, next);
    const d = [0.5, 3, 0, 1.25];
    const b = mat(20, 4, Array.from({ length: 80 }, (_, i) => q.data[i] * d[i % 4]));
    const a = mat(4, 12, Array.from({ length: 48 }, (_, i) => p.data[(i % 12) * 4 + Math.floor(i / 12)]));
    const spec = deltaSpectrum(a, b, 2);
    const want = [6, 2.5, 1, 0];
    spec.singular_values.forEach((x, i) => assert.ok(Math.abs(x - want[i]) < 1e-12, `σ${i} = ${x}, want ${want[i]}`));
    assert.ok(Math.abs(spec.delta_fro - Math.sqrt(36 + 6.25 + 1)) < 1e-12);
  });

  it('exact rank 1: one non-zero σ, stable rank 1, all the energy in the top direction', () => {
    const next = seeded(11);
    const u = Array.from({ length: 16 }, () => next() - 0.5);
    const c = Array.from({ length: 8 }, () => next() - 0.5);
    const b = mat(16, 8, Array.from({ length: 128 }, (_, i) => u[Math.floor(i / 8)] * c[i % 8]));
    const a = randMat(8, 10, next);
    const spec = deltaSpectrum(a, b, 1);
    assert.ok(spec.singular_values[0] > 1e-3);
    assert.ok(spec.singular_values.slice(1).every((x) => x < 1e-12 * spec.singular_values[0]));
    assert.ok(Math.abs(spec.stable_rank - 1) < 1e-9);
    assert.deepEqual(energy(spec.singular_values, [1, 2, 4]).map((x) => Number(x.toFixed(9))), [1, 1, 1]);
  });

  it('a zero update (B at its initialisation): σ all 0, stable rank 0', () => {
    const spec = deltaSpectrum(randMat(4, 9, seeded(3)), mat(6, 4), 2);
    assert.deepEqual(spec.singular_values, [0, 0, 0, 0]);
    assert.equal(spec.stable_rank, 0);
  });
});

describe('subspaceSimilarity: φ of Figures 3 and 4', () => {
  const unitRows = (inn: number, rows: Array<[number, number]>) => mat(rows.length, inn, rows.flatMap(([axis, scale]) => Array.from({ length: inn }, (_, j) => (j === axis ? scale : 0))));

  it('counts shared directions: V1 = [e0, e1, e2], V2 = [e1, e0, e4, e5] (by descending σ)', () => {
    const a1 = unitRows(16, [[0, 3], [1, 2], [2, 1]]);
    const a2 = unitRows(16, [[1, 5], [0, 4], [4, 3], [5, 2]]);
    const phi = subspaceSimilarity(a1, a2);
    assert.equal(phi.length, 3);
    assert.equal(phi[0].length, 4);
    // φ(i, j) = |{e0..e_{i-1}} ∩ V2[:j]| / min(i, j)
    const want = [
      [0, 1, 1, 1],
      [1, 1, 1, 1],
      [1, 1, 2 / 3, 2 / 3],
    ];
    for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) assert.ok(Math.abs(phi[i][j] - want[i][j]) < 1e-12, `φ(${i + 1},${j + 1}) = ${phi[i][j]}`);
  });

  it('an adapter whose top rows span another\'s row space: φ ≈ 1 in the top block, r = 8 against r = 64', () => {
    const next = seeded(5);
    const inn = 256;
    const a1 = randMat(8, inn, next);
    // A2: 8 strong rows mixing A1's rows, 56 weak random rows
    const mix = randMat(8, 8, next);
    const rows: number[] = [];
    for (let i = 0; i < 8; i++) for (let j = 0; j < inn; j++) {
      let x = 0;
      for (let k = 0; k < 8; k++) x += 10 * mix.data[i * 8 + k] * a1.data[k * inn + j];
      rows.push(x);
    }
    for (let i = 8; i < 64; i++) for (let j = 0; j < inn; j++) rows.push(1e-4 * (next() - 0.5));
    const phi = subspaceSimilarity(a1, mat(64, inn, rows));
    assert.equal(phi.length, 8);
    assert.equal(phi[0].length, 64);
    assert.ok(phi[7][7] > 0.999999, `φ(8, 8) = ${phi[7][7]}`);
    // independent random subspaces in 256 dimensions overlap by about j / 256
    const other = subspaceSimilarity(a1, randMat(64, inn, seeded(99)));
    assert.ok(other[0][0] < 0.1, `random φ(1, 1) = ${other[0][0]}`);
    for (const row of phi) for (const x of row) assert.ok(x >= -1e-12 && x <= 1 + 1e-9);
  });
});

describe('amplification (section 7.3)', () => {
  it('W = ΔW: ‖UᵀWV‖_F = ‖ΔW‖_F, factor 1; the Conv1D layout gives the same; random U, V project less and are seeded', () => {
    const next = seeded(21);
    const a = randMat(4, 48, next);
    const b = randMat(64, 4, next);
    const spec = deltaSpectrum(a, b, 1.5);
    const dense = denseDelta(a, b, 1.5);
    const w = mat(64, 48, dense.flat());
    const wT = mat(48, 64, Array.from({ length: 48 * 64 }, (_, i) => dense[i % 64][Math.floor(i / 64)]));
    const amp = amplification(spec, w, false, seeded(1));
    assert.ok(Math.abs(amp.projected_fro - spec.delta_fro) < 1e-10 * spec.delta_fro);
    assert.ok(Math.abs(amp.factor - 1) < 1e-10);
    const ampT = amplification(spec, wT, true, seeded(1));
    assert.ok(Math.abs(ampT.projected_fro - amp.projected_fro) < 1e-10 * spec.delta_fro);
    assert.ok(amp.random_fro < 0.5 * amp.projected_fro, `random ${amp.random_fro} vs ${amp.projected_fro}`);
    assert.equal(amplification(spec, w, false, seeded(9)).random_fro, amplification(spec, w, false, seeded(9)).random_fro);
  });
});
