/**
 * What every step chart (the dashboard's, the run comparison's) draws the same way: the uPlot options with a `step`
 * x axis in the theme's colours, and one line per series, or, smoothed, the raw series faint behind the smoothed one.
 */
import uPlot from 'uplot';
import { formatNumber } from './runState';

export interface StepChartTheme {
  foreground: string;
  grid: string;
  font: string;
  highContrast: boolean;
}

/** the raw series behind a smoothed one: this opaque */
const RAW_ALPHA = 0.3;

/** `colour` at `alpha`, through the canvas's own colour parsing (any CSS colour a theme gives). */
export function faint(colour: string, alpha: number): string {
  const ctx = document.createElement('canvas').getContext('2d');
  if (!ctx) return colour;
  ctx.fillStyle = '#000000';
  ctx.fillStyle = colour;
  const c = String(ctx.fillStyle);
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(c);
  if (m) return `rgba(${parseInt(m[1], 16)}, ${parseInt(m[2], 16)}, ${parseInt(m[3], 16)}, ${alpha})`;
  const r = /^rgba?\(([^,]+),([^,]+),([^,)]+)/.exec(c);
  return r ? `rgba(${r[1].trim()}, ${r[2].trim()}, ${r[3].trim()}, ${alpha})` : colour;
}

/** One series' line(s): the line alone, or (smoothed) its raw values faint first, then the smoothed line over them. */
export function stepLines(label: string, stroke: string, theme: StepChartTheme, smooth: boolean, smoothedLabel = label): uPlot.Series[] {
  const line = {
    label,
    stroke,
    width: theme.highContrast ? 2 : 1.5,
    points: { show: false },
    spanGaps: true,
    value: (_u: uPlot, v: number | null) => (v === null ? '—' : formatNumber(v)),
  };
  if (!smooth) return [line];
  return [{ ...line, label: `${label} (raw)`, stroke: faint(stroke, theme.highContrast ? 0.6 : RAW_ALPHA), width: 1 }, { ...line, label: smoothedLabel }];
}

/** uPlot options of a chart against the step: theme-coloured axes, a live legend, x-drag zoom. */
export function stepChartOptions(theme: StepChartTheme, width: number, height: number, series: uPlot.Series[]): uPlot.Options {
  const axis: uPlot.Axis = { stroke: theme.foreground, font: theme.font, grid: { stroke: theme.grid, width: 1 }, ticks: { stroke: theme.grid, width: 1 } };
  return {
    width,
    height,
    scales: { x: { time: false } },
    legend: { show: true, live: true },
    cursor: { drag: { x: true, y: false } },
    axes: [
      { ...axis, label: 'step', labelFont: theme.font, labelSize: 16 },
      { ...axis, size: 58, values: (_u, splits) => splits.map((s) => formatNumber(s, 3)) },
    ],
    series: [{ label: 'step' }, ...series],
  };
}
