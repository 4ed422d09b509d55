/**
 * The pure side of the Analyze view's charts, without the DOM: the layer × module grid of ‖ΔW‖_F built from
 * PEFT module names, the energy of a spectrum, and the colour scale (theme colours parsed and blended).
 */

/** One cell of the grid: the module at (row, col). */
export interface HeatCell {
  row: number;
  col: number;
  name: string;
}

export interface HeatLayout {
  /** row labels: "0", "1", … for the layers, then "other" for modules outside the blocks */
  rows: string[];
  /** column labels: the module's path after the layer (attn.c_attn, mlp.c_proj), or the whole name in "other" */
  cols: string[];
  cells: HeatCell[];
}

/** Where a module sits: its layer index (from `.h.<i>.` or `.layers.<i>.`) and its path after the layer. */
export function splitModuleName(name: string): { layer: number; sub: string } | undefined {
  const m = /(?:^|\.)(?:h|layers)\.(\d+)\.(.+)$/.exec(name);
  if (!m) return undefined;
  return { layer: Number(m[1]), sub: m[2] };
}

export const OTHER_ROW = 'other';

/**
 * Rows by layer index (ascending; only the layers that occur), columns in order of first appearance (as the
 * adapter lists them: block order), and modules without a layer in one last row, each in a column of its own.
 */
export function heatmapLayout(names: readonly string[]): HeatLayout {
  const layers = new Set<number>();
  const cols: string[] = [];
  const colIndex = new Map<string, number>();
  const placed: Array<{ name: string; layer?: number; col: string }> = [];
  const addCol = (c: string) => {
    if (!colIndex.has(c)) {
      colIndex.set(c, cols.length);
      cols.push(c);
    }
  };
  for (const name of names) {
    const s = splitModuleName(name);
    if (s) {
      layers.add(s.layer);
      addCol(s.sub);
      placed.push({ name, layer: s.layer, col: s.sub });
    }
  }
  const others = names.filter((n) => !splitModuleName(n));
  for (const n of others) {
    addCol(n);
    placed.push({ name: n, col: n });
  }
  const layerRows = [...layers].sort((a, b) => a - b);
  const rowOfLayer = new Map(layerRows.map((l, i) => [l, i]));
  const rows = layerRows.map(String);
  if (others.length) rows.push(OTHER_ROW);
  const cells = placed.map((p) => ({
    name: p.name,
    row: p.layer === undefined ? rows.length - 1 : rowOfLayer.get(p.layer)!,
    col: colIndex.get(p.col)!,
  }));
  return { rows, cols, cells };
}

/** The share of ‖ΔW‖²_F in the top k directions: Σ_{i<k} σ_i² / Σ σ_i² (0 for a zero update). */
export function energyAt(singular: readonly number[], k: number): number {
  let top = 0;
  let all = 0;
  singular.forEach((s, i) => {
    all += s * s;
    if (i < k) top += s * s;
  });
  return all > 0 ? top / all : 0;
}

export type Rgba = [number, number, number, number];

/** A CSS colour as VS Code's theme variables give them: #rgb, #rgba, #rrggbb, #rrggbbaa, rgb(), rgba(). */
export function parseColor(css: string): Rgba | undefined {
  const s = css.trim().toLowerCase();
  let m = /^#([0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})$/.exec(s);
  if (m) {
    let h = m[1];
    if (h.length <= 4) h = [...h].map((c) => c + c).join('');
    const n = (i: number) => parseInt(h.slice(i, i + 2), 16);
    return [n(0), n(2), n(4), h.length === 8 ? n(6) / 255 : 1];
  }
  m = /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)(?:[\s,/]+([\d.]+%?))?\s*\)$/.exec(s);
  if (m) {
    const a = m[4] === undefined ? 1 : m[4].endsWith('%') ? Number(m[4].slice(0, -1)) / 100 : Number(m[4]);
    return [Number(m[1]), Number(m[2]), Number(m[3]), a];
  }
  return undefined;
}

/** `from` blended towards `to` by t ∈ [0, 1] (alpha blended the same way), as rgba(). */
export function mixColor(from: Rgba, to: Rgba, t: number): string {
  const u = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  const c = from.map((f, i) => f + (to[i] - f) * u);
  return `rgba(${Math.round(c[0])}, ${Math.round(c[1])}, ${Math.round(c[2])}, ${Number(c[3].toFixed(3))})`;
}
