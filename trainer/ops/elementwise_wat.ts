/**
 * WebAssembly text of the fused elementwise kernels that heap_kernels.ts runs on the wasm backend, in f32x4 SIMD
 * (the same module as the GEMM, so they share its import of the tfjs heap). Addresses are byte offsets of
 * float32 arrays; lengths count floats. Same formulas as heap_kernels.ts's JavaScript versions, in float32
 * (those sum rows in float64; the results agree to ~1e-6 relative):
 * - gelu_arg(x, out, n): out = 2u = 2·√(2/π)·(x + 0.044715·x³)
 * - gelu_out(x, s, out, n): out = x·s
 * - gelu_grad(x, s, dy, out, n): out = dy·(s + x·s·(1 − s)·2u′), 2u′ = 2·√(2/π)·(1 + 3·0.044715·x²)
 * - layer_norm(x, gamma, beta, y, xhat, rstd, rows, C, eps): per row, x̂ = (x − mean)/σ, y = x̂·γ + β, rstd = 1/σ
 * - layer_norm_grad(dy, xhat, rstd, gamma, dx, rows, C): dx = (1/σ)·(g − mean(g) − x̂·mean(g·x̂)), g = dy·γ
 * The layer norms need C % 4 = 0 (the caller falls back to JavaScript otherwise).
 */

const TWO_C = 2 * Math.sqrt(2 / Math.PI);
const K3 = 0.044715;

const get = (v: string) => `(local.get $${v})`;
const f32 = (x: number) => `(f32.const ${x})`;
const splat = (x: number) => `(f32x4.splat ${f32(x)})`;
const at = (p: string, i = 'i') => `(i32.add ${get(p)} ${get(i)})`;

/**
 * A map over n floats: `vec` and `scalar` give the output value from the named inputs' values (locals $v_<name>
 * as v128 or f32), four at a time, then one at a time for the tail.
 */
function map(name: string, inputs: string[], vec: string, scalar: string): string {
  return `
(func (export "${name}") ${inputs.map((p) => `(param $${p} i32)`).join(' ')} (param $out i32) (param $n i32)
  (local $i i32) (local $end i32) (local $end4 i32)
  ${inputs.map((p) => `(local $v_${p} v128) (local $s_${p} f32)`).join(' ')}
  (local.set $end (i32.shl ${get('n')} (i32.const 2)))
  (local.set $end4 (i32.and ${get('end')} (i32.const -16)))
  (block $vdone (loop $vstep
    (br_if $vdone (i32.ge_u ${get('i')} ${get('end4')}))
    ${inputs.map((p) => `(local.set $v_${p} (v128.load ${at(p)}))`).join(' ')}
    (v128.store ${at('out')} ${vec})
    (local.set $i (i32.add ${get('i')} (i32.const 16)))
    (br $vstep)))
  (block $sdone (loop $sstep
    (br_if $sdone (i32.ge_u ${get('i')} ${get('end')}))
    ${inputs.map((p) => `(local.set $s_${p} (f32.load ${at(p)}))`).join(' ')}
    (f32.store ${at('out')} ${scalar})
    (local.set $i (i32.add ${get('i')} (i32.const 4)))
    (br $sstep))))`;
}

/** Both forms of one expression, written once over an op table. */
function both(expr: (o: { add: (a: string, b: string) => string; sub: (a: string, b: string) => string; mul: (a: string, b: string) => string; k: (x: number) => string; v: (p: string) => string }) => string): [string, string] {
  const ops = (t: 'f32x4' | 'f32') => ({
    add: (a: string, b: string) => `(${t}.add ${a} ${b})`,
    sub: (a: string, b: string) => `(${t}.sub ${a} ${b})`,
    mul: (a: string, b: string) => `(${t}.mul ${a} ${b})`,
    k: t === 'f32x4' ? splat : f32,
    v: (p: string) => get(`${t === 'f32x4' ? 'v' : 's'}_${p}`),
  });
  return [expr(ops('f32x4')), expr(ops('f32'))];
}

const geluArg = both(({ add, mul, k, v }) => mul(k(TWO_C), add(v('x'), mul(k(K3), mul(mul(v('x'), v('x')), v('x'))))));
const geluOut = both(({ mul, v }) => mul(v('x'), v('s')));
const geluGrad = both(({ add, sub, mul, k, v }) =>
  mul(v('dy'), add(v('s'), mul(mul(mul(v('x'), v('s')), sub(k(1), v('s'))), mul(k(TWO_C), add(k(1), mul(k(3 * K3), mul(v('x'), v('x')))))))));

/** Σ of a v128's four lanes. */
const hsum = (v: string) => `(f32.add (f32.add (f32x4.extract_lane 0 ${v}) (f32x4.extract_lane 1 ${v})) (f32.add (f32x4.extract_lane 2 ${v}) (f32x4.extract_lane 3 ${v})))`;

/** A loop over one row's C floats, four at a time ($j: byte offset in the row). */
const rowLoop = (label: string, body: string) => `
    (local.set $j (i32.const 0))
    (loop $${label}
      ${body}
      (local.set $j (i32.add ${get('j')} (i32.const 16)))
      (br_if $${label} (i32.lt_u ${get('j')} ${get('rowBytes')})))`;

