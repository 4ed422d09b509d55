/**
 * The text (WebAssembly text format) of the rank-r update kernel that `merge` runs on each adapted weight:
 * W[u, v] += s · Σ_k x[u, k] · y[k, v], on W as it is stored (float32 or bfloat16, rows of V elements), with x
 * [U, r] and y [r, V] in float64. Every sum is float64, starts from +0 and adds the products k in order; then
 * W + s·sum is float64 and is rounded once to float32 (and, for bfloat16, to nearest even): the arithmetic of
 * lora/merge.ts's applyDeltas, so the results are the same bits. Two columns share a f64x2 lane pair (no fused
 * multiply-add: f64x2.mul then f64x2.add round as JavaScript's * and + do); two rows and eight columns at a time
 * keep eight sums in flight, and a row or column left over goes through the same arithmetic one element at a time.
 *
 * Exports `update_f32` and `update_bf16` (w, x, y, u0, u1, V, r, s) → 1 when some value of rows u0..u1 is not
 * finite once stored (those rows are written anyway; the caller redoes the tensor to name the value), else 0, and
 * the module's own memory, which the caller grows.
 */

type RankUpdateFormat = 'f32' | 'bf16';

const ES: Record<RankUpdateFormat, number> = { f32: 4, bf16: 2 };
/** columns per step (four f64x2 sums per row) */
const COLS = 8;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const get = (v: string) => `(local.get $${v})`;
const i32 = (n: number) => `(i32.const ${n})`;

/** Two stored elements at `addr` (+ offset `off` bytes) as f64x2. */
function load2(fmt: RankUpdateFormat, addr: string, off: number): string {
  return fmt === 'f32'
    ? `(f64x2.promote_low_f32x4 (v128.load64_zero offset=${off} ${addr}))`
    : `(f64x2.promote_low_f32x4 (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load32_zero offset=${off} ${addr})) ${i32(16)}))`;
}

/**
 * Stores two float64 results (lanes 0, 1 of `$t`) at `addr` + `off` in the stored format and ORs their
 * "not finite once stored" lanes into `$bad`.
 */
function store2(fmt: RankUpdateFormat, addr: string, off: number): string {
  if (fmt === 'f32') {
    return `(local.set $f (f32x4.demote_f64x2_zero (local.get $t)))
      (v128.store64_lane offset=${off} 0 ${addr} (local.get $f))
      (local.set $bad (v128.or (local.get $bad) (i32x4.eq (v128.and (local.get $f) (local.get $expMask)) (local.get $expMask))))`;
  }
  return `(local.set $f (f32x4.demote_f64x2_zero (local.get $t)))
      (local.set $f (i32x4.shr_u (i32x4.add (i32x4.add (local.get $f) (local.get $round)) (v128.and (i32x4.shr_u (local.get $f) ${i32(16)}) (local.get $one))) ${i32(16)}))
      (v128.store32_lane offset=${off} 0 ${addr} (i16x8.narrow_i32x4_u (local.get $f) (local.get $f)))
      (local.set $bad (v128.or (local.get $bad) (i32x4.eq (v128.and (local.get $f) (local.get $expMask)) (local.get $expMask))))`;
}

/** One element at `addr`, f64. */
function load1(fmt: RankUpdateFormat, addr: string): string {
  return fmt === 'f32' ? `(f64.promote_f32 (f32.load ${addr}))` : `(f64.promote_f32 (f32.reinterpret_i32 (i32.shl (i32.load16_u ${addr}) ${i32(16)})))`;
}

/** Stores the f64 `$e` at `addr` in the stored format; sets `$badS` when it is not finite once stored. */
function store1(fmt: RankUpdateFormat, addr: string): string {
  if (fmt === 'f32') {
    return `(local.set $h (i32.reinterpret_f32 (f32.demote_f64 (local.get $e))))
      (i32.store ${addr} (local.get $h))
      (local.set $badS (i32.or (local.get $badS) (i32.eq (i32.and (local.get $h) ${i32(0x7f800000)}) ${i32(0x7f800000)})))`;
  }
  return `(local.set $h (i32.reinterpret_f32 (f32.demote_f64 (local.get $e))))
      (local.set $h (i32.shr_u (i32.add (i32.add (local.get $h) ${i32(0x7fff)}) (i32.and (i32.shr_u (local.get $h) ${i32(16)}) ${i32(1)})) ${i32(16)}))
      (i32.store16 ${addr} (local.get $h))
      (local.set $badS (i32.or (local.get $badS) (i32.eq (i32.and (local.get $h) ${i32(0x7f80)}) ${i32(0x7f80)})))`;
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
        return range(COLS / 2).map((j) => `(local.set $t (f64x2.add ${load2(fmt, addr, 2 * es * j)} (f64x2.mul (local.get $sv) (local.get ${acc(row, j)}))))
      ${store2(fmt, addr, 2 * es * j)}`).join('\n      ');
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
      (local.set $e (f64.add ${load1(fmt, get('wp'))} (f64.mul ${get('s')} (local.get $e))))
      ${store1(fmt, get('wp'))}`).join('')}
      (local.set $v (i32.add ${get('v')} ${i32(1)}))
      (br $tail)))`;
}

function update(fmt: RankUpdateFormat): string {
  const es = ES[fmt];
  const sums = range(2).flatMap((row) => range(COLS / 2).map((j) => `(local $c${row}_${j} v128)`)).join(' ');
  return `
(func (export "update_${fmt}") (param $w i32) (param $x i32) (param $y i32) (param $u0 i32) (param $u1 i32) (param $V i32) (param $r i32) (param $s f64) (result i32)
  (local $u i32) (local $v i32) (local $k i32) (local $xa i32) (local $xp i32) (local $wa i32) (local $wp i32) (local $yp i32)
  (local $xs i32) (local $ws i32) (local $ys i32) (local $h i32) (local $badS i32) (local $e f64)
  (local $zero v128) (local $sv v128) (local $t v128) (local $f v128) (local $bad v128) (local $expMask v128) (local $round v128) (local $one v128)
  (local $s0 v128) (local $s1 v128) ${range(COLS / 2).map((j) => `(local $y${j} v128)`).join(' ')} ${sums}
  (local.set $sv (f64x2.splat ${get('s')}))
  (local.set $expMask (i32x4.splat ${i32(fmt === 'f32' ? 0x7f800000 : 0x7f80)}))
  (local.set $round (i32x4.splat ${i32(0x7fff)}))
  (local.set $one (i32x4.splat ${i32(1)}))
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
  (i32.or ${get('badS')} (v128.any_true (local.get $bad))))`;
}

/** The module: its own memory (one page; the caller grows it) and both formats' update. */
export function rankUpdateWat(): string {
  return `(module
(memory (export "memory") 1)
${update('f32')}
${update('bf16')}
)`;
}
