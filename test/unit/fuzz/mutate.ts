/**
 * Mutators. Each takes the bytes of one valid file and a seeded Rng, and returns new bytes plus a one-line description
 * of what it did (printed with a finding, so the mutation can be read without diffing files).
 *
 * - bytes (every kind): bit flips, byte replacement, truncation, duplicated span, invalid UTF-8, a leading BOM
 * - json: structure-aware; one value at any depth replaced by a hostile one, a key deleted, an unknown key added (also
 *   nested 5,000 deep), `__proto__` / `constructor` / `toString` as keys or values
 * - jsonl/csv/tsv/text: line-aware; broken quotes, wrong column counts, object labels, empty lines, BOM, CR, NUL
 * - safetensors: a huge or wrong 8-byte header length, and the header JSON mutated structurally (shapes, offsets,
 *   dtypes, `__metadata__`) with the length fixed up so the reader gets past the first check
 * - parquet: a huge or wrong footer length, and bytes of the footer (Thrift metadata) mutated
 */
import type { Rng } from '../../../trainer/util/rng';
import type { FileKind } from './seeds';

export interface Mutation {
  bytes: Buffer;
  desc: string;
}

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)];

// Values too big to build as JS values cheaply (or to JSON.stringify safely) go in as markers, spliced into the text.
const DEEP_ARRAY = '\u0000FUZZ_DEEP_ARRAY\u0000';
const DEEP_OBJECT = '\u0000FUZZ_DEEP_OBJECT\u0000';
const HUGE_STRING = '\u0000FUZZ_HUGE_STRING\u0000';
export const DEPTH = 5000;

