/**
 * The text (WebAssembly text format) of LoRA Studio's GEMM for the wasm backend: C[n, m] = A[n, k] · B (+ bias),
 * where B is stored either as [k, m] or as [m, k] (then C = A · Bᵀ of the stored matrix). It imports the tfjs
 * wasm backend's own memory, so it reads tensors where they lie and writes its output into a tensor's buffer.
 *
 * Why our own: tfjs-wasm multiplies through XNNPACK, which keeps a packed copy of every right-hand operand it
 * meets, for as long as that tensor lives: for GPT-2 small that is a second copy of every frozen weight (~0.5 GB
 * per thread), and a product with a transposed operand falls off its fast path. This one packs a block of B at a
 * time, from either layout, into a scratch buffer it reuses, so a frozen weight is held once and serves both
 * x·W (forward) and dy·Wᵀ (backward).
 *
 * The structure is the classic one (Goto/BLIS): for each block of NC columns and KC rows of B, pack it into
 * NR-column panels (each KC × NR, contiguous), then run an MR × NR micro-kernel over every MR rows of A and
 * every panel: MR·NR/4 f32x4 accumulators, one splat of A per row and NR/4 vectors of B per step. Panels
 * narrower than NR go through an NR-wide tile; row remainders use kernels of fewer rows. The reduction over k
 * runs in order, in float32, one KC block after another (C accumulates across blocks).
 * The module also carries the fused elementwise kernels of elementwise_wat.ts.
 */

import { elementwiseWat } from './elementwise_wat';

/** Rows of B per packed block (and per pass of the micro-kernel). */
export const GEMM_KC = 256;

/** A micro-kernel's shape: MR rows of A by NR columns of B (a multiple of 4). */
interface Tile {
  mr: number;
  nr: number;
}
/**
 * The tile of each build, measured here (V8 11.3, micro-kernel on L1-resident data): with fused multiply-adds
 * 3 × 12 runs fastest (9 accumulators); with separate multiplies and adds 4 × 8 (the product's temporary
 * register makes 3 × 12 spill, at half speed). Unrolling k ran slower in both.
 */
const TILE: Record<'fma' | 'mul-add', Tile> = { fma: { mr: 3, nr: 12 }, 'mul-add': { mr: 4, nr: 8 } };
/** Columns of B per packed block, a multiple of both tiles' NR: KC × NC floats (~500 KB) stay in L2. */
export const GEMM_NC = 504;
const TILE_BYTES = Math.max(...Object.values(TILE).map((t) => t.mr * t.nr)) * 4;
/**
 * Bytes of scratch the GEMM needs (either build): the packed block, a tile for narrow panels, and a block of a
 * 16-bit B widened to float32 (what the packers then read).
 */
export const GEMM_SCRATCH_BYTES = GEMM_KC * GEMM_NC * 4 + TILE_BYTES + GEMM_KC * GEMM_NC * 4;

/** The `bt` argument's bits 1–2: how B's elements are stored. */
export const GEMM_B_F32 = 0;
export const GEMM_B_BF16 = 1;
export const GEMM_B_F16 = 2;

const get = (v: string) => `(local.get $${v})`;
const i32 = (n: number) => `(i32.const ${n})`;
const add = (a: string, b: string) => `(i32.add ${a} ${b})`;
const mul = (a: string, b: string) => `(i32.mul ${a} ${b})`;
const shl = (a: string, n: number) => `(i32.shl ${a} ${i32(n)})`;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const KERNEL_PARAMS = '(param $a i32) (param $lda i32) (param $p i32) (param $kc i32) (param $c i32) (param $ldc i32) (param $init i32) (param $bias i32)';
const KERNEL_ARGS = ['a', 'lda', 'p', 'kc', 'c', 'ldc', 'init', 'bias'];

/**
 * The mr × NR micro-kernel: C[mr rows, NR] = (init ? bias or 0 : C) + A[mr rows, 0:kc] · P, P a packed kc × NR
 * panel. Strides (lda, ldc) are in bytes; kc ≥ 1.
 */
