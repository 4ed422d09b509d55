/**
 * The one place that builds the dashboard's HTML and its Content-Security-Policy. It takes the webview's
 * cspSource and the resource URIs as strings, so it runs (and is tested) without vscode.
 *
 * The policy: nothing by default; scripts only with this page's nonce (no 'unsafe-eval', no 'unsafe-inline');
 * styles from the extension's resources (dist/webview/main.css with uPlot's CSS, media/dashboard.css) or with
 * the nonce (Lit's fallback <style> carries it; normally Lit uses constructable stylesheets, which CSP does not
 * govern); images from the resources or data: URIs; fonts from the resources. No inline event handlers.
 */
import { randomBytes } from 'node:crypto';

/** The folders of the extension the webview may load from (its localResourceRoots). */
export const RESOURCE_ROOTS: readonly string[] = ['dist', 'media'];
/** The page's script and style sheets, as path segments under the extension's folder. */
export const DASHBOARD_SCRIPT: readonly string[] = ['dist', 'webview', 'main.js'];
export const DASHBOARD_STYLES: readonly (readonly string[])[] = [
  ['dist', 'webview', 'main.css'], // uPlot's CSS, bundled by esbuild from webview/main.ts
  ['media', 'dashboard.css'],
];

/** A fresh nonce per page: 16 random bytes from crypto.randomBytes, base64. */
export function makeNonce(): string {
  return randomBytes(16).toString('base64');
}

export interface DashboardHtmlOptions {
  /** webview.cspSource */
  cspSource: string;
  /** webview URI of dist/webview/main.js */
  scriptUri: string;
  /** webview URIs of the style sheets, in order (dist/webview/main.css, media/dashboard.css) */
  styleUris: readonly string[];
  /** defaults to a fresh makeNonce() */
  nonce?: string;
  title?: string;
}

export function buildCsp(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `style-src ${cspSource} 'nonce-${nonce}'`,
    `script-src 'nonce-${nonce}'`,
    `img-src ${cspSource} data:`,
    `font-src ${cspSource}`,
  ].join('; ');
}

/** Escapes text for element content and double-quoted attribute values (single quotes may stay, as in the CSP). */
const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ESC[c]);

export function buildDashboardHtml(o: DashboardHtmlOptions): string {
  const nonce = o.nonce ?? makeNonce();
  const styles = o.styleUris.map((u) => `  <link rel="stylesheet" href="${esc(u)}" nonce="${esc(nonce)}">`).join('\n');
  return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <meta http-equiv="Content-Security-Policy" content="${esc(buildCsp(o.cspSource, nonce))}">
  <meta name="viewport" content="width=device-width, initial-scale=1.0">
${styles}
  <title>${esc(o.title ?? 'LoRA Studio')}</title>
</head>
<body>
  <div id="app" role="main" aria-busy="true"></div>
  <script nonce="${esc(nonce)}" src="${esc(o.scriptUri)}"></script>
</body>
</html>
`;
}

/** A message that failed its guard, for the log: JSON, cut to 200 characters. */
export function describeMessage(raw: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(raw) ?? String(raw);
  } catch {
    s = String(raw);
  }
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}