export function deepArrayText(depth = DEPTH): string {
  return '['.repeat(depth) + ']'.repeat(depth);
}
export function deepObjectText(depth = DEPTH): string {
  return '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

function spliceMarkers(text: string): string {
  return text
    .split(JSON.stringify(DEEP_ARRAY)).join(deepArrayText())
    .split(JSON.stringify(DEEP_OBJECT)).join(deepObjectText())
    .split(JSON.stringify(HUGE_STRING)).join(JSON.stringify('x'.repeat(1_000_000)));
}

/** The hostile values of the brief, with a label each. HUGE_STRING is rare (it makes 1 MB inputs). */
const VALUES: Array<[string, unknown]> = [
  ['null', null], ['[]', []], ['{}', {}], ['""', ''], ['-1', -1], ['0', 0], ['1.5', 1.5], ['1e300', 1e300], ['2**53', 2 ** 53],
  ['2**31', 2 ** 31], ['"NaN"', 'NaN'], ['"Infinity"', 'Infinity'], ['"-Infinity"', '-Infinity'], ['true', true], ['false', false],
  ['deep array (5,000 levels)', DEEP_ARRAY], ['deep object (5,000 levels)', DEEP_OBJECT], ['"__proto__"', '__proto__'],
  ['"constructor"', 'constructor'], ['"toString"', 'toString'], ['"(.*)*X"', '(.*)*X'], ['"("', '('], ['1e6', 1e6], ['5e6', 5e6],
  ['"x"', 'x'], ['-0.5', -0.5], ['"5"', '5'], ['"{bad"', '{bad'], ['[1, "a", null]', [1, 'a', null]], ['{"__proto__": 1}', JSON.parse('{"__proto__": 1}')],
];
const DANGEROUS_KEYS = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'];

function hostileValue(rng: Rng): [string, unknown] {
  if (rng.int(60) === 0) return ['"x" * 1e6', HUGE_STRING];
  return pick(rng, VALUES);
}

type Container = Record<string, unknown> | unknown[];
interface Node {
  parent: Container | null;
  key: string | number | null;
  path: string;
  depth: number;
}

const isContainer = (v: unknown): v is Container => !!v && typeof v === 'object';

function pathOf(parentPath: string, key: string | number): string {
  if (typeof key === 'number') return `${parentPath}[${key}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${parentPath}.${key}` : `${parentPath}[${JSON.stringify(key.length > 40 ? key.slice(0, 40) + '…' : key)}]`;
}

/** All nodes, grouped by depth (so a mutation hits a shallow field as often as one of 50,000 vocabulary entries). */
function nodesByDepth(root: unknown): Node[][] {
  const byDepth: Node[][] = [[{ parent: null, key: null, path: '$', depth: 0 }]];
  const stack: Array<{ v: unknown; node: Node }> = [{ v: root, node: byDepth[0][0] }];
  let count = 0;
  while (stack.length > 0 && count < 400_000) {
    const { v, node } = stack.pop()!;
    if (!isContainer(v)) continue;
    const keys: Array<string | number> = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
    for (const k of keys) {
      const child: Node = { parent: v, key: k, path: pathOf(node.path, k), depth: node.depth + 1 };
      (byDepth[child.depth] ??= []).push(child);
      count++;
      stack.push({ v: (v as Record<string, unknown>)[k as string], node: child });
    }
  }
  return byDepth;
}

function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function preview(v: unknown): string {
  if (v === DEEP_ARRAY) return 'deep array (5,000 levels)';
  if (v === DEEP_OBJECT) return 'deep object (5,000 levels)';
  if (v === HUGE_STRING) return '"x" * 1e6';
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 59)}…` : s;
}

/** One structural change to a JSON document. Returns null if the text is not JSON. */
export function mutateJsonValue(root: unknown, rng: Rng): { root: unknown; desc: string } {
  const byDepth = nodesByDepth(root).filter((level) => level.length > 0);
  const level = byDepth[rng.int(byDepth.length)];
  const node = level[rng.int(level.length)];
  const current = node.parent ? (node.parent as Record<string, unknown>)[node.key as string] : root;
  const op = rng.int(100);
  const replace = (value: unknown, label: string) => {
    if (!node.parent) return { root: value, desc: `replace the whole document with ${label}` };
    if (Array.isArray(node.parent)) node.parent[node.key as number] = value;
    else setOwn(node.parent, node.key as string, value);
    return { root, desc: `replace ${node.path} (was ${preview(current)}) with ${label}` };
  };
  if (op < 62) {
    const [label, value] = hostileValue(rng);
    return replace(value, label);
  }
  if (op < 72 && node.parent && !Array.isArray(node.parent)) {
    delete node.parent[node.key as string];
    return { root, desc: `delete ${node.path}` };
  }
  if (op < 72 && node.parent && Array.isArray(node.parent)) {
    node.parent.splice(node.key as number, 1);
    return { root, desc: `remove ${node.path} from its array` };
  }
  // the operations below work on the container at this node (or its parent)
  const target = isContainer(current) ? current : (node.parent ?? null);
  const where = isContainer(current) ? node.path : node.path.replace(/(\.[^.[]+|\[[^\]]*\])$/, '') || '$';
  if (!target) {
    const [label, value] = hostileValue(rng);
    return replace(value, label);
  }
  if (op < 82) {
    const key = `fuzz_unknown_${rng.int(1000)}`;
    const [label, value] = rng.int(3) === 0 ? ['deep object (5,000 levels)', DEEP_OBJECT] : hostileValue(rng);
    if (Array.isArray(target)) target.push({ [key]: value });
    else setOwn(target, key, value);
    return { root, desc: `add unknown key ${key} = ${label} at ${where}` };
  }
  if (op < 94) {
    const key = pick(rng, DANGEROUS_KEYS);
    const [label, value] = hostileValue(rng);
    if (Array.isArray(target)) {
      target.push(key);
      return { root, desc: `append "${key}" to the array ${where}` };
    }
    const keys = Object.keys(target);
    if (keys.length > 0 && rng.int(2) === 0) {
      const old = pick(rng, keys);
      const v = target[old];
      delete target[old];
      setOwn(target, key, v);
      return { root, desc: `rename key ${pathOf(where, old)} to "${key}"` };
    }
    setOwn(target, key, value);
    return { root, desc: `add key "${key}" = ${label} at ${where}` };
  }
  // many copies of an array element / many keys: size, not shape
  if (Array.isArray(target) && target.length > 0) {
    const n = 2000 + rng.int(20000);
    const el = target[rng.int(target.length)];
    for (let i = 0; i < n; i++) target.push(el);
    return { root, desc: `repeat an element of ${where} ${n} more times` };
  }
  const n = 2000 + rng.int(20000);
  for (let i = 0; i < n; i++) (target as Record<string, unknown>)[`k${i}`] = i;
  return { root, desc: `add ${n} keys k0…k${n - 1} at ${where}` };
}

export function serializeJson(root: unknown): string {
  return spliceMarkers(JSON.stringify(root, null, rngIndent(root)));
}
const rngIndent = (root: unknown) => (isContainer(root) && JSON.stringify(root).length < 100_000 ? 1 : undefined);

// ---- bytes ----

const INVALID_UTF8 = [Buffer.from([0xff]), Buffer.from([0xc3]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]), Buffer.from([0xc0, 0xaf]), Buffer.from([0xe2, 0x82])];

export function mutateBytes(buf: Buffer, rng: Rng): Mutation {
  const n = buf.length;
  const at = () => rng.int(Math.max(1, n));
  switch (rng.int(7)) {
    case 0: {
      const out = Buffer.from(buf);
      const flips = 1 + rng.int(8);
      const where: number[] = [];
      for (let i = 0; i < flips && n > 0; i++) {
        const p = at();
        out[p] ^= 1 << rng.int(8);
        where.push(p);
      }
      return { bytes: out, desc: `flip ${flips} bit(s) at byte ${where.join(', ')}` };
    }
    case 1: {
      const out = Buffer.from(buf);
      const p = at();
      const v = pick(rng, [0x00, 0xff, 0x7f, 0x80, 0x22, 0x5c, 0x2c, 0x0a, 0x7b, 0x5b, rng.int(256)]);
      if (n > 0) out[p] = v;
      return { bytes: out, desc: `set byte ${p} to 0x${v.toString(16).padStart(2, '0')}` };
    }
    case 2: {
      const p = at();
      return { bytes: buf.subarray(0, p), desc: `truncate to ${p} of ${n} bytes` };
    }
    case 3: {
      const a = at();
      const len = 1 + rng.int(Math.min(4096, Math.max(1, n - a)));
      const times = 1 + rng.int(4);
      const span = buf.subarray(a, a + len);
      const ins = at();
      return { bytes: Buffer.concat([buf.subarray(0, ins), ...Array(times).fill(span), buf.subarray(ins)]), desc: `insert ${times} copy(ies) of bytes ${a}..${a + len} at ${ins}` };
    }
    case 4: {
      const bad = pick(rng, INVALID_UTF8);
      const p = at();
      return { bytes: Buffer.concat([buf.subarray(0, p), bad, buf.subarray(p)]), desc: `insert invalid UTF-8 ${bad.toString('hex')} at ${p}` };
    }
    case 5:
      return { bytes: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), buf]), desc: 'prepend a UTF-8 BOM' };
    default: {
      const p = at();
      const len = 1 + rng.int(64);
      return { bytes: Buffer.concat([buf.subarray(0, p), buf.subarray(Math.min(n, p + len))]), desc: `delete bytes ${p}..${p + len}` };
    }
  }
}

// ---- json ----

export function mutateJson(buf: Buffer, rng: Rng): Mutation {
  let root: unknown;
  try {
    root = JSON.parse(buf.toString('utf8'));
  } catch {
    return mutateBytes(buf, rng);
  }
  const { root: out, desc } = mutateJsonValue(root, rng);
  return { bytes: Buffer.from(serializeJson(out)), desc };
}

// ---- line formats ----

function lines(buf: Buffer): string[] {
  return buf.toString('utf8').split('\n');
}

const LABELS: Array<[string, unknown]> = [
  ['{}', {}], ['{"a": 1}', { a: 1 }], ['[]', []], ['[0, 1]', [0, 1]], ['null', null], ['true', true], ['"__proto__"', '__proto__'],
  ['"constructor"', 'constructor'], ['"toString"', 'toString'], ['-1', -1], ['1.5', 1.5], ['1e300', 1e300], ['2**53', 2 ** 53],
  ['130000', 130000], ['5e6', 5e6], ['""', ''], ['" "', ' '], ['"NaN"', 'NaN'], ['2**31', 2 ** 31],
];

export function mutateJsonl(buf: Buffer, rng: Rng): Mutation {
  const ls = lines(buf);
  const i = rng.int(Math.max(1, ls.length - 1));
  const op = rng.int(8);
  if (op < 3) {
    try {
      const row = JSON.parse(ls[i]) as Record<string, unknown>;
      const [label, value] = pick(rng, LABELS);
      const col = rng.int(4) === 0 ? 'text' : 'label';
      setOwn(row, col, value);
      ls[i] = JSON.stringify(row);
      return { bytes: Buffer.from(ls.join('\n')), desc: `line ${i + 1}: ${col} = ${label}` };
    } catch {
      /* fall through */
    }
  }
  if (op === 3) {
    const { root, desc } = mutateJsonValue(safeParse(ls[i]), rng);
    ls[i] = serializeJson(root).replace(/\n/g, '');
    return { bytes: Buffer.from(ls.join('\n')), desc: `line ${i + 1}: ${desc}` };
  }
  if (op === 4) {
    ls.splice(i, 0, pick(rng, ['', '   ', '\r', '{', '"text"', '[]', 'null', '{"text": "a", "label": 0', '\u0000']));
    return { bytes: Buffer.from(ls.join('\n')), desc: `insert a broken line before line ${i + 1}: ${JSON.stringify(ls[i])}` };
  }
  return lineCommon(ls, i, rng, ',') ?? mutateBytes(buf, rng);
}

function safeParse(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return {};
  }
}

/** Line edits shared by the text formats. */
function lineCommon(ls: string[], i: number, rng: Rng, sep: string): Mutation | null {
  switch (rng.int(6)) {
    case 0: {
      const p = rng.int(ls[i].length + 1);
      ls[i] = ls[i].slice(0, p) + '"' + ls[i].slice(p);
      return { bytes: Buffer.from(ls.join('\n')), desc: `line ${i + 1}: insert an unbalanced quote at column ${p + 1}` };
    }
    case 1:
      return { bytes: Buffer.from('\ufeff' + ls.join('\n')), desc: 'prepend a BOM' };
    case 2:
      ls.splice(i, 0, '', '');
      return { bytes: Buffer.from(ls.join('\n')), desc: `insert empty lines before line ${i + 1}` };
    case 3:
      return { bytes: Buffer.from(ls.join('\r\n')), desc: 'CRLF line ends' };
    case 4: {
      const extra = 1 + rng.int(3);
      ls[i] = ls[i] + sep.repeat(extra) + 'extra';
      return { bytes: Buffer.from(ls.join('\n')), desc: `line ${i + 1}: ${extra} extra column(s)` };
    }
    default:
      ls[i] = ls[i] + '\u0000';
      return { bytes: Buffer.from(ls.join('\n')), desc: `line ${i + 1}: a NUL character` };
  }
}

export function mutateDelimited(buf: Buffer, rng: Rng, sep: ',' | '\t'): Mutation {
  const ls = lines(buf);
  const i = rng.int(Math.max(1, ls.length - 1));
  const op = rng.int(7);
  if (op === 0) {
    const cells = ls[i].split(sep);
    cells.pop();
    ls[i] = cells.join(sep);
    return { bytes: Buffer.from(ls.join('\n')), desc: `line ${i + 1}: one column fewer` };
  }
  if (op === 1 && i > 0) {
    const [label, value] = pick(rng, LABELS);
    const cells = ls[i].split(sep);
    const cell = JSON.stringify(value) ?? '';
    cells[cells.length - 1] = sep === ',' ? `"${cell.replace(/"/g, '""')}"` : cell;
    ls[i] = cells.join(sep);
    return { bytes: Buffer.from(ls.join('\n')), desc: `line ${i + 1}: label cell ${label}` };
  }
  if (op === 2) {
    ls[0] = pick(rng, ['text', 'label,text,label', '__proto__,label', 'text,__proto__', '"text,label', '', 'text,constructor', `text${sep}label${sep}`]).replace(/,/g, sep);
    return { bytes: Buffer.from(ls.join('\n')), desc: `header line = ${JSON.stringify(ls[0])}` };
  }
  if (op === 3) {
    const p = rng.int(ls[i].length + 1);
    ls[i] = ls[i].slice(0, p) + '"' + sep + 'a"b"' + ls[i].slice(p);
    return { bytes: Buffer.from(ls.join('\n')), desc: `line ${i + 1}: a quoted cell with a stray quote at column ${p + 1}` };
  }
  return lineCommon(ls, i, rng, sep) ?? mutateBytes(buf, rng);
}

