/**
 * The Analyze panel's page (counterpart: extension/analyze/panel.ts; protocol: webview/protocol.ts). It shows
 * what `lora-studio analyze` found, as section 7 of the LoRA paper reads an adapter: ‖ΔW‖_F per layer × module
 * (a heatmap; a click selects a module), the singular values of the selected module's ΔW with the energy in
 * its top 1/2/4 directions and its stable rank, with a second adapter the subspace similarity φ(i, j) of the
 * selected module (Figures 3/4), and with the base model the amplification table. Each chart saves as a PNG.
 */
import './litNonce'; // first: Lit reads the nonce when it loads
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-checkbox/index.js';
import 'uplot/dist/uPlot.min.css';
import uPlot from 'uplot';
import { isAnalyzeHostMessage, type AnalysisData, type AnalysisModule, type AnalyzeHostMessage } from './protocol';
import { energyAt, heatmapLayout, type HeatLayout } from './heatmap';
import { HeatmapCanvas } from './heatmapCanvas';
import { Banner, el, onThemeChange, panelApi, pngOf, readPanelTheme, saveButton, type PanelTheme } from './panelKit';
import { formatNumber } from './runState';

interface State {
  v: 1;
  selected: string | null;
  log: boolean;
}

const api = panelApi<State>();
const saved = api.getState();
let state: State = saved && saved.v === 1 ? saved : { v: 1, selected: null, log: false };
let data: AnalysisData | undefined;
let layout: HeatLayout | undefined;
let theme: PanelTheme = readPanelTheme();
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

// ---- the page ----

const root = document.getElementById('app')!;
const banner = new Banner();
const header = el('header');
const title = el('h1', undefined, 'Adapter analysis');
const sources = el('dl', 'sources');
const warnings = el('ul', 'warnings');
header.append(title, sources);

function section(name: string, ...children: HTMLElement[]): { box: HTMLElement; heading: HTMLElement; tools: HTMLElement } {
  const box = el('section', 'panel-section');
  const bar = el('div', 'section-bar');
  const heading = el('h2', undefined, name);
  const tools = el('div', 'section-tools');
  bar.append(heading, tools);
  box.append(bar, ...children);
  return { box, heading, tools };
}

// ‖ΔW‖_F heatmap
const normMap = new HeatmapCanvas((r, c) => {
  const cell = layout?.cells.find((x) => x.row === r && x.col === c);
  if (cell) select(cell.name);
});
const normHelp = el('p', 'help', 'How much each module changed: the Frobenius norm of ΔW = (lora_alpha / r) · B·A. Click a cell to see its spectrum.');
const norms = section('‖ΔW‖_F per layer and module', normHelp, normMap.element);
norms.tools.append(saveButton(api, () => 'delta-norm-heatmap', () => pngOf([normMap.canvas], theme.background)));

// spectrum
const spectrumHost = el('div', 'chart-plot');
const spectrumStats = el('p', 'stats');
const logBox = el('vscode-checkbox', undefined) as HTMLElement & { checked: boolean; label: string };
logBox.label = 'log scale';
let spectrum: uPlot | undefined;
const spectra = section('Singular values', spectrumStats, spectrumHost);
spectra.tools.append(logBox, saveButton(api, () => `spectrum-${state.selected ?? 'module'}`, () => (spectrum ? pngOf([spectrum.ctx.canvas], theme.background) : undefined)));
logBox.addEventListener('change', () => {
  state = { ...state, log: logBox.checked };
  api.setState(state);
  drawSpectrum();
});

// φ
const phiMap = new HeatmapCanvas();
const phiNote = el('p', 'help');
const phis = section('Subspace similarity φ(i, j)', phiNote, phiMap.element);
phis.tools.append(saveButton(api, () => `phi-${state.selected ?? 'module'}`, () => pngOf([phiMap.canvas], theme.background)));

// amplification
const ampTable = el('table', 'amp');
const ampNote = el('p', 'help', 'How much ΔW amplifies directions W already has: ‖ΔW‖_F / ‖UᵀWV‖_F, where U, V are the top-r singular directions of ΔW; the random baseline is ‖UᵀWV‖_F for random orthonormal U, V.');
const amps = section('Amplification of W\'s directions', ampNote, ampTable);

const empty = el('p', 'help', 'Analyzing…');
root.append(header, banner.element, warnings, empty, norms.box, spectra.box, phis.box, amps.box);
root.removeAttribute('aria-busy');
for (const s of [norms.box, spectra.box, phis.box, amps.box]) s.hidden = true;

// ---- drawing ----

const selectedModule = (): AnalysisModule | undefined => data?.modules.find((m) => m.name === state.selected);

