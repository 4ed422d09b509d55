/**
 * Which modules get LoRA, and which are trained in full (modules_to_save), with PEFT's matching rules:
 * a target_modules string is a regex that must match the whole module name (re.fullmatch); a list entry
 * matches a name exactly or as a `.suffix`; "all-linear" is every Linear/Conv1D except the output head.
 * exclude_modules uses the same rules. Only Linear and Conv1D can take LoRA here.
 */
import { closestNames, LoraStudioError, preview } from '../errors';
import { compilePythonRegex, matchNames } from '../util/regex';
import type { LoraConfig } from './config';
import type { Task } from '../task';
import { rankTable } from './patterns';
import type { LoraTarget, ModuleInfo } from '../protocol';

/** PEFT's shorthand for every linear layer but the output head. */
export const ALL_LINEAR = 'all-linear';
/** The seq-cls head PEFT adds to modules_to_save for SEQ_CLS. */
export const SEQ_CLS_HEAD = 'score';

export const FAN_IN_FAN_OUT_WARNING = 'fan_in_fan_out is set to False but the target module is `Conv1D`. Setting fan_in_fan_out to True.';
export const FAN_IN_FAN_OUT_LINEAR_WARNING = 'fan_in_fan_out is set to True but the target module is `torch.nn.Linear`. Setting fan_in_fan_out to False.';

export interface ResolvedTargets {
  /** LoRA targets in named_modules() order, each with its own r / lora_alpha / scaling */
  targets: LoraTarget[];
  /** module names trained in full and saved with the adapter (PEFT's ModulesToSaveWrapper) */
  modules_to_save: string[];
  warnings: string[];
  /** for a list spec: entry → the module names it matched; for a regex or "all-linear": the spec → names */
  matched_by_entry?: Record<string, string[]>;
  /** the effective fan_in_fan_out (forced true when a Conv1D is targeted, as PEFT does) */
  fan_in_fan_out: boolean;
}

export interface ResolveOptions {
  /** modules_to_save came from the user (not from defaults or an adapter_config.json); default: it is non-null */
  explicitModulesToSave?: boolean;
  /** the file the LoRA settings came from, named in errors */
  file?: string;
  /** what target_modules: null means: PEFT's default for the model's family (ModelFamily.defaultTargetModules) */
  defaults?: TargetDefaults;
}

export interface TargetDefaults {
  model_type: string;
  target_modules: readonly string[];
}

/** The family's default target_modules; a caller that may pass target_modules: null must say what it means. */
export function defaultTargets(defaults: TargetDefaults | undefined): string[] {
  if (!defaults) throw new Error('internal: target_modules is null and the caller gave no family default');
  return [...defaults.target_modules];
}

const LORA_TYPES = new Set(['Linear', 'Conv1D']);
const lastName = (name: string) => name.slice(name.lastIndexOf('.') + 1);