export function mutateText(buf: Buffer, rng: Rng): Mutation {
  const ls = lines(buf);
  const i = rng.int(Math.max(1, ls.length - 1));
  if (rng.int(4) === 0) {
    ls[i] = 'word '.repeat(20000 + rng.int(100000));
    return { bytes: Buffer.from(ls.join('\n')), desc: `line ${i + 1}: a very long line` };
  }
  return lineCommon(ls, i, rng, ' ') ?? mutateBytes(buf, rng);
}

// ---- safetensors ----

const HUGE_LENGTHS: Array<[string, bigint]> = [
  ['2**64-1', 2n ** 64n - 1n], ['2**63', 2n ** 63n], ['2**53', 2n ** 53n], ['2**32', 2n ** 32n], ['2**31', 2n ** 31n], ['1e8 + 1', 100_000_001n],
  ['99,999,999', 99_999_999n], ['0', 0n], ['1', 1n], ['7', 7n],
];

export function mutateSafetensors(buf: Buffer, rng: Rng): Mutation {
  const op = rng.int(10);
  if (op < 2 && buf.length >= 8) {
    const out = Buffer.from(buf);
    const choice = rng.int(HUGE_LENGTHS.length + 2);
    let label: string;
    let v: bigint;
    if (choice < HUGE_LENGTHS.length) [label, v] = HUGE_LENGTHS[choice];
    else {
      v = BigInt(buf.length - 8 + rng.int(64) - 32);
      label = `${v} (near the file size)`;
    }
    out.writeBigUInt64LE(v < 0n ? 0n : v, 0);
    return { bytes: out, desc: `safetensors header length = ${label}` };
  }
  if (op < 7 && buf.length >= 8) {
    const len = Number(buf.readBigUInt64LE(0));
    if (len <= buf.length - 8) {
      let header: Record<string, unknown>;
      try {
        header = JSON.parse(buf.subarray(8, 8 + len).toString('utf8'));
      } catch {
        return mutateBytes(buf, rng);
      }
      const { root, desc } = op === 6 ? mutateEntry(header, rng) : mutateJsonValue(header, rng);
      const text = Buffer.from(serializeJson(root));
      const lenBuf = Buffer.alloc(8);
      lenBuf.writeBigUInt64LE(BigInt(text.length));
      return { bytes: Buffer.concat([lenBuf, text, buf.subarray(8 + len)]), desc: `safetensors header: ${desc}` };
    }
  }
  return mutateBytes(buf, rng);
}

