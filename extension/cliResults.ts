/**
 * The shapes of the trainer CLI's `--json` results (types: trainer/protocol.ts, imported for its types only),
 * checked before the extension uses one: a child's stdout is not trusted, so a result of another CLI version, or
 * a broken one, becomes an error naming the command and the field instead of a crash further on. The checks
 * cover the fields the extension reads and the types the protocol declares; the Analyze panel checks its result
 * more deeply (analyze/messages.ts). No vscode import.
 */
import type { AnalyzeResult, ClassifyResult, EvalResult, GenerateResult, InspectResult, MergeResult, ResultBackend } from '../trainer/protocol';

/** What each one-shot command prints with --json. */
export interface CliResults {
  inspect: ResultBackend & InspectResult;
  merge: MergeResult;
  eval: EvalResult;
  generate: GenerateResult;
  classify: ClassifyResult;
  /** its `adapter` is the adapter folder analyzed (no backend runs, so there is no GPU adapter) */
  analyze: Pick<ResultBackend, 'backend' | 'gpu'> & AnalyzeResult;
}
export type CliCommand = keyof CliResults;

interface Field {
  /** what the value should be, for the message: "a string", "a list of numbers" */
  what: string;
  ok: (v: unknown) => boolean;
  optional?: boolean;
}
type Shape = Record<string, Field>;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
const str: Field = { what: 'a string', ok: (v) => typeof v === 'string' };
const bool: Field = { what: 'true or false', ok: (v) => typeof v === 'boolean' };
const count: Field = { what: 'a whole number ≥ 0', ok: isInt };
/** a metric: JSON writes NaN and ±Infinity as null */
const metric: Field = { what: 'a number or null', ok: (v) => typeof v === 'number' || v === null };
const strings: Field = { what: 'a list of strings', ok: (v) => Array.isArray(v) && v.every((x) => typeof x === 'string') };
const list: Field = { what: 'a list', ok: Array.isArray };
const task: Field = { what: '"causal-lm" or "seq-cls"', ok: (v) => v === 'causal-lm' || v === 'seq-cls' };
const optional = (f: Field): Field => ({ ...f, optional: true });
const recordOf = (what: string, ok: (v: unknown) => boolean): Field => ({ what: `an object of ${what}`, ok: (v) => isObj(v) && Object.values(v).every(ok) });

const BACKEND: Shape = {
  backend: { what: 'a string or null', ok: (v) => typeof v === 'string' || v === null },
  gpu: bool,
  adapter: optional({ what: 'an object', ok: isObj }),
};

const SHAPES: { [C in CliCommand]: Shape } = {
  inspect: { ...BACKEND, model_dir: str, model_type: str, task, num_labels: count, modules: list, targets: list, modules_to_save: strings, warnings: strings, fan_in_fan_out: bool, trainable_params: count, all_params: count, line: str },
  merge: { ...BACKEND, out_dir: str, merged_modules: count, warnings: strings },
  eval: {
    ...BACKEND, task, loss: metric, perplexity: optional(metric), num_tokens: optional(count), accuracy: optional(metric), f1: optional(metric), num_examples: optional(count),
    id2label: optional(recordOf('strings', (v) => typeof v === 'string')),
  },
  generate: { ...BACKEND, prompt: str, completion: str, token_ids: { what: 'a list of token ids', ok: (v) => Array.isArray(v) && v.every(isInt) } },
  classify: { ...BACKEND, text: str, label: str, label_id: count, probabilities: recordOf('numbers', (v) => typeof v === 'number') },
  analyze: { ...BACKEND, adapter: str, base: optional(str), compare: optional(str), modules: list, similarity: list, warnings: strings },
};

/** The value as the message shows it: short, and never the whole object. */
function shown(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
}

/** The first problem with `json` as `command`'s result ("loss: a number or null, got \"x\""), or undefined when it fits. */
export function cliResultProblem(command: CliCommand, json: unknown): string | undefined {
  if (!isObj(json)) return `not a JSON object: ${shown(json)}`;
  for (const [key, f] of Object.entries(SHAPES[command])) {
    const v = json[key];
    if (v === undefined && f.optional) continue;
    if (!f.ok(v)) return `${key}: should be ${f.what}, got ${shown(v)}`;
  }
  return undefined;
}

/** `json` as `command`'s result, or an Error naming the command and the first field that does not fit. */
export function checkCliResult<C extends CliCommand>(command: C, json: unknown): CliResults[C] {
  const problem = cliResultProblem(command, json);
  if (problem) throw new Error(`the trainer CLI's ${command} result is malformed: ${problem}`);
  return json as CliResults[C];
}
