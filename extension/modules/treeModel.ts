/**
 * The pure logic of the Modules view (no vscode): the tree built from inspect's module table as
 * named_modules() names it, checkbox state and its propagation, the attention filter, the conversion from a
 * selection to PEFT's target_modules (a list of full names, or the active regex), and the text of the view's
 * PEFT line and warnings. extension/modules/view.ts renders it. Which modules a target_modules value selects is
 * the trainer's rule (its `select` request): the view never matches a user's pattern itself.
 */
import type { InspectModule, InspectResult } from '../../trainer/protocol';

/** The module classes that can take LoRA here (PEFT: torch.nn.Linear and transformers' Conv1D). */
export const ADAPTABLE_TYPES: ReadonlySet<string> = new Set(['Linear', 'Conv1D']);
/** The sequence-classification head that PEFT adds to modules_to_save for SEQ_CLS. */
export const SEQ_CLS_HEAD = 'score';

export interface ModuleNode {
  /** the full dotted name, as named_modules() prints it */
  name: string;
  /** the last dotted part (`c_attn`, `0`, `h`) */
  label: string;
  module: InspectModule;
  children: ModuleNode[];
  /** a Linear/Conv1D leaf: carries a checkbox */
  adaptable: boolean;
  /** parameters of this module and everything under it */
  totalParams: number;
  /** the adaptable modules at or under this node, in named_modules() order */
  adaptableNames: string[];
}

export interface ModuleTree {
  /** the root module ('' in named_modules(), e.g. GPT2LMHeadModel); its children are the view's top level */
  root: ModuleNode;
  byName: Map<string, ModuleNode>;
  /** every adaptable module name in named_modules() order */
  adaptable: string[];
}

const parentName = (name: string) => (name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : '');
const lastPart = (name: string) => name.slice(name.lastIndexOf('.') + 1);

/** Builds the tree from inspect's modules (pre-order, root ''). A module whose parent is missing hangs under its nearest ancestor. */
export function buildTree(modules: readonly InspectModule[]): ModuleTree {
  const rootModule = modules.find((m) => m.name === '') ?? ({ name: '', type: 'GPT2Model', params: 0, weight_keys: [] } as InspectModule);
  const node = (m: InspectModule): ModuleNode => ({
    name: m.name,
    label: m.name === '' ? '(root)' : lastPart(m.name),
    module: m,
    children: [],
    adaptable: ADAPTABLE_TYPES.has(m.type),
    totalParams: 0,
    adaptableNames: [],
  });
  const root = node(rootModule);
  const byName = new Map<string, ModuleNode>([['', root]]);
  for (const m of modules) {
    if (m.name === '') continue;
    const n = node(m);
    byName.set(m.name, n);
    let p = parentName(m.name);
    while (!byName.has(p)) p = parentName(p);
    byName.get(p)!.children.push(n);
  }
  const finish = (n: ModuleNode): void => {
    n.totalParams = n.module.params;
    if (n.adaptable) n.adaptableNames.push(n.name);
    for (const c of n.children) {
      finish(c);
      n.totalParams += c.totalParams;
      n.adaptableNames.push(...c.adaptableNames);
    }
  };
  finish(root);
  return { root, byName, adaptable: root.adaptableNames };
}

// ---- checkbox state ----

export interface CheckState {
  checked: boolean;
  /** adaptable modules checked / all adaptable modules at or under the node */
  k: number;
  n: number;
}

/**
 * A leaf is checked when selected. VS Code has no tri-state checkbox, so a parent is checked only when every
 * adaptable module under it is selected (and it has at least one); its description shows "k/n".
 */
export function checkState(node: ModuleNode, selected: ReadonlySet<string>): CheckState {
  const n = node.adaptableNames.length;
  let k = 0;
  for (const name of node.adaptableNames) if (selected.has(name)) k++;
  return { checked: n > 0 && k === n, k, n };
}

/** Checking a node selects every adaptable module at or under it; unchecking deselects them. Returns a new set. */
export function applyCheck(selected: ReadonlySet<string>, node: ModuleNode, checked: boolean): Set<string> {
  const out = new Set(selected);
  for (const name of node.adaptableNames) {
    if (checked) out.add(name);
    else out.delete(name);
  }
  return out;
}

/** Applies several (node, checked) changes in order, as VS Code reports them for one click. */
export function applyChecks(selected: ReadonlySet<string>, changes: ReadonlyArray<[ModuleNode, boolean]>): Set<string> {
  let out = new Set(selected);
  for (const [node, checked] of changes) out = applyCheck(out, node, checked);
  return out;
}