function microKernel(mr: number, nr: number, fma: boolean): string {
  const rows = range(mr);
  const vecs = range(nr / 4);
  const acc = (r: number, h: number) => `$c${r}_${h}`;
  const aRow = (r: number) => (r === 0 ? 'a' : `a${r}`);
  const cRow = (r: number) => (r === 0 ? get('c') : add(get('c'), mul(get('ldc'), i32(r))));
  const update = (r: number, h: number) =>
    fma
      ? `(local.set ${acc(r, h)} (f32x4.relaxed_madd (local.get $x) (local.get $b${h}) (local.get ${acc(r, h)})))`
      : `(local.set ${acc(r, h)} (f32x4.add (local.get ${acc(r, h)}) (f32x4.mul (local.get $x) (local.get $b${h}))))`;
  const each = (f: (r: number, h: number) => string) => rows.map((r) => vecs.map((h) => f(r, h)).join(' ')).join('\n      ');
  return `
(func $kernel${mr} ${KERNEL_PARAMS}
  ${rows.map((r) => vecs.map((h) => `(local ${acc(r, h)} v128)`).join(' ')).join(' ')}
  ${vecs.map((h) => `(local $b${h} v128)`).join(' ')} (local $x v128) (local $end i32) ${rows.slice(1).map((r) => `(local $a${r} i32)`).join(' ')}
  (if ${get('init')}
    (then
      (if ${get('bias')}
        (then ${vecs.map((h) => `(local.set $b${h} (v128.load offset=${16 * h} ${get('bias')}))`).join(' ')})
        (else ${vecs.map((h) => `(local.set $b${h} (v128.const i32x4 0 0 0 0))`).join(' ')}))
      ${each((r, h) => `(local.set ${acc(r, h)} (local.get $b${h}))`)})
    (else
      ${each((r, h) => `(local.set ${acc(r, h)} (v128.load offset=${16 * h} ${cRow(r)}))`)}))
  ${rows.slice(1).map((r) => `(local.set $a${r} ${add(get('a'), mul(get('lda'), i32(r)))})`).join('\n  ')}
  (local.set $end ${add(get('p'), mul(get('kc'), i32(4 * nr)))})
  ;; a do-while: one branch per step
  (loop $steps
    ${vecs.map((h) => `(local.set $b${h} (v128.load offset=${16 * h} ${get('p')}))`).join(' ')}
    ${rows.map((r) => `(local.set $x (v128.load32_splat ${get(aRow(r))})) ${vecs.map((h) => update(r, h)).join(' ')}`).join('\n    ')}
    ${rows.map((r) => `(local.set $${aRow(r)} ${add(get(aRow(r)), i32(4))})`).join(' ')}
    (local.set $p ${add(get('p'), i32(4 * nr))})
    (br_if $steps (i32.lt_u ${get('p')} ${get('end')})))
  ${each((r, h) => `(v128.store offset=${16 * h} ${cRow(r)} (local.get ${acc(r, h)}))`)})`;
}

const callKernel = (mr: number | string, args: string[]) => `(call $kernel${mr} ${args.join(' ')})`;

/** Dispatch on the row count (1 … MR) of a micro-kernel call. */
function rowsDispatch(mrMax: number): string {
  return `
(func $kernelRows (param $mr i32) ${KERNEL_PARAMS}
  ${range(mrMax - 1).map((i) => mrMax - i).map((mr) => `(if (i32.eq ${get('mr')} ${i32(mr)}) (then ${callKernel(mr, KERNEL_ARGS.map(get))} (return)))`).join('\n  ')}
  ${callKernel(1, KERNEL_ARGS.map(get))})`;
}

/** A panel with w < NR valid columns: through an NR-wide tile, so no load or store passes column w. */
function narrowPanel(nr: number): string {
  const tileAt = add(get('tile'), add(mul(get('r'), i32(4 * nr)), shl(get('j'), 2)));
  const cAt = add(add(get('c'), mul(get('r'), get('ldc'))), shl(get('j'), 2));
  return `
(func $narrow (param $mr i32) (param $w i32) ${KERNEL_PARAMS} (param $tile i32)
  (local $r i32) (local $j i32) (local $v f32)
  (local.set $r ${i32(0)})
  (loop $rows
    (local.set $j ${i32(0)})
    (loop $cols
      (local.set $v (f32.const 0))
      (if (i32.lt_u ${get('j')} ${get('w')}) (then
        (if ${get('init')}
          (then (if ${get('bias')} (then (local.set $v (f32.load ${add(get('bias'), shl(get('j'), 2))})))))
          (else (local.set $v (f32.load ${cAt}))))))
      (f32.store ${tileAt} ${get('v')})
      (local.set $j ${add(get('j'), i32(1))})
      (br_if $cols (i32.lt_u ${get('j')} ${i32(nr)})))
    (local.set $r ${add(get('r'), i32(1))})
    (br_if $rows (i32.lt_u ${get('r')} ${get('mr')})))
  (call $kernelRows ${get('mr')} ${get('a')} ${get('lda')} ${get('p')} ${get('kc')} ${get('tile')} ${i32(4 * nr)} ${i32(0)} ${i32(0)})
  (local.set $r ${i32(0)})
  (loop $rows
    (local.set $j ${i32(0)})
    (loop $cols
      (f32.store ${cAt} (f32.load ${tileAt}))
      (local.set $j ${add(get('j'), i32(1))})
      (br_if $cols (i32.lt_u ${get('j')} ${get('w')})))
    (local.set $r ${add(get('r'), i32(1))})
    (br_if $rows (i32.lt_u ${get('r')} ${get('mr')}))))`;
}

