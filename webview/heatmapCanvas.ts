/**
 * A heatmap drawn on a canvas: a grid of cells coloured from the theme's background (the scale's low end) to a
 * chart colour (its high end), row and column labels, a legend bar with the scale's ends under the grid (so a
 * saved PNG carries it), the value of the cell under the pointer in a readout line and the canvas's title, and a
 * click that selects a cell (outlined in the focus colour). Used for ‖ΔW‖_F per layer × module and for φ.
 */
import { mixColor } from './heatmap';
import { el, type PanelTheme } from './panelKit';

export interface HeatmapSpec {
  rows: string[];
  cols: string[];
  rowTitle: string;
  colTitle: string;
  /** undefined: no cell there */
  value(row: number, col: number): number | undefined;
  min: number;
  max: number;
  /** legend caption, e.g. "‖ΔW‖_F" */
  caption: string;
  format(v: number): string;
  describe(row: number, col: number, v: number): string;
  /** the widest a cell may be (CSS px) */
  maxCell?: number;
}

const PAD = 8;
const LEGEND_H = 34;

export class HeatmapCanvas {
  readonly element = el('div', 'heatmap');
  readonly canvas = el('canvas');
  private readonly readout = el('div', 'readout', '\u00a0');
  private spec: HeatmapSpec | undefined;
  private theme: PanelTheme | undefined;
  private selected: [number, number] | undefined;
  /** grid geometry of the last draw, CSS px */
  private geo = { left: 0, top: 0, cw: 0, ch: 0 };

  constructor(private readonly onSelect?: (row: number, col: number) => void) {
    this.canvas.tabIndex = 0;
    this.canvas.setAttribute('role', 'img');
    this.element.append(this.canvas, this.readout);
    this.canvas.addEventListener('mousemove', (e) => this.hover(e));
    this.canvas.addEventListener('mouseleave', () => {
      this.readout.textContent = '\u00a0';
    });
    this.canvas.addEventListener('click', (e) => {
      const cell = this.cellAt(e);
      if (cell && this.spec?.value(cell[0], cell[1]) !== undefined) {
        this.selected = cell;
        this.draw();
        this.onSelect?.(cell[0], cell[1]);
      }
    });
  }

  set(spec: HeatmapSpec, theme: PanelTheme, selected?: [number, number]): void {
    this.spec = spec;
    this.theme = theme;
    this.selected = selected;
    this.canvas.setAttribute('aria-label', `${spec.caption} heatmap, ${spec.rows.length} × ${spec.cols.length}`);
    this.draw();
  }

  setTheme(theme: PanelTheme): void {
    this.theme = theme;
    this.draw();
  }

  setSelected(selected: [number, number] | undefined): void {
    this.selected = selected;
    this.draw();
  }

  private cellAt(e: MouseEvent): [number, number] | undefined {
    const s = this.spec;
    if (!s) return undefined;
    const r = this.canvas.getBoundingClientRect();
    const x = e.clientX - r.left - this.geo.left;
    const y = e.clientY - r.top - this.geo.top;
    const col = Math.floor(x / this.geo.cw);
    const row = Math.floor(y / this.geo.ch);
    return row >= 0 && col >= 0 && row < s.rows.length && col < s.cols.length && x >= 0 && y >= 0 ? [row, col] : undefined;
  }

  private hover(e: MouseEvent): void {
    const s = this.spec;
    const cell = this.cellAt(e);
    const v = cell && s ? s.value(cell[0], cell[1]) : undefined;
    const text = cell && s && v !== undefined ? s.describe(cell[0], cell[1], v) : '';
    this.readout.textContent = text || '\u00a0';
    this.canvas.title = text;
  }

