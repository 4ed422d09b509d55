/**
 * PEFT's rank_pattern / alpha_pattern lookup: a pattern key applies to a module when the module name
 * ends with it at a dot boundary (`(.*\.)?KEY$`), first matching key wins. Also the LoRA scaling rule.
 *
 * Pattern keys are user-written regexes: each is compiled once (Python spelling, syntax errors name the field)
 * and matched against all the module names in one time-bounded `matchNames` call, so a catastrophic key such as
 * `(.*)*X` fails in about two seconds instead of hanging.
 */
import { LoraStudioError } from '../errors';
import { compilePythonRegex, matchNames } from '../util/regex';
import type { LoraConfig } from './config';

export type PatternField = 'rank_pattern' | 'alpha_pattern';
export type RankSource = Pick<LoraConfig, 'r' | 'lora_alpha' | 'use_rslora' | 'rank_pattern' | 'alpha_pattern'>;

/** r, lora_alpha and scaling of one module. */
export interface ModuleRank {
  r: number;
  lora_alpha: number;
  /** lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora */
  scaling: number;
}

export interface RankTable {
  /** every name asked for → its rank and scaling */
  byName: Map<string, ModuleRank>;
  /** pattern keys that matched none of the names */
  unused: Array<{ field: PatternField; key: string }>;
}

/**
 * Real configs list a key per module at most (PEFT's EVA init writes one per target: 192 for an all-linear
 * GPT-2 XL). A key with regex syntax costs a worker thread (~50–100 ms), so fewer of those are allowed.
 */
export const MAX_PATTERN_KEYS = 10_000;
export const MAX_REGEX_PATTERN_KEYS = 64;

/**
 * A key that is a plain dotted name (`c_attn`, `h.0.attn.c_attn`, `h\.0\.attn`): letters, digits, `_`, `-`, `.`
 * and `\.` only. Anchored as `^(?:.*\.)?(?:KEY)$` it has no repetition, alternation or group of its own, so
 * matching it is linear in the name and cannot backtrack catastrophically; such keys (the common case, often
 * hundreds of them) are matched in-process. Every other key goes through matchNames' time-bounded worker.
 */
const PLAIN_KEY = /^(?:[A-Za-z0-9_-]|\\\.|\.)*$/;

/** The field a pattern key is reported under: `rank_pattern.<key>`, the key cut so a huge one cannot flood the message. */
export const patternKeyField = (field: PatternField, key: string) => `${field}.${key.length > 60 ? `${key.slice(0, 59)}…` : key}`;

/** Compiles every key of both patterns (PEFT's suffix anchoring); a syntax error names `file` and the key. */
export function compilePatternKeys(lora: Pick<RankSource, 'rank_pattern' | 'alpha_pattern'>, file?: string): Map<PatternField, Array<[string, RegExp, number]>> {
  const out = new Map<PatternField, Array<[string, RegExp, number]>>();
  for (const field of ['rank_pattern', 'alpha_pattern'] as const) {
    const entries = Object.entries(lora[field] ?? {});
    if (entries.length > MAX_PATTERN_KEYS) throw new LoraStudioError(`has ${entries.length} keys; at most ${MAX_PATTERN_KEYS} are supported`, file, field);
    const regexKeys = entries.filter(([key]) => !PLAIN_KEY.test(key)).length;
    if (regexKeys > MAX_REGEX_PATTERN_KEYS) {
      throw new LoraStudioError(
        `has ${regexKeys} keys with regex syntax; at most ${MAX_REGEX_PATTERN_KEYS} are supported (plain module names, e.g. "h.0.attn.c_attn", are not limited)`,
        file, field);
    }
    out.set(field, entries.map(([key, value]) => [key, compilePythonRegex(key, 'suffix', { file, field: patternKeyField(field, key) }), value]));
  }
  return out;
}

/**
 * r, lora_alpha and scaling for every name: rank_pattern / alpha_pattern (first matching key wins) over r and
 * lora_alpha. One batched, time-bounded match per key; errors name `where.file` and the key.
 */
export function rankTable(lora: RankSource, names: readonly string[], where: { file?: string } = {}): RankTable {
  const compiled = compilePatternKeys(lora, where.file);
  const unused: RankTable['unused'] = [];
  const pick = (field: PatternField): Map<string, number> => {
    const chosen = new Map<string, number>();
    for (const [key, re, value] of compiled.get(field)!) {
      const hits = PLAIN_KEY.test(key) ? names.map((n) => re.test(n)) : matchNames(re, names, { file: where.file, field: patternKeyField(field, key), pattern: key });
      let any = false;
      hits.forEach((hit, i) => {
        if (!hit) return;
        any = true;
        if (!chosen.has(names[i])) chosen.set(names[i], value);
      });
      if (!any) unused.push({ field, key });
    }
    return chosen;
  };
  const ranks = pick('rank_pattern');
  const alphas = pick('alpha_pattern');
  const byName = new Map<string, ModuleRank>();
  for (const name of names) {
    const r = ranks.get(name) ?? lora.r;
    const lora_alpha = alphas.get(name) ?? lora.lora_alpha;
    byName.set(name, { r, lora_alpha, scaling: lora.use_rslora ? lora_alpha / Math.sqrt(r) : lora_alpha / r });
  }
  return { byName, unused };
}

/** r, lora_alpha and scaling for one module (rankTable for a single name; callers with many names use rankTable). */
export function rankAndScaling(lora: RankSource, moduleName: string): ModuleRank {
  return rankTable(lora, [moduleName]).byName.get(moduleName)!;
}
