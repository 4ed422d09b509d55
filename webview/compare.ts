/**
 * The Compare Runs page (counterpart: extension/analyze/panel.ts; protocol: webview/protocol.ts): the train loss
 * and every eval metric of several runs overlaid (one colour per run, the legend by run name; train loss
 * smoothed as on the dashboard, the raw curves faint behind), and a table of the run-config fields whose
 * values differ. Each chart saves as a PNG.
 */
import './litNonce'; // first: Lit reads the nonce when it loads
import '@vscode-elements/elements/dist/vscode-button/index.js';
import 'uplot/dist/uPlot.min.css';
import uPlot from 'uplot';
import { isCompareHostMessage, type CompareHostMessage, type CompareRun, type ConfigDiffRow, type XY } from './protocol';
import { Banner, el, onThemeChange, panelApi, pngOf, readPanelTheme, saveButton, type PanelTheme } from './panelKit';
import { stepChartOptions, stepLines } from './stepChart';
import { DEFAULT_SMOOTHING, MAX_SMOOTHING, clampSmoothing, emaSmooth } from './smoothing';

interface State {
  v: 1;
  smoothing: number;
}

const api = panelApi<State>();
const saved = api.getState();
let state: State = saved && saved.v === 1 ? { v: 1, smoothing: clampSmoothing(saved.smoothing) } : { v: 1, smoothing: DEFAULT_SMOOTHING };
let theme: PanelTheme = readPanelTheme();
let current: Extract<CompareHostMessage, { type: 'compare' }> | undefined;
const HEIGHT = 220;

const root = document.getElementById('app')!;
const banner = new Banner();
const header = el('header');
header.append(el('h1', undefined, 'Run comparison'));
const legend = el('ul', 'run-legend');
const smoothingRow = el('div', 'smoothing');
const smoothingLabel = el('label', undefined, 'Smoothing');
smoothingLabel.htmlFor = 'smoothing';
const smoothingInput = el('input');
smoothingInput.type = 'range';
smoothingInput.id = 'smoothing';
smoothingInput.min = '0';
smoothingInput.max = String(MAX_SMOOTHING);
smoothingInput.step = '0.001';
smoothingInput.value = String(state.smoothing);
const smoothingValue = el('span', 'smoothing-value', state.smoothing.toFixed(3));
smoothingRow.append(smoothingLabel, smoothingInput, smoothingValue);
const chartsHost = el('div', 'charts');
const diffBox = el('section', 'panel-section');
const diffBar = el('div', 'section-bar');
diffBar.append(el('h2', undefined, 'Run config: what differs'));
const diffBody = el('div', 'diff');
diffBox.append(diffBar, diffBody);
root.append(header, banner.element, legend, smoothingRow, chartsHost, diffBox);
root.removeAttribute('aria-busy');

smoothingInput.addEventListener('input', () => {
  state = { ...state, smoothing: clampSmoothing(Number(smoothingInput.value)) };
  smoothingValue.textContent = state.smoothing.toFixed(3);
  api.setState(state);
  drawCharts();
});

const charts: uPlot[] = [];

/** One chart of `curves` (one per run; undefined where a run lacks it) against the step. */
function chart(title: string, runs: CompareRun[], curves: Array<XY | undefined>, smooth: boolean): void {
  const box = el('section', 'chart');
  const bar = el('div', 'section-bar');
  bar.append(el('h3', undefined, title));
  const host = el('div', 'chart-plot');
  box.append(bar, host);
  chartsHost.append(box);
  const present = curves.map((c, i) => ({ c, i })).filter((x): x is { c: XY; i: number } => x.c !== undefined && x.c[0].length > 0);
  // one x axis over every run's steps (uPlot.join fills the gaps with null)
  const tables: uPlot.AlignedData[] = present.flatMap(({ c }) => (smooth ? [[c[0], c[1]], [c[0], Array.from(emaSmooth(c[1], state.smoothing))]] : [[c[0], c[1]]]) as uPlot.AlignedData[]);
  const data = uPlot.join(tables);
  const series = present.flatMap(({ i }) => stepLines(runs[i].name, theme.series[i % theme.series.length], theme, smooth));
  const plot = new uPlot(stepChartOptions(theme, Math.max(260, host.clientWidth || 480), HEIGHT, series), data, host);
  charts.push(plot);
  bar.append(saveButton(api, () => `compare-${title}`, () => pngOf([plot.ctx.canvas], theme.background)));
}

