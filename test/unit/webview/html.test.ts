import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { DASHBOARD_SCRIPT, DASHBOARD_STYLES, RESOURCE_ROOTS, buildCsp, buildDashboardHtml, makeNonce } from '../../../extension/dashboard/html';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const CSP_SOURCE = 'https://file+.vscode-resource.vscode-cdn.net';
const BASE = `${CSP_SOURCE}/ext`;
const uri = (p: readonly string[]) => `${BASE}/${p.join('/')}`;

function page(nonce?: string) {
  return buildDashboardHtml({ cspSource: CSP_SOURCE, scriptUri: uri(DASHBOARD_SCRIPT), styleUris: DASHBOARD_STYLES.map(uri), nonce });
}

function cspOf(html: string): Map<string, string[]> {
  const m = /<meta http-equiv="Content-Security-Policy" content="([^"]*)">/.exec(html);
  assert.ok(m, 'the page has a CSP meta tag');
  const out = new Map<string, string[]>();
  for (const part of m[1].split(';').map((s) => s.trim()).filter(Boolean)) {
    const [name, ...values] = part.split(/\s+/);
    out.set(name, values);
  }
  return out;
}

describe('dashboard HTML and CSP', () => {
  it('has a strict CSP whose script nonce is the one on the script tag', () => {
    const html = page();
    const csp = cspOf(html);
    assert.deepEqual(csp.get('default-src'), ["'none'"]);
    const nonce = /<script nonce="([^"]+)"/.exec(html)?.[1];
    assert.ok(nonce);
    assert.deepEqual(csp.get('script-src'), [`'nonce-${nonce}'`]);
    assert.deepEqual(csp.get('style-src'), [CSP_SOURCE, `'nonce-${nonce}'`]);
    assert.deepEqual(csp.get('img-src'), [CSP_SOURCE, 'data:']);
    assert.deepEqual(csp.get('font-src'), [CSP_SOURCE]);
    assert.deepEqual([...csp.keys()].sort(), ['default-src', 'font-src', 'img-src', 'script-src', 'style-src']);
  });

  it('allows no eval and no inline script or style', () => {
    const html = page();
    assert.doesNotMatch(html, /unsafe-eval|unsafe-inline|unsafe-hashes|wasm-unsafe-eval/);
    assert.doesNotMatch(buildCsp(CSP_SOURCE, 'abc'), /unsafe/);
  });

  it('has no inline event handlers, inline styles or inline scripts', () => {
    const html = page();
    assert.doesNotMatch(html, /\son[a-z]+\s*=/i);
    assert.doesNotMatch(html, /\sstyle\s*=/i);
    assert.doesNotMatch(html, /<style/i);
    assert.doesNotMatch(html, /javascript:/i);
    const scripts = [...html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
    assert.equal(scripts.length, 1);
    assert.equal(scripts[0][2].trim(), '', 'the script tag has no inline body');
    assert.match(scripts[0][1], /\ssrc="/);
  });

  it('loads only from the allowed resource roots (dist/ and media/)', () => {
    assert.deepEqual([...RESOURCE_ROOTS], ['dist', 'media']);
    for (const p of [DASHBOARD_SCRIPT, ...DASHBOARD_STYLES]) assert.ok(RESOURCE_ROOTS.includes(p[0]), p.join('/'));
    const html = page();
    const urls = [...html.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((m) => m[1]);
    assert.equal(urls.length, 1 + DASHBOARD_STYLES.length);
    for (const u of urls) assert.match(u, new RegExp(`^${BASE.replace(/[.+]/g, '\\$&')}/(dist|media)/`));
    assert.ok(existsSync(path.join(ROOT, 'media', 'dashboard.css')), 'media/dashboard.css is in the repository');
  });

  it('makes a fresh 16-byte base64 nonce per page', () => {
    const nonces = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const n = /<script nonce="([^"]+)"/.exec(page())![1];
      assert.equal(Buffer.from(n, 'base64').length, 16);
      nonces.add(n);
    }
    assert.equal(nonces.size, 50);
    assert.notEqual(makeNonce(), makeNonce());
  });

  it('escapes what it is given', () => {
    const html = buildDashboardHtml({ cspSource: CSP_SOURCE, scriptUri: 'x" onload="alert(1)', styleUris: [], nonce: 'n', title: '<b>' });
    const tags = html.replace(/"[^"]*"/g, '""'); // attribute values removed: what is left are names
    assert.doesNotMatch(tags, /\son[a-z]+\s*=/i);
    assert.match(html, /src="x&quot; onload=&quot;alert\(1\)"/);
    assert.match(html, /<title>&lt;b&gt;<\/title>/);
  });
});
