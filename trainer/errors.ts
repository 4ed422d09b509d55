/**
 * The one error type the trainer throws for bad input. It names the file and the field, so the CLI,
 * the JSON event stream and the extension can all show the user where to look.
 */
export class LoraStudioError extends Error {
  constructor(
    message: string,
    readonly file?: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'LoraStudioError';
  }

  /** One line for people: `file: field: message`. */
  describe(): string {
    // Messages that already start with their field (one line per problem) do not repeat it.
    const field = this.field && !this.message.startsWith(`${this.field}:`) ? this.field : undefined;
    const where = [this.file, field].filter(Boolean).join(': ');
    return where ? `${where}: ${this.message}` : this.message;
  }
}

/**
 * A short, safe rendering of a user's value for an error message: JSON, cut to `max` characters, and never
 * deeper than a few levels (a value nested thousands deep would overflow JSON.stringify's stack).
 */
export function preview(value: unknown, max = 60): string {
  if (value === undefined) return 'nothing';
  let s: string;
  try {
    s = JSON.stringify(shallow(value, 3)) ?? String(value);
  } catch {
    s = String(value);
  }
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function shallow(v: unknown, depth: number): unknown {
  if (typeof v === 'string') return v.length > 200 ? `${v.slice(0, 200)}…` : v;
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  if (typeof v === 'bigint') return `${v}`;
  if (!v || typeof v !== 'object') return v;
  if (depth === 0) return Array.isArray(v) ? ['…'] : { '…': '…' };
  if (Array.isArray(v)) return v.slice(0, 8).map((x) => shallow(x, depth - 1));
  return Object.fromEntries(Object.keys(v).slice(0, 8).map((k) => [k, shallow((v as Record<string, unknown>)[k], depth - 1)]));
}

/** Close names first, for "did you mean" hints. Levenshtein distance; inputs are short (field and module names). */
export function closestNames(wanted: string, candidates: Iterable<string>, limit = 3): string[] {
  const scored: Array<[number, string]> = [];
  for (const c of candidates) scored.push([editDistance(wanted, c), c]);
  scored.sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1]));
  const cutoff = Math.max(2, Math.ceil(wanted.length / 2));
  return scored.filter(([d]) => d <= cutoff).slice(0, limit).map(([, c]) => c);
}

export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/** Errors already sent to a listener as an `error` event, so the CLI does not print them twice. */
const reported = new WeakSet<object>();
export function markReported(e: unknown): void {
  if (e && typeof e === 'object') reported.add(e);
}
export function wasReported(e: unknown): boolean {
  return !!e && typeof e === 'object' && reported.has(e);
}