export function resolveTargets(modules: ModuleInfo[], lora: LoraConfig, task: Task, opts: ResolveOptions = {}): ResolvedTargets {
  const file = opts.file;
  const warnings: string[] = [];
  const names = modules.map((m) => m.name);

  let spec = lora.target_modules;
  if (spec === null || spec === undefined) {
    spec = defaultTargets(opts.defaults);
    warnings.push(`target_modules is not set; using PEFT's default for ${opts.defaults!.model_type}: ${preview(spec)}`);
  }
  if (Array.isArray(spec) && spec.length === 0) throw new LoraStudioError('is an empty list; set target_modules (e.g. ["c_attn"] or "all-linear")', file, 'target_modules');

  // 1. target_modules against every named module
  const matched = new Set<string>();
  const matchedByEntry: Record<string, string[]> = {};
  if (typeof spec === 'string' && spec.toLowerCase() === ALL_LINEAR) {
    const hit = modules.filter((m) => LORA_TYPES.has(m.type) && !m.is_head).map((m) => m.name);
    hit.forEach((n) => matched.add(n));
    matchedByEntry[spec] = hit;
  } else if (typeof spec === 'string') {
    const hit = regexMatches(spec, names, file, 'target_modules');
    hit.forEach((n) => matched.add(n));
    matchedByEntry[spec] = hit;
  } else {
    for (const entry of spec) {
      const hit = names.filter((n) => listEntryMatches(entry, n));
      hit.forEach((n) => matched.add(n));
      matchedByEntry[entry] = hit;
    }
  }
  if (matched.size === 0) {
    throw new LoraStudioError(`${preview(spec)} matched no module of ${modules[0]?.type ?? 'the model'}. ${noMatchHint(spec, modules, file)}`, file, 'target_modules');
  }
  if (Array.isArray(spec)) {
    const none = spec.filter((entry) => matchedByEntry[entry].length === 0);
    for (const entry of none.slice(0, MAX_HINTS)) warnings.push(`target_modules entry ${preview(entry)} matched no module. ${suggest(entry, modules)}`);
    if (none.length > MAX_HINTS) warnings.push(`… and ${none.length - MAX_HINTS} more target_modules entries matched no module`);
  }

  // 2. exclude_modules
  const exclude = lora.exclude_modules;
  if (exclude !== null && exclude !== undefined && !(Array.isArray(exclude) && exclude.length === 0)) {
    const candidates = [...matched];
    const excluded = typeof exclude === 'string'
      ? regexMatches(exclude, candidates, file, 'exclude_modules')
      : candidates.filter((n) => exclude.some((e) => listEntryMatches(e, n)));
    for (const n of excluded) matched.delete(n);
    if (excluded.length === 0) warnings.push(`exclude_modules ${preview(exclude)} removed no targeted module`);
    if (matched.size === 0) {
      throw new LoraStudioError(`no modules are left for LoRA: exclude_modules ${preview(exclude)} removes every module that target_modules ${preview(spec)} matches`, file, 'exclude_modules');
    }
    for (const k of Object.keys(matchedByEntry)) matchedByEntry[k] = matchedByEntry[k].filter((n) => matched.has(n));
  }

  // 3. only Linear and Conv1D take LoRA (PEFT raises for anything else)
  const chosen = modules.filter((m) => matched.has(m.name));
  const bad = chosen.filter((m) => !LORA_TYPES.has(m.type));
  if (bad.length > 0) {
    const list = bad.slice(0, 5).map((m) => `${m.name || '(root)'} (${m.type})`).join(', ') + (bad.length > 5 ? `, and ${bad.length - 5} more` : '');
    const first = bad[0].name;
    const inside = modules.filter((m) => LORA_TYPES.has(m.type) && (first === '' || m.name.startsWith(`${first}.`))).map((m) => m.name.slice(first ? first.length + 1 : 0));
    const hint = inside.length > 0 && inside.length <= 8 ? ` Its Linear/Conv1D submodules are: ${inside.join(', ')}.` : '';
    throw new LoraStudioError(
      `Target module ${list} is not supported. Currently, only the following modules are supported: \`torch.nn.Linear\`, \`transformers.pytorch_utils.Conv1D\`.${hint} ` +
        'Narrow target_modules to Linear/Conv1D modules (in GPT-2: c_attn, c_proj, c_fc; the head lm_head/score is Linear).',
      file,
      'target_modules',
    );
  }

  // 4. fan_in_fan_out: GPT-2's Conv1D stores [in, out]; PEFT forces fan_in_fan_out=True for it
  let fan_in_fan_out = lora.fan_in_fan_out;
  if (!fan_in_fan_out && chosen.some((m) => m.type === 'Conv1D')) {
    warnings.push(FAN_IN_FAN_OUT_WARNING);
    fan_in_fan_out = true;
  }
  if (lora.fan_in_fan_out && chosen.some((m) => m.type === 'Linear')) {
    // PEFT warns per nn.Linear target; the Linear keeps its own [out, in] layout either way.
    warnings.push(FAN_IN_FAN_OUT_LINEAR_WARNING);
  }

  const ranks = rankTable(lora, chosen.map((m) => m.name), { file });
  const targets: LoraTarget[] = chosen.map((m) => ({
    name: m.name,
    type: m.type as 'Linear' | 'Conv1D',
    in_features: m.in_features ?? 0,
    out_features: m.out_features ?? 0,
    ...ranks.byName.get(m.name)!,
  }));
  for (const { field, key } of ranks.unused.slice(0, MAX_HINTS)) warnings.push(`${field} key ${preview(key)} matches no targeted module`);
  if (ranks.unused.length > MAX_HINTS) warnings.push(`… and ${ranks.unused.length - MAX_HINTS} more rank_pattern / alpha_pattern keys match no targeted module`);

  // 5. modules_to_save
  const modules_to_save = resolveModulesToSave(modules, lora, task, opts, warnings);
  for (const t of targets) {
    const owner = modules_to_save.find((s) => t.name === s || t.name.startsWith(`${s}.`));
    if (owner !== undefined) {
      throw new LoraStudioError(
        `${t.name} is both a LoRA target and in modules_to_save (${owner}); a module is either adapted with LoRA or trained in full, not both`,
        file,
        'modules_to_save',
      );
    }
  }

  return { targets, modules_to_save, warnings, matched_by_entry: matchedByEntry, fan_in_fan_out };
}

/** PEFT's list rule: the entry is the whole name, or its `.suffix`. */
export function listEntryMatches(entry: string, name: string): boolean {
  return name === entry || name.endsWith(`.${entry}`);
}

/** Warnings and hints listed one by one before the rest are summed up (a list may hold thousands of entries). */
const MAX_HINTS = 10;