function select(name: string): void {
  state = { ...state, selected: name };
  api.setState(state);
  const cell = layout?.cells.find((c) => c.name === name);
  normMap.setSelected(cell ? [cell.row, cell.col] : undefined);
  ampTable.querySelectorAll<HTMLElement>('tr[data-module]').forEach((tr) => tr.classList.toggle('selected', tr.dataset.module === name));
  drawSpectrum();
  drawPhi();
  reportRendered();
}

function drawNorms(): void {
  if (!data || !layout) return;
  const byCell = new Map(layout.cells.map((c) => [`${c.row},${c.col}`, c.name]));
  const byName = new Map(data.modules.map((m) => [m.name, m]));
  const values = data.modules.map((m) => m.delta_fro);
  const L = layout;
  const cell = L.cells.find((c) => c.name === state.selected);
  normMap.set({
    rows: L.rows,
    cols: L.cols,
    rowTitle: 'layer',
    colTitle: 'module',
    caption: '‖ΔW‖_F',
    min: 0,
    max: Math.max(...values, 1e-12),
    value: (r, c) => {
      const name = byCell.get(`${r},${c}`);
      return name ? byName.get(name)!.delta_fro : undefined;
    },
    format: (v) => formatNumber(v, 3),
    describe: (r, c, v) => {
      const m = byName.get(byCell.get(`${r},${c}`)!)!;
      return `${m.name} · ‖ΔW‖_F ${formatNumber(v)} · r ${m.r} · stable rank ${formatNumber(m.stable_rank, 3)}`;
    },
  }, theme, cell ? [cell.row, cell.col] : undefined);
}

function drawSpectrum(): void {
  const m = selectedModule();
  spectrum?.destroy();
  spectrum = undefined;
  if (!m) {
    spectrumStats.textContent = 'Select a module in the heatmap.';
    return;
  }
  spectra.heading.textContent = `Singular values of ΔW · ${m.name}`;
  spectrumStats.textContent = `r = ${m.r} · energy in the top 1 / 2 / 4 directions: ${[1, 2, 4].map((k) => pct(energyAt(m.singular_values, k))).join(' / ')} · stable rank ${formatNumber(m.stable_rank, 3)} · ‖ΔW‖_F ${formatNumber(m.delta_fro)}`;
  logBox.checked = state.log;
  const xs = m.singular_values.map((_, i) => i + 1);
  const ys = m.singular_values.map((v) => (state.log && !(v > 0) ? null : v));
  const axis: uPlot.Axis = { stroke: theme.foreground, font: theme.font, grid: { stroke: theme.grid, width: 1 }, ticks: { stroke: theme.grid, width: 1 } };
  spectrum = new uPlot({
    width: Math.max(240, spectrumHost.clientWidth || 600),
    height: 220,
    scales: { x: { time: false, range: [0.4, m.singular_values.length + 0.6] }, y: state.log ? { distr: 3 } : { range: (_u, _min, max) => [0, max * 1.05 || 1] } },
    legend: { show: true, live: true },
    cursor: { drag: { x: false, y: false } },
    axes: [
      { ...axis, label: 'i (direction)', labelFont: theme.font, labelSize: 16, incrs: [1, 2, 4, 8, 16, 32], values: (_u, splits) => splits.map((s) => (Number.isInteger(s) ? String(s) : '')) },
      { ...axis, size: 58, values: (_u, splits) => splits.map((s) => formatNumber(s, 3)) },
    ],
    series: [
      { label: 'i' },
      {
        label: 'σ_i',
        stroke: theme.series[0],
        fill: theme.series[0],
        width: 1,
        paths: uPlot.paths.bars!({ size: [0.7, 48] }),
        points: { show: false },
        value: (_u, v) => (v === null ? '—' : formatNumber(v)),
      },
    ],
  }, [xs, ys], spectrumHost);
}

function drawPhi(): void {
  if (!data || data.similarity.length === 0) {
    phis.box.hidden = true;
    return;
  }
  phis.box.hidden = false;
  const sim = data.similarity.find((s) => s.name === state.selected);
  if (!sim) {
    phiMap.element.hidden = true;
    phiNote.textContent = state.selected
      ? `${state.selected} is adapted by only one of the two adapters. φ is there for: ${data.similarity.map((s) => s.name).slice(0, 6).join(', ')}${data.similarity.length > 6 ? ', …' : ''}.`
      : 'Select a module in the heatmap.';
    return;
  }
  phiMap.element.hidden = false;
  const rows = sim.phi.length;
  const cols = rows ? sim.phi[0].length : 0;
  phiNote.textContent = `φ(i, j) = ‖U_A1,iᵀ U_A2,j‖²_F / min(i, j): how much of the top-i directions of this adapter's A lie in the span of the other adapter's top-j (1: contained, 0: orthogonal).`;
  phis.heading.textContent = `Subspace similarity φ(i, j) · ${sim.name}`;
  phiMap.set({
    rows: Array.from({ length: rows }, (_, i) => String(i + 1)),
    cols: Array.from({ length: cols }, (_, j) => String(j + 1)),
    rowTitle: 'i (this adapter)',
    colTitle: 'j (the other adapter)',
    caption: 'φ',
    min: 0,
    max: 1,
    maxCell: 40,
    value: (i, j) => sim.phi[i]?.[j],
    format: (v) => v.toFixed(1),
    describe: (i, j, v) => `φ(${i + 1}, ${j + 1}) = ${v.toFixed(3)}`,
  }, theme);
}

