/**
 * The parameter counts PEFT's `print_trainable_parameters()` prints for a LoRA model, and that line itself:
 * `trainable params: 294,912 || all params: 124,734,720 || trainable%: 0.2364`.
 */
import type { LoraConfig } from './config';
import type { LoraTarget, ModuleInfo } from '../protocol';

export interface ParamCounts {
  trainable_params: number;
  all_params: number;
  line: string;
}

/**
 * all params = the base model's parameters once (the tied lm_head is not counted twice, as
 * `named_parameters()` dedupes it) + the LoRA factors (r * (in + out) per target) + one full copy of each
 * modules_to_save module: PEFT's ModulesToSaveWrapper keeps the frozen original AND a trainable copy, and
 * counts both. Trainable = LoRA factors + those copies + the biases that `bias` unfreezes
 * ('all': every base bias outside modules_to_save, LayerNorm biases included; 'lora_only': the targets' biases).
 */
export function countParams(modules: ModuleInfo[], targets: LoraTarget[], modules_to_save: string[], bias: LoraConfig['bias']): ParamCounts {
  let base = 0;
  for (const m of modules) base += m.params;

  let lora = 0;
  for (const t of targets) lora += t.r * (t.in_features + t.out_features);

  const inSaved = (name: string) => modules_to_save.some((s) => name === s || name.startsWith(`${s}.`));
  let copies = 0;
  for (const m of modules) if (inSaved(m.name)) copies += copyParams(m);

  let biases = 0;
  if (bias === 'all') {
    for (const m of modules) if (!inSaved(m.name)) biases += biasParams(m);
  } else if (bias === 'lora_only') {
    const targeted = new Set(targets.map((t) => t.name));
    for (const m of modules) if (targeted.has(m.name)) biases += biasParams(m);
  }

  const trainable_params = lora + copies + biases;
  const all_params = base + lora + copies;
  return { trainable_params, all_params, line: peftLine(trainable_params, all_params) };
}

/** The exact text of PEFT's print_trainable_parameters (`{:,d}` and `{:.4f}`). */
export function peftLine(trainable: number, all: number): string {
  const pct = all === 0 ? 0 : (100 * trainable) / all;
  return `trainable params: ${thousands(trainable)} || all params: ${thousands(all)} || trainable%: ${formatFixed4(pct)}`;
}

/** Python's `{:,d}`. */
export function thousands(n: number): string {
  const s = String(Math.trunc(Math.abs(n))).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return n < 0 ? `-${s}` : s;
}

/**
 * Python's `{:.4f}`: correctly rounded, ties to even. JavaScript's toFixed breaks exact ties upwards; an exact
 * tie at 4 decimals happens only for x = j/32 with j odd (x * 10^4 = k + 0.5 must be a binary fraction).
 */
export function formatFixed4(x: number): string {
  const scaled = x * 10_000; // exact for x = j/32 in the range we print
  if (Number.isInteger(x * 32) && (x * 32) % 2 !== 0 && Math.abs(scaled) < 2 ** 52) {
    const lo = Math.floor(scaled);
    const k = lo % 2 === 0 ? lo : lo + 1;
    return (k / 10_000).toFixed(4);
  }
  return x.toFixed(4);
}

/** Parameters in the trainable copy of a module: a tied weight is copied too (the copy is untied). */
function copyParams(m: ModuleInfo): number {
  if (m.tied_to) return (m.in_features ?? 0) * (m.out_features ?? 0);
  return m.params;
}

function biasParams(m: ModuleInfo): number {
  return m.weight_keys.some((k) => k.endsWith('.bias')) ? (m.out_features ?? 0) : 0;
}