/** B stored [k, m] (b at the block's (k0, j0), ldb bytes per row) → kc × NR panels, zero padded past nc. */
function packRows(nr: number): string {
  return `
(func $packRows (param $b i32) (param $ldb i32) (param $kc i32) (param $nc i32) (param $dst i32)
  (local $j i32) (local $k i32) (local $src i32) (local $w i32) (local $jj i32)
  (local.set $j ${i32(0)})
  (block $done (loop $panel
    (br_if $done (i32.ge_u ${get('j')} ${get('nc')}))
    (local.set $w (i32.sub ${get('nc')} ${get('j')}))
    (local.set $src ${add(get('b'), shl(get('j'), 2))})
    (local.set $k ${get('kc')})
    (if (i32.ge_u ${get('w')} ${i32(nr)})
      (then (loop $row
        ${range(nr / 4).map((h) => `(v128.store offset=${16 * h} ${get('dst')} (v128.load offset=${16 * h} ${get('src')}))`).join('\n        ')}
        (local.set $src ${add(get('src'), get('ldb'))})
        (local.set $dst ${add(get('dst'), i32(4 * nr))})
        (local.set $k (i32.sub ${get('k')} ${i32(1)}))
        (br_if $row ${get('k')})))
      (else (loop $row
        (local.set $jj ${i32(0)})
        (loop $col
          (f32.store ${add(get('dst'), shl(get('jj'), 2))}
            (if (result f32) (i32.lt_u ${get('jj')} ${get('w')})
              (then (f32.load ${add(get('src'), shl(get('jj'), 2))}))
              (else (f32.const 0))))
          (local.set $jj ${add(get('jj'), i32(1))})
          (br_if $col (i32.lt_u ${get('jj')} ${i32(nr)})))
        (local.set $src ${add(get('src'), get('ldb'))})
        (local.set $dst ${add(get('dst'), i32(4 * nr))})
        (local.set $k (i32.sub ${get('k')} ${i32(1)}))
        (br_if $row ${get('k')}))))
    (local.set $j ${add(get('j'), i32(nr))})
    (br $panel))))`;
}

// i8x16 shuffles that interleave f32 lanes: lo/hi pairs of two vectors, then lo/hi halves
const ZIP_LO = '0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23';
const ZIP_HI = '8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31';
const HALF_LO = '0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23';
const HALF_HI = '8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31';

/**
 * B stored [m, k] (s at the block's (j0, k0), ldb bytes per row): panel[k][jj] = S[j + jj][k]. Full panels with
 * kc % 4 = 0 move as 4 × 4 transposes by shuffles (NR/4 groups of 4 source rows); others element by element.
 */