function drawAmplification(): void {
  const rows = data?.modules.filter((m) => m.amplification) ?? [];
  amps.box.hidden = rows.length === 0;
  ampTable.replaceChildren();
  if (!rows.length) return;
  const head = el('tr');
  for (const h of ['module', 'factor', '‖UᵀWV‖_F', 'random baseline', '‖ΔW‖_F']) head.append(el('th', undefined, h));
  const thead = el('thead');
  thead.append(head);
  const tbody = el('tbody');
  for (const m of rows) {
    const a = m.amplification!;
    const tr = el('tr');
    tr.dataset.module = m.name;
    tr.tabIndex = 0;
    tr.classList.toggle('selected', m.name === state.selected);
    tr.append(el('td', 'name', m.name), el('td', 'num', formatNumber(a.factor, 4)), el('td', 'num', formatNumber(a.projected_fro)), el('td', 'num', formatNumber(a.random_fro)), el('td', 'num', formatNumber(m.delta_fro)));
    tr.addEventListener('click', () => select(m.name));
    tr.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') select(m.name);
    });
    tbody.append(tr);
  }
  ampTable.append(thead, tbody);
}

function drawAll(): void {
  drawNorms();
  drawSpectrum();
  drawPhi();
  drawAmplification();
  reportRendered();
}

function reportRendered(): void {
  if (!data || !layout) return;
  const sim = data.similarity.find((s) => s.name === state.selected);
  api.postMessage({
    type: 'rendered',
    charts: {
      heatmap: layout.cells.length,
      spectrum: selectedModule()?.singular_values.length ?? 0,
      phi: sim ? sim.phi.length * (sim.phi[0]?.length ?? 0) : 0,
      amplification: data.modules.filter((m) => m.amplification).length,
    },
  });
}

function show(d: AnalysisData): void {
  data = d;
  layout = heatmapLayout(d.modules.map((m) => m.name));
  empty.hidden = d.modules.length > 0;
  empty.textContent = 'The adapter has no LoRA modules.';
  sources.replaceChildren();
  const add = (k: string, v: string | null) => {
    if (v) sources.append(el('dt', undefined, k), el('dd', undefined, v));
  };
  add('adapter', d.adapter);
  add('compared with', d.compare);
  add('base model', d.base);
  warnings.replaceChildren(...d.warnings.map((w) => el('li', undefined, w)));
  for (const s of [norms.box, spectra.box]) s.hidden = d.modules.length === 0;
  if (!d.modules.some((m) => m.name === state.selected)) {
    // the module that changed most (of those both adapters adapt, when there is a comparison)
    const both = new Set(d.similarity.map((x) => x.name));
    const pool = d.modules.some((m) => both.has(m.name)) ? d.modules.filter((m) => both.has(m.name)) : d.modules;
    const top = [...pool].sort((a, b) => b.delta_fro - a.delta_fro)[0];
    state = { ...state, selected: top?.name ?? null };
    api.setState(state);
  }
  drawAll();
}

function handle(m: AnalyzeHostMessage): void {
  switch (m.type) {
    case 'analysis':
      banner.show(null);
      show(m.data);
      return;
    case 'error':
      data = undefined;
      empty.hidden = false;
      empty.textContent = 'No analysis.';
      for (const s of [norms.box, spectra.box, phis.box, amps.box]) s.hidden = true;
      banner.show('error', `The analysis failed: ${m.message}`);
      api.postMessage({ type: 'rendered', charts: { error: 1 } });
      return;
    case 'notice':
      banner.show(m.level, m.message);
      return;
  }
}

window.addEventListener('message', (e: MessageEvent<unknown>) => {
  if (isAnalyzeHostMessage(e.data)) handle(e.data);
  else console.warn('LoRA Studio analysis: ignored a malformed message', e.data);
});
onThemeChange(() => {
  theme = readPanelTheme();
  drawAll();
});
let resizeTimer: ReturnType<typeof setTimeout> | undefined;
new ResizeObserver(() => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (!data) return;
    drawNorms();
    drawPhi();
    spectrum?.setSize({ width: Math.max(240, spectrumHost.clientWidth || 600), height: 220 });
  }, 100);
}).observe(root);
api.postMessage({ type: 'ready' });