/** A targeted change to one tensor entry: its data_offsets, shape or dtype. */
function mutateEntry(header: Record<string, unknown>, rng: Rng): { root: unknown; desc: string } {
  const keys = Object.keys(header).filter((k) => k !== '__metadata__');
  if (keys.length === 0) return mutateJsonValue(header, rng);
  const k = pick(rng, keys);
  const e = header[k] as { dtype: string; shape: number[]; data_offsets: number[] };
  if (!e || typeof e !== 'object') return mutateJsonValue(header, rng);
  const what = rng.int(3);
  if (what === 0) {
    const v = pick(rng, [[0, 2 ** 53], [e.data_offsets?.[1], e.data_offsets?.[0]], [0, 2 ** 31], [-4, 0], [0, 1], [1.5, 8], [0, 2 ** 40]]);
    e.data_offsets = v as number[];
    return { root: header, desc: `${k}.data_offsets = ${JSON.stringify(v)}` };
  }
  if (what === 1) {
    const v = pick(rng, [[2 ** 31, 2 ** 31], [1e6, 1e6], [-1, 4], [0], [], [2 ** 53], [1.5, 2], [65536, 65536, 65536], [...(e.shape ?? []), 1, 1, 1, 1, 1, 1, 1, 1]]);
    e.shape = v as number[];
    return { root: header, desc: `${k}.shape = ${JSON.stringify(v)}` };
  }
  const v = pick(rng, ['F64', 'I64', 'BOOL', 'U8', 'F8_E4M3', 'f32', '', 'BF16', 'F16']);
  e.dtype = v;
  return { root: header, desc: `${k}.dtype = ${JSON.stringify(v)}` };
}

