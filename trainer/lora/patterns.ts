/**
 * PEFT's rank_pattern / alpha_pattern lookup: a pattern key applies to a module when the module name
 * ends with it at a dot boundary (`(.*\.)?KEY$`), first matching key wins. Also the LoRA scaling rule.
 */
import type { LoraConfig } from './config';

export function patternValue(pattern: Record<string, number>, moduleName: string): number | undefined {
  for (const key of Object.keys(pattern)) {
    if (new RegExp(`^(.*\\.)?(?:${key})$`).test(moduleName)) return pattern[key];
  }
  return undefined;
}

/** r, lora_alpha and scaling for one module: lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora. */
export function rankAndScaling(
  lora: Pick<LoraConfig, 'r' | 'lora_alpha' | 'use_rslora' | 'rank_pattern' | 'alpha_pattern'>,
  moduleName: string,
): { r: number; lora_alpha: number; scaling: number } {
  const r = patternValue(lora.rank_pattern ?? {}, moduleName) ?? lora.r;
  const lora_alpha = patternValue(lora.alpha_pattern ?? {}, moduleName) ?? lora.lora_alpha;
  return { r, lora_alpha, scaling: lora.use_rslora ? lora_alpha / Math.sqrt(r) : lora_alpha / r };
}