  draw(): void {
    const s = this.spec;
    const t = this.theme;
    if (!s || !t) return;
    const ctx0 = this.canvas.getContext('2d');
    if (!ctx0) return;
    ctx0.font = t.font;
    const labelW = Math.max(...s.rows.map((r) => ctx0.measureText(r).width), 10);
    const colLabelW = Math.max(...s.cols.map((c) => ctx0.measureText(c).width), 10);
    const avail = Math.max(240, (this.element.clientWidth || 600) - 4);
    const left = PAD + 14 + labelW + 6;
    const cw = Math.max(6, Math.min(s.maxCell ?? 96, Math.floor((avail - left - PAD) / Math.max(1, s.cols.length))));
    const ch = Math.max(6, Math.min(28, cw));
    // column labels horizontal when they fit, else every k-th one
    const every = Math.max(1, Math.ceil((colLabelW + 6) / cw));
    const top = PAD + 14;
    const gridW = cw * s.cols.length;
    const gridH = ch * s.rows.length;
    const width = Math.max(left + gridW + PAD, 260);
    const height = top + gridH + 18 + 14 + LEGEND_H;
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(width * dpr);
    this.canvas.height = Math.round(height * dpr);
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    this.geo = { left, top, cw, ch };
    const ctx = ctx0;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.font = t.font;
    ctx.fillStyle = t.background;
    ctx.fillRect(0, 0, width, height);

    const span = s.max - s.min || 1;
    const colour = (v: number) => mixColor(t.low, t.high, 0.08 + 0.92 * ((v - s.min) / span));
    for (let r = 0; r < s.rows.length; r++) {
      for (let c = 0; c < s.cols.length; c++) {
        const v = s.value(r, c);
        const x = left + c * cw;
        const y = top + r * ch;
        if (v === undefined) {
          ctx.strokeStyle = t.grid;
          ctx.globalAlpha = 0.35;
          ctx.strokeRect(x + 0.5, y + 0.5, cw - 1, ch - 1);
          ctx.globalAlpha = 1;
          continue;
        }
        ctx.fillStyle = colour(v);
        ctx.fillRect(x, y, cw - (cw > 10 ? 1 : 0), ch - (ch > 10 ? 1 : 0));
      }
    }
    if (this.selected) {
      const [r, c] = this.selected;
      ctx.strokeStyle = t.accent;
      ctx.lineWidth = 2;
      ctx.strokeRect(left + c * cw + 1, top + r * ch + 1, cw - 3, ch - 3);
      ctx.lineWidth = 1;
    }
    // labels
    ctx.fillStyle = t.foreground;
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    const rowEvery = Math.max(1, Math.ceil(13 / ch));
    s.rows.forEach((r, i) => {
      if (i % rowEvery === 0 || i === s.rows.length - 1) ctx.fillText(r, left - 6, top + i * ch + ch / 2);
    });
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    s.cols.forEach((c, i) => {
      if (i % every === 0) ctx.fillText(c, left + i * cw + cw / 2, top + gridH + 4);
    });
    ctx.fillStyle = t.muted;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'top';
    ctx.fillText(s.colTitle, left, top + gridH + 18);
    ctx.save();
    ctx.translate(PAD, top + gridH / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = 'center';
    ctx.fillText(s.rowTitle, 0, 0);
    ctx.restore();
    ctx.textAlign = 'left';
    ctx.fillText(s.caption, left, PAD - 2);

    // legend: the scale from min to max
    const ly = top + gridH + 36;
    const lw = Math.min(220, Math.max(120, gridW));
    for (let i = 0; i < lw; i++) {
      ctx.fillStyle = colour(s.min + (span * i) / (lw - 1));
      ctx.fillRect(left + i, ly, 1, 10);
    }
    ctx.strokeStyle = t.grid;
    ctx.strokeRect(left + 0.5, ly + 0.5, lw - 1, 9);
    ctx.fillStyle = t.foreground;
    ctx.textBaseline = 'top';
    ctx.textAlign = 'left';
    ctx.fillText(s.format(s.min), left, ly + 13);
    ctx.textAlign = 'right';
    ctx.fillText(s.format(s.max), left + lw, ly + 13);
    ctx.textAlign = 'left';
    ctx.fillStyle = t.muted;
    ctx.fillText(s.caption, left + lw + 10, ly);
  }
}