function drawCharts(): void {
  for (const c of charts.splice(0)) c.destroy();
  chartsHost.replaceChildren();
  if (!current) return;
  const runs = current.runs;
  if (runs.some((r) => r.loss[0].length > 0)) chart('Train loss', runs, runs.map((r) => r.loss), true);
  const metrics = [...new Set(runs.flatMap((r) => Object.keys(r.evals)))].sort((a, b) => (a === 'eval_loss' ? -1 : b === 'eval_loss' ? 1 : a.localeCompare(b)));
  for (const m of metrics) chart(m.replace(/^eval_/, 'Eval ').replace(/_/g, ' '), runs, runs.map((r) => r.evals[m]), false);
  if (!chartsHost.childElementCount) chartsHost.append(el('p', 'help', 'None of these runs has a step or eval event yet.'));
}

function drawLegend(): void {
  legend.replaceChildren();
  current?.runs.forEach((r, i) => {
    const li = el('li');
    const swatch = el('canvas', 'swatch');
    swatch.width = 12;
    swatch.height = 12;
    const ctx = swatch.getContext('2d');
    if (ctx) {
      ctx.fillStyle = theme.series[i % theme.series.length];
      ctx.fillRect(0, 0, 12, 12);
    }
    li.append(swatch, el('span', 'run-name', r.name), el('span', 'run-dir', r.dir));
    legend.append(li);
  });
}

function drawDiff(rows: ConfigDiffRow[], runs: CompareRun[], sources: Array<string | null>): void {
  diffBody.replaceChildren();
  const missing = runs.filter((_, i) => sources[i] === null).map((r) => r.name);
  if (missing.length) diffBody.append(el('p', 'help', `No run config found for ${missing.join(', ')} (no checkpoint-N/run_config.json, and no lora-run.json whose output_dir is that folder).`));
  if (rows.length === 0) {
    diffBody.append(el('p', 'help', runs.length - missing.length >= 2 ? 'The run configs agree on every field.' : 'Fewer than two run configs were found: nothing to compare.'));
    return;
  }
  const table = el('table', 'diff-table');
  const head = el('tr');
  head.append(el('th', undefined, 'field'), ...runs.map((r) => el('th', undefined, r.name)));
  const thead = el('thead');
  thead.append(head);
  const tbody = el('tbody');
  for (const row of rows) {
    const tr = el('tr');
    tr.append(el('td', 'name', row.path), ...row.values.map((v) => el('td', v === null ? 'absent' : 'value', v === null ? '—' : v)));
    tbody.append(tr);
  }
  table.append(thead, tbody);
  diffBody.append(table);
  const where = el('ul', 'sources-list');
  runs.forEach((r, i) => {
    if (sources[i]) where.append(el('li', undefined, `${r.name}: ${sources[i]}`));
  });
  diffBody.append(el('p', 'help', 'Run configs read from:'), where);
}

function drawAll(): void {
  if (!current) return;
  drawLegend();
  drawCharts();
  drawDiff(current.diff, current.runs, current.configSources);
  api.postMessage({ type: 'rendered', charts: { runs: current.runs.length, charts: charts.length, diff: current.diff.length } });
}

function handle(m: CompareHostMessage): void {
  switch (m.type) {
    case 'compare':
      current = m;
      banner.show(null);
      drawAll();
      return;
    case 'notice':
      banner.show(m.level, m.message);
      return;
  }
}

window.addEventListener('message', (e: MessageEvent<unknown>) => {
  if (isCompareHostMessage(e.data)) handle(e.data);
  else console.warn('LoRA Studio run comparison: ignored a malformed message', e.data);
});
onThemeChange(() => {
  theme = readPanelTheme();
  if (current) {
    drawLegend();
    drawCharts();
  }
});
let resizeTimer: ReturnType<typeof setTimeout> | undefined;
new ResizeObserver(() => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    for (const c of charts) {
      const host = c.root.parentElement;
      if (host) c.setSize({ width: Math.max(260, host.clientWidth || 480), height: HEIGHT });
    }
  }, 100);
}).observe(root);
api.postMessage({ type: 'ready' });
