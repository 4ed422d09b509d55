/**
 * Things both VS Code suites do with the browser workbench: wait for it, collect the notifications it shows,
 * and find elements inside webviews (each webview is an iframe.webview holding an #active-frame).
 */
import type { BrowserContext, Frame, Page } from 'playwright-core';

/** Waits until the workbench has rendered its activity bar and status bar. */
export async function workbenchReady(page: Page, timeoutMs = 90_000): Promise<void> {
  await page.waitForSelector('.monaco-workbench .part.activitybar', { timeout: timeoutMs });
  await page.waitForSelector('.monaco-workbench .part.statusbar', { timeout: timeoutMs });
}

/**
 * Polls the notification toasts and the notification center, keeping every distinct message text seen.
 * `stop()` ends the polling and returns them in order of appearance.
 */
export function recordNotifications(page: Page, everyMs = 250): { seen: string[]; stop(): Promise<string[]> } {
  const seen: string[] = [];
  let stopped = false;
  const poll = async () => {
    while (!stopped) {
      try {
        const texts = await page.evaluate(() =>
          Array.from(document.querySelectorAll('.notification-list-item-message')).map((e) => (e.textContent ?? '').trim()).filter(Boolean));
        for (const t of texts) if (!seen.includes(t)) seen.push(t);
      } catch {
        // the page is navigating or closing
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  };
  const done = poll();
  return {
    seen,
    stop: async () => {
      stopped = true;
      await done;
      return seen;
    },
  };
}

/** The frame (inside a webview) that has `selector`, searched across every frame of the page. */
export async function frameWith(page: Page, selector: string, timeoutMs = 30_000): Promise<Frame> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    for (const f of page.frames()) {
      try {
        if (await f.$(selector)) return f;
      } catch {
        // detached while we looked
      }
    }
    if (Date.now() > end) throw new Error(`no frame holds ${selector} after ${timeoutMs} ms`);
    await page.waitForTimeout(200);
  }
}

/**
 * Whether a URL belongs to a webview: its host pages (…/webview/browser/pre/index.html and fake.html) or the
 * resources it loads through them (vscode-resource / vscode-cdn URIs).
 */
export function isWebviewUrl(url: string): boolean {
  return /webview\/browser\/pre\/|vscode-resource|vscode-cdn\.net|vscode-webview:/.test(url);
}

/** Whether a frame is a webview's, or inside one. */
export function isWebviewFrame(frame: Frame | null | undefined): boolean {
  for (let f = frame; f; f = f.parentFrame()) if (isWebviewUrl(f.url())) return true;
  return false;
}

/**
 * Reports every error of every webview frame to `onError`: console.error calls, uncaught exceptions, unhandled
 * rejections and Content-Security-Policy violations. A script that Playwright adds to each new document (before
 * the page's own scripts, and regardless of its CSP) hooks them and calls a binding, which knows the frame.
 * Call it before the workbench is opened.
 */
export async function watchWebviewErrors(context: BrowserContext, onError: (line: string) => void): Promise<void> {
  await context.exposeBinding('__loraTestReportError', (source, kind: string, text: string) => {
    if (isWebviewFrame(source.frame)) onError(`[${kind}] ${text} (${source.frame.url().slice(0, 160)})`);
  });
  await context.addInitScript({ content: ERROR_HOOK });
}

/**
 * The page-side half of watchWebviewErrors, as source text: a function given to addInitScript would be
 * serialized from what tsx compiled, helper calls included, which the page does not have.
 */
const ERROR_HOOK = `(() => {
  const report = (kind, text) => { try { window.__loraTestReportError && window.__loraTestReportError(kind, text); } catch (e) {} };
  const show = (a) => {
    if (a instanceof Error) return a.stack || a.message;
    if (typeof a === 'string') return a;
    try { return JSON.stringify(a); } catch (e) { return String(a); }
  };
  const original = console.error.bind(console);
  console.error = (...args) => { report('console.error', args.map(show).join(' ')); original(...args); };
  window.addEventListener('error', (e) => report('uncaught', e.error instanceof Error ? show(e.error) : e.message));
  window.addEventListener('unhandledrejection', (e) => report('unhandled rejection', show(e.reason)));
  document.addEventListener('securitypolicyviolation', (e) =>
    report('CSP', e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber));
})();`;