function packColumns(nr: number): string {
  return `
(func $packColumns (param $s i32) (param $ldb i32) (param $kc i32) (param $nc i32) (param $dst i32)
  (local $j i32) (local $k i32) (local $w i32) (local $jj i32) (local $h i32) (local $d i32)
  (local $r0 i32) (local $r1 i32) (local $r2 i32) (local $r3 i32)
  (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128) (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
  (local.set $j ${i32(0)})
  (block $done (loop $panel
    (br_if $done (i32.ge_u ${get('j')} ${get('nc')}))
    (local.set $w (i32.sub ${get('nc')} ${get('j')}))
    (if (i32.and (i32.ge_u ${get('w')} ${i32(nr)}) (i32.eqz (i32.and ${get('kc')} ${i32(3)})))
      (then
        (local.set $h ${i32(0)})
        (loop $group
          (local.set $r0 ${add(get('s'), mul(add(get('j'), get('h')), get('ldb')))})
          (local.set $r1 ${add(get('r0'), get('ldb'))})
          (local.set $r2 ${add(get('r1'), get('ldb'))})
          (local.set $r3 ${add(get('r2'), get('ldb'))})
          (local.set $d ${add(get('dst'), shl(get('h'), 2))})
          (local.set $k ${i32(0)})
          (loop $quad
            ${range(4).map((r) => `(local.set $v${r} (v128.load ${add(get(`r${r}`), shl(get('k'), 2))}))`).join('\n            ')}
            (local.set $t0 (i8x16.shuffle ${ZIP_LO} ${get('v0')} ${get('v1')}))
            (local.set $t1 (i8x16.shuffle ${ZIP_HI} ${get('v0')} ${get('v1')}))
            (local.set $t2 (i8x16.shuffle ${ZIP_LO} ${get('v2')} ${get('v3')}))
            (local.set $t3 (i8x16.shuffle ${ZIP_HI} ${get('v2')} ${get('v3')}))
            (v128.store offset=0 ${get('d')} (i8x16.shuffle ${HALF_LO} ${get('t0')} ${get('t2')}))
            (v128.store offset=${4 * nr} ${get('d')} (i8x16.shuffle ${HALF_HI} ${get('t0')} ${get('t2')}))
            (v128.store offset=${8 * nr} ${get('d')} (i8x16.shuffle ${HALF_LO} ${get('t1')} ${get('t3')}))
            (v128.store offset=${12 * nr} ${get('d')} (i8x16.shuffle ${HALF_HI} ${get('t1')} ${get('t3')}))
            (local.set $d ${add(get('d'), i32(16 * nr))})
            (local.set $k ${add(get('k'), i32(4))})
            (br_if $quad (i32.lt_u ${get('k')} ${get('kc')})))
          (local.set $h ${add(get('h'), i32(4))})
          (br_if $group (i32.lt_u ${get('h')} ${i32(nr)})))
        (local.set $dst ${add(get('dst'), mul(get('kc'), i32(4 * nr)))}))
      (else
        (local.set $k ${i32(0)})
        (loop $row
          (local.set $jj ${i32(0)})
          (loop $col
            (f32.store ${get('dst')}
              (if (result f32) (i32.lt_u ${get('jj')} ${get('w')})
                (then (f32.load ${add(get('s'), add(mul(add(get('j'), get('jj')), get('ldb')), shl(get('k'), 2)))}))
                (else (f32.const 0))))
            (local.set $dst ${add(get('dst'), i32(4))})
            (local.set $jj ${add(get('jj'), i32(1))})
            (br_if $col (i32.lt_u ${get('jj')} ${i32(nr)})))
          (local.set $k ${add(get('k'), i32(1))})
          (br_if $row (i32.lt_u ${get('k')} ${get('kc')})))))
    (local.set $j ${add(get('j'), i32(nr))})
    (br $panel))))`;
}

/**
 * 16-bit floats (one per i32x4 lane, zero-extended) → float32 bits. bfloat16 is the top half of a float32.
 * IEEE half: (h & 0x7fff) << 13 puts its exponent and mantissa in float32's fields with the bias 112 short, so
 * a multiply by 2^112 scales it right, subnormals included (exactly: every half is a float32); an all-ones
 * exponent (inf, NaN) instead gets float32's all-ones exponent; then the sign.
 */
export function widenLanes(h: string, fmt: 'bf16' | 'f16'): string {
  if (fmt === 'bf16') return `(i32x4.shl ${h} ${i32(16)})`;
  const splat = (n: number) => `(i32x4.splat ${i32(n)})`;
  const m = `(i32x4.shl (v128.and ${h} ${splat(0x7fff)}) ${i32(13)})`;
  return `(v128.or
      (v128.bitselect
        (v128.or ${m} ${splat(0x7f800000)})
        (f32x4.mul ${m} (f32x4.splat (f32.const 0x1p112)))
        (i32x4.eq (v128.and ${h} ${splat(0x7c00)}) ${splat(0x7c00)}))
      (i32x4.shl (v128.and ${h} ${splat(0x8000)}) ${i32(16)}))`;
}

/**
 * rows × cols 16-bit floats at src (sld bytes per row) → float32 at dst (dld bytes per row), in the format `fmt`
 * (GEMM_B_BF16 or GEMM_B_F16): eight at a time, then one by one.
 */