// ---- parquet ----

export function mutateParquet(buf: Buffer, rng: Rng): Mutation {
  const op = rng.int(10);
  const n = buf.length;
  if (op < 3 && n >= 12) {
    const out = Buffer.from(buf);
    const v = pick(rng, [0xffffffff, 0x7fffffff, 0x10000000, n, n - 8, n - 7, 0, 1, 5, Number(out.readUInt32LE(n - 8)) + 1 + rng.int(50)]);
    out.writeUInt32LE(v >>> 0, n - 8);
    return { bytes: out, desc: `parquet footer length = ${v >>> 0}` };
  }
  if (op < 8 && n >= 12) {
    // bytes inside the footer (Thrift metadata), where the reader's loops and allocations are driven from
    const footerLen = buf.readUInt32LE(n - 8);
    const start = Math.max(4, n - 8 - footerLen);
    const out = Buffer.from(buf);
    const count = 1 + rng.int(4);
    const where: string[] = [];
    for (let i = 0; i < count; i++) {
      const p = start + rng.int(Math.max(1, n - 8 - start));
      const v = pick(rng, [0xff, 0x00, 0x7f, 0x80, 0xf0, 0x19, 0x1c, 0x15, rng.int(256)]);
      out[p] = v;
      where.push(`${p}=0x${v.toString(16)}`);
    }
    return { bytes: out, desc: `parquet footer bytes ${where.join(', ')}` };
  }
  return mutateBytes(buf, rng);
}

export function mutate(buf: Buffer, kind: FileKind, rng: Rng): Mutation {
  // a share of plain byte mutations on every kind, so the structure-aware ones do not hide parser-level bugs
  if (rng.int(4) === 0) return mutateBytes(buf, rng);
  switch (kind) {
    case 'json':
      return mutateJson(buf, rng);
    case 'jsonl':
      return mutateJsonl(buf, rng);
    case 'csv':
      return mutateDelimited(buf, rng, ',');
    case 'tsv':
      return mutateDelimited(buf, rng, '\t');
    case 'text':
      return mutateText(buf, rng);
    case 'safetensors':
      return mutateSafetensors(buf, rng);
    case 'parquet':
      return mutateParquet(buf, rng);
  }
}
