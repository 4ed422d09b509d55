/**
 * The text (WebAssembly text format) of the rank-r update kernel that `merge` runs on each adapted weight:
 * W[u, v] += s · Σ_k x[u, k] · y[k, v], on W as it is stored (float32, bfloat16 or IEEE half, rows of V elements),
 * with x [U, r] and y [r, V] in float64. Every sum is float64, starts from +0 and adds the products k in order;
 * then W + s·sum is float64 and is rounded once to float32 (and, for the 16-bit formats, to nearest even, as
 * io/safetensors.ts encodes): the arithmetic of lora/merge.ts's applyDeltas, so the results are the same bits. Two
 * columns share a f64x2 lane pair (no fused multiply-add: f64x2.mul then f64x2.add round as JavaScript's * and +
 * do); two rows and eight columns at a time keep eight sums in flight, and a row or column left over goes through
 * the same arithmetic one element at a time (in both lanes of a splat).
 *
 * Exports `update_f32`, `update_bf16` and `update_f16` (w, x, y, u0, u1, V, r, s) → 1 when some value of rows
 * u0..u1 is not finite once stored (those rows are written anyway; the caller redoes the tensor to name the
 * value), else 0, and the module's own memory, which the caller grows.
 */

import { widenLanes } from './gemm_wat';

type RankUpdateFormat = 'f32' | 'bf16' | 'f16';

const ES: Record<RankUpdateFormat, number> = { f32: 4, bf16: 2, f16: 2 };
/** columns per step (four f64x2 sums per row) */
const COLS = 8;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const get = (v: string) => `(local.get $${v})`;
const i32 = (n: number) => `(i32.const ${n})`;
const splat = (n: number) => `(i32x4.splat ${i32(n)})`;

/**
 * `lanes` (1 or 2) stored elements at `addr` + `off` as f64x2 (one element: in both lanes). The 16-bit formats
 * widen as the GEMM widens them (gemm_wat.ts widenLanes: exact).
 */
function load(fmt: RankUpdateFormat, addr: string, off: number, lanes: 1 | 2): string {
  if (fmt === 'f32') return `(f64x2.promote_low_f32x4 (${lanes === 2 ? 'v128.load64_zero' : 'v128.load32_splat'} offset=${off} ${addr}))`;
  const halves = `(i32x4.extend_low_i16x8_u (${lanes === 2 ? 'v128.load32_zero' : 'v128.load16_splat'} offset=${off} ${addr}))`;
  return `(f64x2.promote_low_f32x4 ${widenLanes(halves, fmt)})`;
}

/**
 * float32 bits (`$f`) → IEEE half bits in `$h`, rounded to nearest even (an all-ones exponent, here infinity, where
 * the value is too large or not a number): below 2^-14 an add of 0.5 aligns the ten mantissa bits at the bottom
 * and rounds them; above, the exponent is rebased and 0xfff plus the odd bit rounds before the shift.
 */
function toHalf(): string {
  return `(local.set $sign (v128.and (local.get $f) ${splat(0x80000000 | 0)}))
      (local.set $abs (v128.xor (local.get $f) (local.get $sign)))
      (local.set $h (v128.bitselect
        (i32x4.sub (f32x4.add (local.get $abs) ${splat(0x3f000000)}) ${splat(0x3f000000)})
        (i32x4.shr_u (i32x4.add (i32x4.add (local.get $abs) ${splat(((15 - 127) << 23) + 0xfff)}) (v128.and (i32x4.shr_u (local.get $abs) ${i32(13)}) ${splat(1)})) ${i32(13)})
        (i32x4.lt_s (local.get $abs) ${splat(113 << 23)})))
      (local.set $h (v128.or
        (v128.bitselect ${splat(0x7c00)} (local.get $h) (i32x4.ge_s (local.get $abs) ${splat(143 << 23)}))
        (i32x4.shr_u (local.get $sign) ${i32(16)})))`;
}

/**
 * Stores lane 0 (lanes = 1) or lanes 0 and 1 of the float64 results in `$t` at `addr` + `off` in the stored format,
 * and ORs their "not finite once stored" lanes into `$bad`.
 */
