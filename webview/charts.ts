/**
 * The live charts (uPlot): train loss, eval loss, eval metric, learning rate, tokens/s, gradient norm and memory,
 * against the step. Loss and tokens/s are smoothed as TensorBoard smooths (smoothing.ts), the raw series drawn
 * faintly behind. A chart with no data in this run (no eval → no eval loss) is hidden; train loss always shows.
 * Redraws at most once per animation frame and only when the run or the smoothing changed; large series are cut
 * down with the min/max selection of series.ts. Colours come only from VS Code's CSS variables, read with
 * getComputedStyle, and the charts are rebuilt when the theme changes.
 */
import uPlot from 'uplot';
import { downsample } from './series';
import { DEFAULT_SMOOTHING, emaSmooth } from './smoothing';
import type { RunState, SeriesTable } from './runState';
import { stepChartOptions, stepLines } from './stepChart';

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
  /** drawn smoothed (EMA with debias), the raw series faint behind */
  smooth?: boolean;
  /** shown even before it has data (with "No data yet") */
  always?: boolean;
}

const SPECS: readonly ChartSpec[] = [
  { title: 'Train loss', table: 'train', columns: () => ['loss'], smooth: true, always: true },
  { title: 'Eval loss', table: 'evals', columns: () => ['eval_loss'] },
  { title: 'Eval metric', table: 'evals', columns: (run) => run.evalMetricNames(), label: (c) => c.replace(/^eval_/, '') },
  { title: 'Learning rate', table: 'train', columns: () => ['learning_rate'] },
  { title: 'Tokens / s', table: 'train', columns: () => ['tokens_per_second'], smooth: true },
  { title: 'Gradient norm', table: 'train', columns: () => ['grad_norm'] },
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
  private drawnSmoothing = NaN;
  private readonly box: HTMLElement;
  private readonly plotHost: HTMLElement;
  private readonly empty: HTMLElement;

  constructor(readonly spec: ChartSpec, parent: HTMLElement) {
    const box = (this.box = document.createElement('section'));
    box.className = 'chart';
    box.hidden = !spec.always;
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
    const lines = columns.flatMap((c, i) => {
      const label = this.spec.label ? this.spec.label(c) : c;
      return stepLines(label, theme.series[i % theme.series.length], theme, !!this.spec.smooth, `${label} (smoothed)`);
    });
    const opts = stepChartOptions(theme, Math.max(200, this.plotHost.clientWidth), HEIGHT, lines);
    const perColumn = this.spec.smooth ? 2 : 1;
    this.plot = new uPlot(opts, [[], ...Array.from({ length: columns.length * perColumn }, () => [])], this.plotHost);
    this.drawnVersion = -1;
  }

  /** Redraws from the run when it (or the smoothing) changed since the last draw. */
  draw(run: RunState, theme: Theme, smoothing: number, force = false): void {
    const smoothingChanged = this.spec.smooth === true && smoothing !== this.drawnSmoothing;
    if (!force && run.version === this.drawnVersion && !smoothingChanged) return;
    const table: SeriesTable = run[this.spec.table];
    const columns = this.spec.columns(run).filter((c) => table.cols.has(c));
    const hasData = table.length > 0 && columns.length > 0;
    this.empty.hidden = hasData;
    this.box.hidden = !hasData && !this.spec.always;
    if (this.box.hidden) {
      // not built while hidden (its width is 0); built when data arrives
      this.drawnVersion = run.version;
      return;
    }
    if (!this.plot || force || columns.join('\n') !== this.columns.join('\n')) this.build(columns, theme);
    const raw = columns.map((c) => table.cols.get(c)!.view());
    const ys = this.spec.smooth ? raw.flatMap((y) => [y, emaSmooth(y, smoothing)]) : raw;
    this.plot!.setData(downsample(table.x.view(), ys, table.length, MAX_DRAW_POINTS) as uPlot.AlignedData);
    this.drawnVersion = run.version;
    this.drawnSmoothing = smoothing;
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
  private smoothing = DEFAULT_SMOOTHING;

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

  /** The smoothing weight of the smoothed charts (0: raw); redraws them. */
  setSmoothing(w: number): void {
    if (w === this.smoothing) return;
    this.smoothing = w;
    this.requestDraw();
  }

  /** Schedules one redraw on the next animation frame (repeated calls before it coalesce). */
  requestDraw(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      const force = this.rebuild;
      this.rebuild = false;
      for (const c of this.charts) c.draw(this.run, this.theme, this.smoothing, force);
    });
  }
}