/**
 * The names a user regex matches as a whole (re.fullmatch, Python spelling), or anywhere (re.search, for hints):
 * one batched, time-bounded match, so a catastrophic pattern fails in about two seconds naming `file` and `field`.
 */
function regexMatches(pattern: string, names: string[], file: string | undefined, field: string, anchor: 'full' | 'search' = 'full'): string[] {
  let re: RegExp;
  if (anchor === 'full') {
    re = compilePythonRegex(pattern, 'full', { file, field });
  } else {
    const flags = /^\(\?[aiLmsux]+\)/.exec(pattern)?.[0] ?? ''; // a leading inline flag group stays in front
    re = compilePythonRegex(`${flags}.*(?:${pattern.slice(flags.length)}).*`, 'full', { file, field });
  }
  const hits = matchNames(re, names, { file, field, pattern });
  return names.filter((_, i) => hits[i]);
}

function resolveModulesToSave(modules: ModuleInfo[], lora: LoraConfig, task: Task, opts: ResolveOptions, warnings: string[]): string[] {
  const given = lora.modules_to_save;
  const explicit = given !== null && given !== undefined && (opts.explicitModulesToSave ?? true);
  let entries: string[];
  if (given === null || given === undefined) {
    entries = task === 'seq-cls' ? [SEQ_CLS_HEAD] : [];
  } else if (!explicit && task === 'seq-cls' && !given.includes(SEQ_CLS_HEAD)) {
    // PEFT's PeftModelForSequenceClassification always adds the classifier head
    entries = [...given, SEQ_CLS_HEAD];
  } else {
    entries = [...given];
  }

  const picked: string[] = [];
  for (const entry of entries) {
    const hit = modules.filter((m) => m.name !== '' && listEntryMatches(entry, m.name)).map((m) => m.name);
    if (hit.length === 0) {
      warnings.push(`modules_to_save entry ${preview(entry)} matched no module. ${entries.length <= MAX_HINTS ? suggest(entry, modules) : ''}`.trimEnd());
      continue;
    }
    for (const n of hit) if (!picked.includes(n)) picked.push(n);
  }
  // A module inside another saved module is already covered by the outer copy.
  const outer = picked.filter((n) => !picked.some((o) => o !== n && n.startsWith(`${o}.`)));
  for (const n of picked) if (!outer.includes(n)) warnings.push(`modules_to_save: ${n} is inside another saved module; the outer one covers it`);
  const order = new Map(modules.map((m, i) => [m.name, i]));
  outer.sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0));

  if (task === 'seq-cls' && explicit && !outer.includes(SEQ_CLS_HEAD)) {
    warnings.push(
      `modules_to_save ${preview(given)} leaves out \`${SEQ_CLS_HEAD}\`: the classification head is neither trained nor saved, ` +
        'so it stays randomly initialised and frozen. Add "score" to modules_to_save (PEFT adds it for SEQ_CLS).',
    );
  }
  return outer;
}

/** "did you mean" text over full module names and their last components. */
function suggest(entry: string, modules: ModuleInfo[]): string {
  const example = new Map<string, string>();
  // edit distances cost |entry| × |name|: no "did you mean" for an entry far longer than any module name
  const near = entry.length <= 200;
  for (const m of modules) {
    if (m.name === '') continue;
    const last = lastName(m.name);
    if (!example.has(last)) example.set(last, m.name);
  }
  const candidates = new Set<string>([...example.keys(), ...modules.map((m) => m.name).filter((n) => n !== '')]);
  const close = near ? closestNames(entry, candidates, 4) : [];
  if (close.length === 0) {
    return `Module names look like ${[...example.values()].filter((n) => /\.h\.0\./.test(n) || !/\.h\.\d+/.test(n)).slice(0, 6).join(', ')}, …`;
  }
  const shown = close.map((c) => (c.includes('.') || example.get(c) === c ? c : `${c} (e.g. ${example.get(c)})`));
  return `Did you mean: ${shown.join(', ')}?`;
}

function noMatchHint(spec: string | string[], modules: ModuleInfo[], file: string | undefined): string {
  if (Array.isArray(spec)) {
    const shown = spec.slice(0, MAX_HINTS).map((e) => `${preview(e)}: ${suggest(e, modules)}`).join(' ');
    return `A list entry matches a module name exactly or as its last dotted part(s). ${shown}${spec.length > MAX_HINTS ? ' …' : ''}`;
  }
  const partial = regexMatches(spec, modules.map((m) => m.name).filter((n) => n !== ''), file, 'target_modules', 'search');
  let hint = 'A string is a regular expression that must match the WHOLE module name (re.fullmatch). ';
  if (partial.length > 0) {
    hint += `It matches part of ${partial.length} name(s), e.g. ${partial.slice(0, 3).join(', ')}; write ${preview(`.*${spec}`)} or the list ${preview([spec])} to match by suffix. `;
  }
  return hint + suggest(spec, modules);
}
