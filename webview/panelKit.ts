/**
 * What the Analyze and Compare pages share: the VS Code API handle, elements built with textContent only, the
 * theme's colours (read from VS Code's CSS variables, re-read when the body's theme class changes), the banner,
 * and "Save PNG": a canvas (ours, or uPlot's) copied onto the theme's background and posted to the host, which
 * asks where to save it. No inline styles or handlers: the page's CSP allows neither.
 */
import type { PanelWebviewMessage } from './protocol';
import { parseColor, type Rgba } from './heatmap';

export interface PanelApi<S> {
  postMessage(m: PanelWebviewMessage): void;
  getState(): S | undefined;
  setState(s: S): void;
}
declare function acquireVsCodeApi<S>(): PanelApi<S>;

export function panelApi<S>(): PanelApi<S> {
  return acquireVsCodeApi<S>();
}

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

export interface PanelTheme {
  foreground: string;
  muted: string;
  background: string;
  grid: string;
  font: string;
  /** the heatmaps' scale: from the background (0) to the chart colour (max) */
  low: Rgba;
  high: Rgba;
  accent: string;
  highContrast: boolean;
  series: string[];
}

const SERIES_VARS = ['--vscode-charts-blue', '--vscode-charts-orange', '--vscode-charts-green', '--vscode-charts-purple', '--vscode-charts-red', '--vscode-charts-yellow'];

/** A CSS colour as rgba components, through the canvas's own parsing when the text is not #hex or rgb(). */
export function toRgba(css: string, fallback: Rgba): Rgba {
  const direct = parseColor(css);
  if (direct) return direct;
  const ctx = document.createElement('canvas').getContext('2d');
  if (!ctx) return fallback;
  ctx.fillStyle = '#000000';
  ctx.fillStyle = css;
  return parseColor(String(ctx.fillStyle)) ?? fallback;
}

export function readPanelTheme(): PanelTheme {
  const css = getComputedStyle(document.documentElement);
  const v = (name: string, fallback: string) => css.getPropertyValue(name).trim() || fallback;
  const foreground = v('--vscode-editor-foreground', v('--vscode-foreground', '#cccccc'));
  const background = v('--vscode-editor-background', '#1e1e1e');
  const high = v('--vscode-charts-blue', foreground);
  return {
    foreground,
    muted: v('--vscode-descriptionForeground', foreground),
    background,
    grid: v('--vscode-charts-lines', v('--vscode-panel-border', '#808080')),
    font: `11px ${v('--vscode-font-family', 'sans-serif')}`,
    low: toRgba(background, [30, 30, 30, 1]),
    high: toRgba(high, [55, 148, 255, 1]),
    accent: v('--vscode-focusBorder', foreground),
    highContrast: document.body.classList.contains('vscode-high-contrast') || document.body.classList.contains('vscode-high-contrast-light'),
    series: SERIES_VARS.map((n) => v(n, foreground)),
  };
}

/** Calls `fn` when VS Code switches the theme (it changes the body's class and the CSS variables together). */
export function onThemeChange(fn: () => void): void {
  new MutationObserver(fn).observe(document.body, { attributes: true, attributeFilter: ['class'] });
}

/** A PNG data: URL of `canvases` stacked top to bottom on the theme's background (a chart and its legend, say). */
export function pngOf(canvases: readonly HTMLCanvasElement[], background: string): string {
  const w = Math.max(1, ...canvases.map((c) => c.width));
  const h = Math.max(1, canvases.reduce((s, c) => s + c.height, 0));
  const out = document.createElement('canvas');
  out.width = w;
  out.height = h;
  const ctx = out.getContext('2d')!;
  ctx.fillStyle = background;
  ctx.fillRect(0, 0, w, h);
  let y = 0;
  for (const c of canvases) {
    ctx.drawImage(c, 0, y);
    y += c.height;
  }
  return out.toDataURL('image/png');
}

/** A "Save PNG" button that posts the image `image()` returns (undefined: nothing to save) under `name()`. */
export function saveButton(api: PanelApi<unknown>, name: () => string, image: () => string | undefined): HTMLElement {
  const b = el('vscode-button', 'save', 'Save PNG');
  (b as HTMLElement & { secondary: boolean }).secondary = true;
  b.title = 'Save this chart as a PNG image';
  b.addEventListener('click', () => {
    const dataUrl = image();
    if (dataUrl) api.postMessage({ type: 'saveImage', name: name(), dataUrl });
  });
  return b;
}

export class Banner {
  readonly element = el('div', 'banner');
  constructor() {
    this.element.setAttribute('role', 'alert');
    this.element.hidden = true;
  }
  show(level: 'info' | 'error' | null, message = ''): void {
    this.element.hidden = level === null;
    this.element.textContent = message;
    this.element.dataset.level = level ?? '';
  }
}