function widen(): string {
  const both = (v: string) => `(if (result v128) (i32.eq ${get('fmt')} ${i32(1)}) (then ${widenLanes(v, 'bf16')}) (else ${widenLanes(v, 'f16')}))`;
  return `
(func $widen (param $src i32) (param $sld i32) (param $rows i32) (param $cols i32) (param $dst i32) (param $dld i32) (param $fmt i32)
  (local $r i32) (local $j i32) (local $s i32) (local $d i32) (local $v v128)
  (local.set $r ${i32(0)})
  (block $done (loop $row
    (br_if $done (i32.ge_u ${get('r')} ${get('rows')}))
    (local.set $s ${add(get('src'), mul(get('r'), get('sld')))})
    (local.set $d ${add(get('dst'), mul(get('r'), get('dld')))})
    (local.set $j ${i32(0)})
    (block $vdone (loop $vec
      (br_if $vdone (i32.gt_u ${add(get('j'), i32(8))} ${get('cols')}))
      (local.set $v (v128.load ${add(get('s'), shl(get('j'), 1))}))
      (v128.store ${add(get('d'), shl(get('j'), 2))} ${both('(i32x4.extend_low_i16x8_u (local.get $v))')})
      (v128.store offset=16 ${add(get('d'), shl(get('j'), 2))} ${both('(i32x4.extend_high_i16x8_u (local.get $v))')})
      (local.set $j ${add(get('j'), i32(8))})
      (br $vec)))
    (block $tdone (loop $tail
      (br_if $tdone (i32.ge_u ${get('j')} ${get('cols')}))
      (f32.store ${add(get('d'), shl(get('j'), 2))}
        (f32x4.extract_lane 0 ${both(`(i32x4.splat (i32.load16_u ${add(get('s'), shl(get('j'), 1))}))`)}))
      (local.set $j ${add(get('j'), i32(1))})
      (br $tail)))
    (local.set $r ${add(get('r'), i32(1))})
    (br $row))))`;
}

const min = (a: string, b: number) => `(select ${a} ${i32(b)} (i32.lt_u ${a} ${i32(b)}))`;

/**
 * gemm(a, lda, b, ldb, bt, c, ldc, bias, n, k, m, scratch): byte addresses and byte strides; bt's bit 0 is set
 * when B is stored [m, k], its bits 1–2 say how B's elements are stored (GEMM_B_F32, GEMM_B_BF16, GEMM_B_F16: a
 * 16-bit B is widened block by block before packing; A, C and the bias are float32); bias = 0 for none; k ≥ 1;
 * scratch: GEMM_SCRATCH_BYTES of memory that nothing else uses meanwhile.
 */