const layerNorm = `
(func (export "layer_norm") (param $x i32) (param $gamma i32) (param $beta i32) (param $y i32) (param $xhat i32) (param $rstd i32)
    (param $rows i32) (param $C i32) (param $eps f32)
  (local $r i32) (local $j i32) (local $rowBytes i32) (local $acc v128) (local $d v128) (local $mean v128) (local $rs v128) (local $h v128) (local $s f32)
  (local.set $rowBytes (i32.shl ${get('C')} (i32.const 2)))
  (block $done (loop $row
    (br_if $done (i32.ge_u ${get('r')} ${get('rows')}))
    (local.set $acc (v128.const i32x4 0 0 0 0))
    ${rowLoop('sum', `(local.set $acc (f32x4.add ${get('acc')} (v128.load ${at('x', 'j')})))`)}
    (local.set $mean (f32x4.splat (f32.div ${hsum(get('acc'))} (f32.convert_i32_u ${get('C')}))))
    (local.set $acc (v128.const i32x4 0 0 0 0))
    ${rowLoop('sq', `(local.set $d (f32x4.sub (v128.load ${at('x', 'j')}) ${get('mean')})) (local.set $acc (f32x4.add ${get('acc')} (f32x4.mul ${get('d')} ${get('d')})))`)}
    (local.set $s (f32.div (f32.const 1) (f32.sqrt (f32.add (f32.div ${hsum(get('acc'))} (f32.convert_i32_u ${get('C')})) ${get('eps')}))))
    (f32.store (i32.add ${get('rstd')} (i32.shl ${get('r')} (i32.const 2))) ${get('s')})
    (local.set $rs (f32x4.splat ${get('s')}))
    ${rowLoop('norm', `(local.set $h (f32x4.mul (f32x4.sub (v128.load ${at('x', 'j')}) ${get('mean')}) ${get('rs')}))
      (v128.store ${at('xhat', 'j')} ${get('h')})
      (v128.store ${at('y', 'j')} (f32x4.add (f32x4.mul ${get('h')} (v128.load (i32.add ${get('gamma')} ${get('j')}))) (v128.load (i32.add ${get('beta')} ${get('j')}))))`)}
    (local.set $x (i32.add ${get('x')} ${get('rowBytes')}))
    (local.set $y (i32.add ${get('y')} ${get('rowBytes')}))
    (local.set $xhat (i32.add ${get('xhat')} ${get('rowBytes')}))
    (local.set $r (i32.add ${get('r')} (i32.const 1)))
    (br $row))))`;

const layerNormGrad = `
(func (export "layer_norm_grad") (param $dy i32) (param $xhat i32) (param $rstd i32) (param $gamma i32) (param $dx i32) (param $rows i32) (param $C i32)
  (local $r i32) (local $j i32) (local $rowBytes i32) (local $sg v128) (local $sgx v128) (local $g v128) (local $mg v128) (local $mgx v128) (local $rs v128)
  (local.set $rowBytes (i32.shl ${get('C')} (i32.const 2)))
  (block $done (loop $row
    (br_if $done (i32.ge_u ${get('r')} ${get('rows')}))
    (local.set $sg (v128.const i32x4 0 0 0 0))
    (local.set $sgx (v128.const i32x4 0 0 0 0))
    ${rowLoop('sums', `(local.set $g (f32x4.mul (v128.load ${at('dy', 'j')}) (v128.load (i32.add ${get('gamma')} ${get('j')}))))
      (local.set $sg (f32x4.add ${get('sg')} ${get('g')}))
      (local.set $sgx (f32x4.add ${get('sgx')} (f32x4.mul ${get('g')} (v128.load ${at('xhat', 'j')}))))`)}
    (local.set $mg (f32x4.splat (f32.div ${hsum(get('sg'))} (f32.convert_i32_u ${get('C')}))))
    (local.set $mgx (f32x4.splat (f32.div ${hsum(get('sgx'))} (f32.convert_i32_u ${get('C')}))))
    (local.set $rs (v128.load32_splat (i32.add ${get('rstd')} (i32.shl ${get('r')} (i32.const 2)))))
    ${rowLoop('dx', `(local.set $g (f32x4.mul (v128.load ${at('dy', 'j')}) (v128.load (i32.add ${get('gamma')} ${get('j')}))))
      (v128.store ${at('dx', 'j')} (f32x4.mul ${get('rs')} (f32x4.sub (f32x4.sub ${get('g')} ${get('mg')}) (f32x4.mul (v128.load ${at('xhat', 'j')}) ${get('mgx')}))))`)}
    (local.set $dy (i32.add ${get('dy')} ${get('rowBytes')}))
    (local.set $xhat (i32.add ${get('xhat')} ${get('rowBytes')}))
    (local.set $dx (i32.add ${get('dx')} ${get('rowBytes')}))
    (local.set $r (i32.add ${get('r')} (i32.const 1)))
    (br $row))))`;

/** The functions' text, to go into the GEMM's module. */
export function elementwiseWat(): string {
  return [map('gelu_arg', ['x'], ...geluArg), map('gelu_out', ['x', 's'], ...geluOut), map('gelu_grad', ['x', 's', 'dy'], ...geluGrad), layerNorm, layerNormGrad].join('\n');
}
