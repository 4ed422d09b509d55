/**
 * The live charts (uPlot): train loss, eval loss, eval metric, learning rate, tokens/s and memory, against the
 * step. Redraws at most once per animation frame and only when the run changed; large series are cut down with
 * the min/max selection of series.ts. Colours come only from VS Code's CSS variables, read with
 * getComputedStyle, and the charts are rebuilt when the theme changes.
 */
import uPlot from 'uplot';
import { downsample } from './series';
import { formatNumber, type RunState, type SeriesTable } from './runState';

/** the most points one chart draws; beyond it the min/max selection applies */
export const MAX_DRAW_POINTS = 4000;
const HEIGHT = 170;

interface ChartSpec {
  title: string;
  table: 'train' | 'evals';
  /** the table columns drawn (fixed, or chosen from the run) */
  columns: (run: RunState) => string[];
  /** label of a column in the legend */
  label?: (column: string) => string;
}

const SPECS: readonly ChartSpec[] = [
  { title: 'Train loss', table: 'train', columns: () => ['loss'] },
  { title: 'Eval loss', table: 'evals', columns: () => ['eval_loss'] },
  { title: 'Eval metric', table: 'evals', columns: (run) => run.evalMetricNames(), label: (c) => c.replace(/^eval_/, '') },
  { title: 'Learning rate', table: 'train', columns: () => ['learning_rate'] },
  { title: 'Tokens / s', table: 'train', columns: () => ['tokens_per_second'] },
  { title: 'Memory (RSS, MB)', table: 'train', columns: () => ['rss_mb'] },
];

/** Series colours, in order: VS Code's chart palette. */
const SERIES_VARS = ['--vscode-charts-blue', '--vscode-charts-orange', '--vscode-charts-purple', '--vscode-charts-green', '--vscode-charts-yellow', '--vscode-charts-red'];

interface Theme {
  foreground: string;
  grid: string;
  font: string;
  highContrast: boolean;
  series: string[];
}

function readTheme(): Theme {
  const css = getComputedStyle(document.documentElement);
  const v = (name: string, fallback: string) => css.getPropertyValue(name).trim() || fallback;
  const foreground = v('--vscode-editor-foreground', v('--vscode-foreground', 'CanvasText'));
  const family = v('--vscode-font-family', 'sans-serif');
  return {
    foreground,
    grid: v('--vscode-charts-lines', v('--vscode-panel-border', 'GrayText')),
    font: `11px ${family}`,
    highContrast: document.body.classList.contains('vscode-high-contrast') || document.body.classList.contains('vscode-high-contrast-light'),
    series: SERIES_VARS.map((name) => v(name, foreground)),
  };
}

class Chart {
  private plot: uPlot | undefined;
  private columns: string[] = [];
  private drawnVersion = -1;
  private readonly plotHost: HTMLElement;
  private readonly empty: HTMLElement;

  constructor(readonly spec: ChartSpec, parent: HTMLElement) {
    const box = document.createElement('section');
    box.className = 'chart';
    const h = document.createElement('h3');
    h.textContent = spec.title;
    this.empty = document.createElement('p');
    this.empty.className = 'chart-empty';
    this.empty.textContent = 'No data yet';
    this.plotHost = document.createElement('div');
    this.plotHost.className = 'chart-plot';
    box.append(h, this.empty, this.plotHost);
    parent.append(box);
  }

  get element(): HTMLElement {
    return this.plotHost;
  }

  private build(columns: string[], theme: Theme): void {
    this.plot?.destroy();
    this.columns = columns;
    const axis: uPlot.Axis = {
      stroke: theme.foreground,
      font: theme.font,
      grid: { stroke: theme.grid, width: 1 },
      ticks: { stroke: theme.grid, width: 1 },
    };
    const opts: uPlot.Options = {
      width: Math.max(200, this.plotHost.clientWidth),
      height: HEIGHT,
      scales: { x: { time: false } },
      legend: { show: true, live: true },
      cursor: { drag: { x: true, y: false } },
      axes: [
        { ...axis, label: 'step', labelFont: theme.font, labelSize: 16 },
        { ...axis, size: 58, values: (_u, splits) => splits.map((s) => formatNumber(s, 3)) },
      ],
      series: [
        { label: 'step' },
        ...columns.map((c, i) => ({
          label: this.spec.label ? this.spec.label(c) : c,
          stroke: theme.series[i % theme.series.length],
          width: theme.highContrast ? 2 : 1.5,
          points: { show: false },
          spanGaps: true,
          value: (_u: uPlot, v: number | null) => (v === null ? '—' : formatNumber(v)),
        })),
      ],
    };
    this.plot = new uPlot(opts, [[], ...columns.map(() => [])], this.plotHost);
    this.drawnVersion = -1;
  }

  /** Redraws from the run when it changed since the last draw. */
  draw(run: RunState, theme: Theme, force = false): void {
    if (!force && run.version === this.drawnVersion) return;
    const table: SeriesTable = run[this.spec.table];
    const columns = this.spec.columns(run).filter((c) => table.cols.has(c));
    this.empty.hidden = table.length > 0 && columns.length > 0;
    if (!this.plot || force || columns.join('\n') !== this.columns.join('\n')) this.build(columns, theme);
    const ys = columns.map((c) => table.cols.get(c)!.view());
    this.plot!.setData(downsample(table.x.view(), ys, table.length, MAX_DRAW_POINTS) as uPlot.AlignedData);
    this.drawnVersion = run.version;
  }

  resize(): void {
    if (this.plot) this.plot.setSize({ width: Math.max(200, this.plotHost.clientWidth), height: HEIGHT });
  }

  destroy(): void {
    this.plot?.destroy();
    this.plot = undefined;
  }
}

/** The grid of charts over one RunState; call requestDraw() after the run changes. */
export class ChartGrid {
  private readonly charts: Chart[];
  private theme = readTheme();
  private frame = 0;
  private rebuild = false;

  constructor(parent: HTMLElement, private readonly run: RunState) {
    this.charts = SPECS.map((s) => new Chart(s, parent));
    const resize = new ResizeObserver(() => {
      for (const c of this.charts) c.resize();
    });
    for (const c of this.charts) resize.observe(c.element);
    // VS Code switches the body's theme class and the CSS variables together
    new MutationObserver(() => {
      this.theme = readTheme();
      this.rebuild = true;
      this.requestDraw();
    }).observe(document.body, { attributes: true, attributeFilter: ['class'] });
  }

  /** Schedules one redraw on the next animation frame (repeated calls before it coalesce). */
  requestDraw(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      const force = this.rebuild;
      this.rebuild = false;
      for (const c of this.charts) c.draw(this.run, this.theme, force);
    });
  }
}