function store(fmt: RankUpdateFormat, addr: string, off: number, lanes: 1 | 2): string {
  const demote = '(local.set $f (f32x4.demote_f64x2_zero (local.get $t)))';
  const bad = (v: string, exp: number) => `(local.set $bad (v128.or (local.get $bad) (i32x4.eq (v128.and ${v} ${splat(exp)}) ${splat(exp)})))`;
  if (fmt === 'f32') {
    return `${demote}
      (${lanes === 2 ? 'v128.store64_lane' : 'v128.store32_lane'} offset=${off} 0 ${addr} (local.get $f))
      ${bad('(local.get $f)', 0x7f800000)}`;
  }
  const round = fmt === 'bf16'
    ? `(local.set $h (i32x4.shr_u (i32x4.add (i32x4.add (local.get $f) ${splat(0x7fff)}) (v128.and (i32x4.shr_u (local.get $f) ${i32(16)}) ${splat(1)})) ${i32(16)}))`
    : toHalf();
  return `${demote}
      ${round}
      (${lanes === 2 ? 'v128.store32_lane' : 'v128.store16_lane'} offset=${off} 0 ${addr} (i16x8.narrow_i32x4_u (local.get $h) (local.get $h)))
      ${bad('(local.get $h)', fmt === 'bf16' ? 0x7f80 : 0x7c00)}`;
}

/**
 * Rows u .. u + R - 1 (R = 1 or 2): columns eight at a time, then one at a time. `$xa` is row u's factors, `$wa`
 * its first element; rows are `$xs` (r·8) and `$ws` (V·es) bytes apart.
 */
function rows(fmt: RankUpdateFormat, R: number): string {
  const es = ES[fmt];
  const acc = (row: number, j: number) => `$c${row}_${j}`;
  const sums = range(R).flatMap((row) => range(COLS / 2).map((j) => acc(row, j)));
  return `
    (local.set $v ${i32(0)})
    (block $vdone (loop $cols
      (br_if $vdone (i32.gt_u (i32.add ${get('v')} ${i32(COLS)}) ${get('V')}))
      ${sums.map((a) => `(local.set ${a} (local.get $zero))`).join(' ')}
      (local.set $yp (i32.add ${get('y')} (i32.shl ${get('v')} ${i32(3)})))
      (local.set $k ${i32(0)})
      (block $kdone (loop $ks
        (br_if $kdone (i32.ge_u ${get('k')} ${get('r')}))
        ${range(R).map((row) => `(local.set $s${row} (v128.load64_splat (i32.add (i32.add ${get('xa')} ${row ? get('xs') : i32(0)}) (i32.shl ${get('k')} ${i32(3)}))))`).join('\n        ')}
        ${range(COLS / 2).map((j) => `(local.set $y${j} (v128.load offset=${16 * j} ${get('yp')}))`).join(' ')}
        ${range(R).flatMap((row) => range(COLS / 2).map((j) => `(local.set ${acc(row, j)} (f64x2.add (local.get ${acc(row, j)}) (f64x2.mul (local.get $y${j}) (local.get $s${row}))))`)).join('\n        ')}
        (local.set $yp (i32.add ${get('yp')} ${get('ys')}))
        (local.set $k (i32.add ${get('k')} ${i32(1)}))
        (br $ks)))
      ${range(R).map((row) => {
        const addr = `(i32.add (i32.add ${get('wa')} ${row ? get('ws') : i32(0)}) ${es === 4 ? `(i32.shl ${get('v')} ${i32(2)})` : `(i32.shl ${get('v')} ${i32(1)})`})`;
        return range(COLS / 2).map((j) => `(local.set $t (f64x2.add ${load(fmt, addr, 2 * es * j, 2)} (f64x2.mul (local.get $sv) (local.get ${acc(row, j)}))))
      ${store(fmt, addr, 2 * es * j, 2)}`).join('\n      ');
      }).join('\n      ')}
      (local.set $v (i32.add ${get('v')} ${i32(COLS)}))
      (br $cols)))
    (block $tdone (loop $tail
      (br_if $tdone (i32.ge_u ${get('v')} ${get('V')}))
      ${range(R).map((row) => `
      (local.set $e (f64.const 0))
      (local.set $yp (i32.add ${get('y')} (i32.shl ${get('v')} ${i32(3)})))
      (local.set $xp (i32.add ${get('xa')} ${row ? get('xs') : i32(0)}))
      (local.set $k ${i32(0)})
      (block $kd${row} (loop $k1${row}
        (br_if $kd${row} (i32.ge_u ${get('k')} ${get('r')}))
        (local.set $e (f64.add (local.get $e) (f64.mul (f64.load ${get('yp')}) (f64.load (i32.add ${get('xp')} (i32.shl ${get('k')} ${i32(3)}))))))
        (local.set $yp (i32.add ${get('yp')} ${get('ys')}))
        (local.set $k (i32.add ${get('k')} ${i32(1)}))
        (br $k1${row})))
      (local.set $wp (i32.add (i32.add ${get('wa')} ${row ? get('ws') : i32(0)}) (i32.mul ${get('v')} ${i32(es)})))
      (local.set $t (f64x2.add ${load(fmt, get('wp'), 0, 1)} (f64x2.mul (local.get $sv) (f64x2.splat (local.get $e)))))
      ${store(fmt, get('wp'), 0, 1)}`).join('')}
      (local.set $v (i32.add ${get('v')} ${i32(1)}))
      (br $tail)))`;
}

