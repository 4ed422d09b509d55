/**
 * Regular expressions that users write (target_modules, exclude_modules, rank_pattern / alpha_pattern keys), read
 * with Python's spelling and matched against module names under a time limit.
 *
 * JavaScript's backtracking engine can take exponential time on patterns such as `(a|.)*X` or `(.*)*X`, and a
 * synchronous match cannot be interrupted. Rather than guess which patterns are dangerous (no static rule catches
 * them all: `.*.*.*.*X` is polynomial, `(a|.)*X` has no nested quantifier), every match of a user pattern runs in a
 * worker thread that is terminated when it takes longer than `REGEX_TIME_LIMIT_MS`. The caller waits with
 * `Atomics.wait`, so the API stays synchronous. Results are remembered per pattern and name, so a pattern is
 * matched against a given name once per process.
 */
import { Worker } from 'node:worker_threads';
import { LoraStudioError, preview } from '../errors';

/** How long all the names of one call may take to match one pattern. */
export const REGEX_TIME_LIMIT_MS = 2000;

/** Where a pattern came from, for error messages. */
export interface PatternSource {
  file?: string;
  field: string;
}

/**
 * A Python regex as JavaScript. `anchor` is how PEFT applies it: `full` is re.fullmatch (target_modules,
 * exclude_modules), `suffix` is `(.*\.)?(KEY)$` (rank_pattern and alpha_pattern keys). Translates the Python-only
 * spellings people use: (?P<name>…), (?P=name), \A, \Z and a leading inline flag group such as (?i).
 */
export function compilePythonRegex(pattern: string, anchor: 'full' | 'suffix', where: PatternSource): RegExp {
  let src = pattern;
  let flags = '';
  const inline = /^\(\?([aiLmsux]+)\)/.exec(src);
  if (inline) {
    src = src.slice(inline[0].length);
    for (const f of ['i', 's', 'm']) if (inline[1].includes(f)) flags += f;
  }
  src = src.replace(/\(\?P</g, '(?<').replace(/\(\?P=(\w+)\)/g, '\\k<$1>').replace(/\\A/g, '^').replace(/\\Z/g, '$');
  try {
    return new RegExp(anchor === 'full' ? `^(?:${src})$` : `^(?:.*\\.)?(?:${src})$`, flags);
  } catch (e) {
    throw new LoraStudioError(`${preview(pattern)} is not a valid regular expression: ${(e as Error).message}`, where.file, where.field);
  }
}

/** The syntax error of a pattern, or null (for validators that collect problems instead of throwing). */
export function regexSyntaxError(pattern: string, anchor: 'full' | 'suffix' = 'full'): string | null {
  try {
    compilePythonRegex(pattern, anchor, { field: '' });
    return null;
  } catch (e) {
    return (e as Error).message.replace(/^.*? is not a valid regular expression: /, '');
  }
}

const remembered = new Map<string, Map<string, boolean>>();

/**
 * Which of `names` the regex matches, in order. Throws a LoraStudioError naming the file and field when the match
 * takes longer than `REGEX_TIME_LIMIT_MS` (a pattern with catastrophic backtracking).
 */
export function matchNames(re: RegExp, names: readonly string[], where: PatternSource & { pattern: string }): boolean[] {
  const key = `${re.flags}/${re.source}`;
  let known = remembered.get(key);
  if (!known) remembered.set(key, (known = new Map()));
  const todo = [...new Set(names.filter((n) => !known!.has(n)))];
  if (todo.length > 0) {
    const hits = matchInWorker(re, todo);
    if (!hits) {
      throw new LoraStudioError(
        `${preview(where.pattern)} took over ${REGEX_TIME_LIMIT_MS / 1000} s to match ${todo.length} module name(s) and was stopped: ` +
          'the pattern backtracks catastrophically (a repeated group whose alternatives overlap, such as (a|.)* or (.*)*). ' +
          'Write it without nested or overlapping repetition, or give target_modules as a list of names.',
        where.file,
        where.field,
      );
    }
    todo.forEach((n, i) => known!.set(n, hits[i]));
  }
  return names.map((n) => known!.get(n)!);
}

const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { source, flags, names, shared } = workerData;
const flagsOut = new Int32Array(shared);
const re = new RegExp(source, flags);
for (let i = 0; i < names.length; i++) flagsOut[i + 1] = re.test(names[i]) ? 1 : 0;
Atomics.store(flagsOut, 0, 1);
Atomics.notify(flagsOut, 0);
`;

/** The match in a worker thread; undefined when it ran out of time (the worker is terminated). */
function matchInWorker(re: RegExp, names: string[]): boolean[] | undefined {
  const shared = new SharedArrayBuffer(4 * (names.length + 1));
  const out = new Int32Array(shared);
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { source: re.source, flags: re.flags.replace(/[gy]/g, ''), names, shared } });
  worker.unref();
  worker.on('error', () => undefined); // a terminated worker may report an error; the result is already decided
  const state = Atomics.wait(out, 0, 0, REGEX_TIME_LIMIT_MS);
  void worker.terminate();
  if (state === 'timed-out' && Atomics.load(out, 0) !== 1) return undefined;
  return names.map((_, i) => out[i + 1] === 1);
}
