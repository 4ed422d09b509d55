/**
 * What a target_modules value selects in a module table, for a picker that shows the selection instead of
 * refusing it (the editor's Modules view): the Linear/Conv1D modules it matches, the entries that matched nothing,
 * and the modules it matched that cannot take LoRA. PEFT's rules, as resolveTargets applies them: a string is a
 * regex matched against the whole name (time-bounded, see util/regex.ts), a list entry matches a name exactly or as
 * its `.suffix`, "all-linear" is every Linear/Conv1D but the output head, null is the model's default.
 */
import { compilePythonRegex, matchNames } from '../util/regex';
import { ALL_LINEAR, defaultTargets, listEntryMatches, type TargetDefaults } from './targets';
import type { ModuleInfo, SelectResult } from '../protocol';

const LORA_TYPES: ReadonlySet<string> = new Set(['Linear', 'Conv1D']);

export function selectTargets(
  modules: readonly ModuleInfo[],
  spec: string | string[] | null | undefined,
  where: { file?: string; field?: string } = {},
  defaults?: TargetDefaults,
): SelectResult {
  const named = modules.filter((m) => m.name !== '');
  const adaptable = (m: ModuleInfo) => LORA_TYPES.has(m.type);
  const field = where.field ?? 'target_modules';
  if (spec === null || spec === undefined) spec = defaultTargets(defaults);
  if (typeof spec === 'string' && spec.toLowerCase() === ALL_LINEAR) {
    return { selected: named.filter((m) => adaptable(m) && !m.is_head).map((m) => m.name), unmatched: [], not_adaptable: [] };
  }
  const hit = new Set<string>();
  const unmatched: string[] = [];
  if (typeof spec === 'string') {
    const re = compilePythonRegex(spec, 'full', { file: where.file, field });
    const matched = matchNames(re, named.map((m) => m.name), { file: where.file, field, pattern: spec });
    named.forEach((m, i) => matched[i] && hit.add(m.name));
  } else {
    for (const entry of spec) {
      const before = hit.size;
      let any = false;
      for (const m of named) {
        if (!listEntryMatches(entry, m.name)) continue;
        any = true;
        hit.add(m.name);
      }
      if (!any && hit.size === before) unmatched.push(entry);
    }
  }
  const selected = named.filter((m) => hit.has(m.name) && adaptable(m)).map((m) => m.name);
  const not_adaptable = named.filter((m) => hit.has(m.name) && !adaptable(m)).map((m) => m.name);
  if (typeof spec === 'string') return { selected, regex: spec, unmatched: selected.length === 0 ? [spec] : [], not_adaptable };
  return { selected, unmatched, not_adaptable };
}