function update(fmt: RankUpdateFormat): string {
  const es = ES[fmt];
  const sums = range(2).flatMap((row) => range(COLS / 2).map((j) => `(local $c${row}_${j} v128)`)).join(' ');
  return `
(func (export "update_${fmt}") (param $w i32) (param $x i32) (param $y i32) (param $u0 i32) (param $u1 i32) (param $V i32) (param $r i32) (param $s f64) (result i32)
  (local $u i32) (local $v i32) (local $k i32) (local $xa i32) (local $xp i32) (local $wa i32) (local $wp i32) (local $yp i32)
  (local $xs i32) (local $ws i32) (local $ys i32) (local $e f64)
  (local $zero v128) (local $sv v128) (local $t v128) (local $f v128) (local $h v128) (local $sign v128) (local $abs v128) (local $bad v128)
  (local $s0 v128) (local $s1 v128) ${range(COLS / 2).map((j) => `(local $y${j} v128)`).join(' ')} ${sums}
  (local.set $sv (f64x2.splat ${get('s')}))
  (local.set $xs (i32.shl ${get('r')} ${i32(3)}))
  (local.set $ws (i32.mul ${get('V')} ${i32(es)}))
  (local.set $ys (i32.shl ${get('V')} ${i32(3)}))
  (local.set $u ${get('u0')})
  (block $udone (loop $pairs
    (br_if $udone (i32.gt_u (i32.add ${get('u')} ${i32(2)}) ${get('u1')}))
    (local.set $xa (i32.add ${get('x')} (i32.mul ${get('u')} ${get('xs')})))
    (local.set $wa (i32.add ${get('w')} (i32.mul ${get('u')} ${get('ws')})))
    ${rows(fmt, 2)}
    (local.set $u (i32.add ${get('u')} ${i32(2)}))
    (br $pairs)))
  (if (i32.lt_u ${get('u')} ${get('u1')}) (then
    (local.set $xa (i32.add ${get('x')} (i32.mul ${get('u')} ${get('xs')})))
    (local.set $wa (i32.add ${get('w')} (i32.mul ${get('u')} ${get('ws')})))
    ${rows(fmt, 1)}))
  (v128.any_true (local.get $bad)))`;
}

/** The module: its own memory (one page; the caller grows it) and each format's update. */
export function rankUpdateWat(): string {
  return `(module
(memory (export "memory") 1)
${update('f32')}
${update('bf16')}
${update('f16')}
)`;
}