/** The selection in named_modules() order. */
export function orderedSelection(tree: ModuleTree, selected: ReadonlySet<string>): string[] {
  return tree.adaptable.filter((n) => selected.has(n));
}

// ---- filters ----

/** The filters the view applies itself; a regex and "all-linear" are target_modules values the trainer resolves. */
export type Filter =
  | { kind: 'regex'; pattern: string }
  | { kind: 'attention' }
  | { kind: 'all-linear' }
  | { kind: 'clear' };

/** Attention only: the Linear/Conv1D modules inside an attention block (GPT-2: attn.c_attn and attn.c_proj). */
export function attentionNames(tree: ModuleTree): string[] {
  return tree.adaptable.filter((n) => /(^|\.)(attn|attention|self_attn)\./.test(n) || /Attention$/.test(tree.byName.get(parentName(n))?.module.type ?? ''));
}

// ---- target_modules ↔ selection ----

export type TargetSpec = string | string[] | null | undefined;

/** The active regex filter and the modules the trainer said it selects. */
export interface ActiveRegex {
  pattern: string;
  selected: readonly string[];
}

/**
 * What the tree writes to lora.target_modules: the active regex when the selection is still exactly what it
 * matches, else the list of full module names in named_modules() order. An empty selection is null-free: [].
 */