function driver({ mr, nr }: Tile): string {
  return `
(func (export "gemm") (param $a i32) (param $lda i32) (param $b i32) (param $ldb i32) (param $bt i32) (param $c i32) (param $ldc i32) (param $bias i32)
    (param $n i32) (param $k i32) (param $m i32) (param $scratch i32)
  (local $jc i32) (local $nc i32) (local $pc i32) (local $kc i32) (local $ir i32) (local $jr i32) (local $mr i32) (local $w i32) (local $init i32)
  (local $ap i32) (local $cp i32) (local $bp i32) (local $panel i32) (local $tile i32) (local $fmt i32) (local $stage i32)
  (local.set $tile ${add(get('scratch'), i32(GEMM_KC * GEMM_NC * 4))})
  (local.set $stage ${add(get('scratch'), i32(GEMM_KC * GEMM_NC * 4 + TILE_BYTES))})
  (local.set $fmt (i32.shr_u ${get('bt')} ${i32(1)}))
  (local.set $bt (i32.and ${get('bt')} ${i32(1)}))
  (local.set $jc ${i32(0)})
  (block $cdone (loop $cblock
    (br_if $cdone (i32.ge_u ${get('jc')} ${get('m')}))
    (local.set $nc ${min(`(i32.sub ${get('m')} ${get('jc')})`, GEMM_NC)})
    (local.set $pc ${i32(0)})
    (block $kdone (loop $kblock
      (br_if $kdone (i32.ge_u ${get('pc')} ${get('k')}))
      (local.set $kc ${min(`(i32.sub ${get('k')} ${get('pc')})`, GEMM_KC)})
      (if ${get('fmt')}
        (then (if ${get('bt')}
          (then
            (call $widen ${add(get('b'), add(mul(get('jc'), get('ldb')), shl(get('pc'), 1)))} ${get('ldb')} ${get('nc')} ${get('kc')} ${get('stage')} ${shl(get('kc'), 2)} ${get('fmt')})
            (call $packColumns ${get('stage')} ${shl(get('kc'), 2)} ${get('kc')} ${get('nc')} ${get('scratch')}))
          (else
            (call $widen ${add(get('b'), add(mul(get('pc'), get('ldb')), shl(get('jc'), 1)))} ${get('ldb')} ${get('kc')} ${get('nc')} ${get('stage')} ${shl(get('nc'), 2)} ${get('fmt')})
            (call $packRows ${get('stage')} ${shl(get('nc'), 2)} ${get('kc')} ${get('nc')} ${get('scratch')}))))
        (else (if ${get('bt')}
          (then (call $packColumns ${add(get('b'), add(mul(get('jc'), get('ldb')), shl(get('pc'), 2)))} ${get('ldb')} ${get('kc')} ${get('nc')} ${get('scratch')}))
          (else (call $packRows ${add(get('b'), add(mul(get('pc'), get('ldb')), shl(get('jc'), 2)))} ${get('ldb')} ${get('kc')} ${get('nc')} ${get('scratch')})))))
      (local.set $init (i32.eqz ${get('pc')}))
      (local.set $ir ${i32(0)})
      (block $rdone (loop $rows
        (br_if $rdone (i32.ge_u ${get('ir')} ${get('n')}))
        (local.set $mr ${min(`(i32.sub ${get('n')} ${get('ir')})`, mr)})
        (local.set $ap ${add(add(get('a'), mul(get('ir'), get('lda'))), shl(get('pc'), 2))})
        (local.set $jr ${i32(0)})
        (block $pdone (loop $panels
          (br_if $pdone (i32.ge_u ${get('jr')} ${get('nc')}))
          (local.set $w (i32.sub ${get('nc')} ${get('jr')}))
          ;; panel jr/NR starts kc·NR floats per panel in: jr·kc floats
          (local.set $panel ${add(get('scratch'), mul(get('jr'), shl(get('kc'), 2)))})
          (local.set $cp ${add(add(get('c'), mul(get('ir'), get('ldc'))), shl(add(get('jc'), get('jr')), 2))})
          (local.set $bp (select ${add(get('bias'), shl(add(get('jc'), get('jr')), 2))} ${i32(0)} ${get('bias')}))
          (if (i32.lt_u ${get('w')} ${i32(nr)})
            (then (call $narrow ${get('mr')} ${get('w')} ${get('ap')} ${get('lda')} ${get('panel')} ${get('kc')} ${get('cp')} ${get('ldc')} ${get('init')} ${get('bp')} ${get('tile')}))
            (else (if (i32.eq ${get('mr')} ${i32(mr)})
              (then ${callKernel(mr, [get('ap'), get('lda'), get('panel'), get('kc'), get('cp'), get('ldc'), get('init'), get('bp')])})
              (else (call $kernelRows ${get('mr')} ${get('ap')} ${get('lda')} ${get('panel')} ${get('kc')} ${get('cp')} ${get('ldc')} ${get('init')} ${get('bp')})))))
          (local.set $jr ${add(get('jr'), i32(nr))})
          (br $panels)))
        (local.set $ir ${add(get('ir'), i32(mr))})
        (br $rows)))
      (local.set $pc ${add(get('pc'), i32(GEMM_KC))})
      (br $kblock)))
    (local.set $jc ${add(get('jc'), i32(GEMM_NC))})
    (br $cblock))))`;
}

/**
 * The whole module's text. With `fma`, the micro-kernel accumulates with f32x4.relaxed_madd (relaxed SIMD),
 * which V8 lowers to a fused multiply-add where the CPU has one (one rounding per step instead of two), on a
 * 3 × 12 tile; without, multiplies and adds on a 4 × 8 tile. Micro-kernel alone here: 51.9 GFLOP/s for 4 × 8
 * mul+add, 61.6 for 4 × 8 fma, 59–65 for 3 × 12 fma.
 */
export function gemmWat(opts: { fma: boolean }): string {
  const tile = TILE[opts.fma ? 'fma' : 'mul-add'];
  if (GEMM_NC % tile.nr !== 0 || tile.nr % 4 !== 0) throw new Error('internal: GEMM_NC must be a multiple of NR, and NR of 4');
  return `(module
(import "env" "memory" (memory 1))
${range(tile.mr).map((i) => microKernel(tile.mr - i, tile.nr, opts.fma)).join('\n')}
${rowsDispatch(tile.mr)}
${narrowPanel(tile.nr)}
${packRows(tile.nr)}
${packColumns(tile.nr)}
${widen()}
${driver(tile)}
${elementwiseWat()}
)`;
}