export function specFromSelection(tree: ModuleTree, selected: ReadonlySet<string>, regex?: ActiveRegex): string | string[] {
  const list = orderedSelection(tree, selected);
  if (regex !== undefined && regex.selected.length === list.length && regex.selected.every((n, i) => n === list[i])) return regex.pattern;
  return list;
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A regex that matches exactly these full names: names that differ only in their layer index share one
 * alternative, `transformer\.h\.(?:0|1|2)\.attn\.c_attn`. Used to seed the regex filter from a list.
 */
export function regexFromList(names: readonly string[]): string {
  const groups = new Map<string, string[]>();
  const order: string[] = [];
  for (const name of names) {
    const m = /^(.*?\.)(\d+)(\..*)?$/.exec(name);
    const key = m ? `${m[1]}\u0000${m[3] ?? ''}` : `\u0001${name}`;
    if (!groups.has(key)) {
      groups.set(key, []);
      order.push(key);
    }
    groups.get(key)!.push(m ? m[2] : name);
  }
  const alts = order.map((key) => {
    const items = groups.get(key)!;
    if (key.startsWith('\u0001')) return escapeRegex(items[0]);
    const [head, tail] = key.split('\u0000');
    const idx = items.length === 1 ? items[0] : `(?:${items.join('|')})`;
    return `${escapeRegex(head)}${idx}${escapeRegex(tail)}`;
  });
  return alts.length === 1 ? alts[0] : alts.join('|');
}

/** Whether two target specs say the same thing, written the same way (to skip rewriting an unchanged config). */
export function sameSpec(a: TargetSpec, b: TargetSpec): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

// ---- node text ----

/** Python's `{:,d}`. */
export function thousands(n: number): string {
  return String(Math.trunc(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** The shape as `in→out` for Linear/Conv1D, `num×dim` for Embedding, `[dim]` for LayerNorm, else ''. */
export function shapeText(m: InspectModule): string {
  if (m.in_features === undefined || m.out_features === undefined) return '';
  if (/(LayerNorm|RMSNorm)$/.test(m.type)) return `[${m.in_features}]`;
  if (m.type === 'Embedding') return `${m.in_features}×${m.out_features}`;
  return `${m.in_features}→${m.out_features}`;
}

/** The description beside a node's label: type, shape, parameters, and k/n for a parent with adaptable modules. */
export function nodeDescription(node: ModuleNode, selected: ReadonlySet<string>): string {
  const parts: string[] = [node.module.type];
  const shape = shapeText(node.module);
  if (shape) parts.push(shape);
  if (node.totalParams > 0) parts.push(thousands(node.totalParams));
  if (node.module.tied_to) parts.push(`tied to ${node.module.tied_to}`);
  if (!node.adaptable && node.adaptableNames.length > 0) {
    const s = checkState(node, selected);
    parts.push(`${s.k}/${s.n}`);
  }
  return parts.join(' · ');
}

export function nodeTooltip(node: ModuleNode, extra: { lora?: boolean; saved?: boolean } = {}): string {
  const lines = [node.name || '(root)', node.module.type];
  const shape = shapeText(node.module);
  if (shape) lines.push(`shape ${shape}${ADAPTABLE_TYPES.has(node.module.type) ? ' (in→out)' : ''}`);
  lines.push(`${thousands(node.totalParams)} parameters${node.children.length ? ' (with submodules)' : ''}`);
  if (node.module.tied_to) lines.push(`weight tied to ${node.module.tied_to}`);
  if (extra.lora) lines.push('LoRA target');
  if (extra.saved) lines.push('modules_to_save: trained in full and saved with the adapter');
  return lines.join('\n');
}

// ---- the view's PEFT line and warnings ----

export interface ViewTextInput {
  tree: ModuleTree;
  selected: ReadonlySet<string>;
  task: 'causal-lm' | 'seq-cls';
  /** the run config's lora.modules_to_save (null/undefined: PEFT's default, which adds `score` for seq-cls) */
  modules_to_save?: string[] | null;
  /** the active regex filter, when it matched no adaptable module */
  emptyRegex?: string;
  /** list entries or a regex from the run config that matched nothing */
  unmatched?: string[];
  notAdaptable?: string[];
  /** the latest inspect result for this selection, when there is one */
  inspect?: Pick<InspectResult, 'line' | 'warnings' | 'trainable_params' | 'all_params'>;
  /** an inspect failure to show instead of the line */
  inspectError?: string;
  /** no run config: the selection is not written anywhere yet */
  noRunConfig?: boolean;
}

export interface ViewText {
  /** short, beside the view title: "3/24 · 0.2364%" */
  description: string;
  /** the view's message: PEFT's line, then warnings, one per line */
  message: string;
  warnings: string[];
}

/** Warnings from inspect that say nothing to someone picking modules (PEFT's forced fan_in_fan_out for Conv1D). */
const QUIET_WARNING = /^fan_in_fan_out is set to/;
const HEAD_PHRASE = 'neither trained nor saved';

/** The classification head is neither a LoRA target nor in modules_to_save: it would stay random and frozen. */
export function headWarning(task: ViewTextInput['task'], modulesToSave: string[] | null | undefined, selected: ReadonlySet<string>): string | undefined {
  if (task !== 'seq-cls') return undefined;
  if (modulesToSave === null || modulesToSave === undefined) return undefined; // PEFT adds `score` itself
  if (modulesToSave.includes(SEQ_CLS_HEAD)) return undefined;
  if ([...selected].some((n) => n === SEQ_CLS_HEAD || n.endsWith(`.${SEQ_CLS_HEAD}`))) return undefined;
  return `The classification head \`${SEQ_CLS_HEAD}\` is ${HEAD_PHRASE}: it stays randomly initialised. Add "${SEQ_CLS_HEAD}" to lora.modules_to_save.`;
}

export function viewText(input: ViewTextInput): ViewText {
  const warnings: string[] = [];
  if (input.emptyRegex !== undefined) warnings.push(`The pattern ${JSON.stringify(input.emptyRegex)} matches no Linear/Conv1D module (it must match the whole name, e.g. ".*c_attn").`);
  for (const u of input.unmatched ?? []) {
    if (u !== input.emptyRegex) warnings.push(`target_modules ${JSON.stringify(u)} matches no module.`);
  }
  if (input.notAdaptable?.length) {
    const shown = input.notAdaptable.slice(0, 3).join(', ') + (input.notAdaptable.length > 3 ? ', …' : '');
    warnings.push(`target_modules also matches modules that cannot take LoRA (${shown}); only Linear/Conv1D can.`);
  }
  const head = headWarning(input.task, input.modules_to_save, input.selected);
  if (head) warnings.push(head);
  for (const w of input.inspect?.warnings ?? []) {
    if (QUIET_WARNING.test(w)) continue;
    if (head && w.includes(HEAD_PHRASE)) continue;
    if (!warnings.includes(w)) warnings.push(w);
  }

  const k = input.tree.adaptable.filter((n) => input.selected.has(n)).length;
  const n = input.tree.adaptable.length;
  let line: string;
  let pct = '';
  if (k === 0) {
    line = 'No LoRA target selected: check modules below or use a filter.';
  } else if (input.inspectError) {
    line = `PEFT line unavailable: ${input.inspectError}`;
  } else if (input.inspect) {
    line = input.inspect.line;
    const m = /trainable%: ([\d.]+)/.exec(input.inspect.line);
    if (m) pct = ` · ${m[1]}%`;
  } else {
    line = 'Computing the PEFT line…';
  }
  const lines = [line, ...warnings.map((w) => `⚠ ${w}`)];
  if (input.noRunConfig) lines.push('No run config yet: "LoRA: New Run Config" writes this selection to lora-run.json.');
  return { description: `${k}/${n} targets${pct}`, message: lines.join('\n'), warnings };
}
