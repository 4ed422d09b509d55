/**
 * Saving a chart the Analyze or Compare webview drew: the data: URL it posts (PNG from canvas.toDataURL, or
 * SVG) is checked and decoded here, and written under a temporary name in the target folder, then renamed,
 * so a reader never sees half an image. No vscode import.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

/** the largest image a webview may hand over (a 4k × 4k PNG is well under it) */
export const MAX_IMAGE_BYTES = 32 * 1024 * 1024;

const KINDS: Record<string, 'png' | 'svg'> = { 'image/png': 'png', 'image/svg+xml': 'svg' };
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The bytes and kind of a base64 PNG or SVG data: URL, or a reason it is not one. */
export function decodeImageDataUrl(url: string): { ok: true; ext: 'png' | 'svg'; bytes: Buffer } | { ok: false; reason: string } {
  const m = /^data:(image\/png|image\/svg\+xml);base64,([A-Za-z0-9+/]*={0,2})$/.exec(url);
  if (!m) return { ok: false, reason: 'not a base64 data: URL of a PNG or SVG image' };
  if ((m[2].length * 3) / 4 > MAX_IMAGE_BYTES) return { ok: false, reason: `the image is larger than ${MAX_IMAGE_BYTES} bytes` };
  const bytes = Buffer.from(m[2], 'base64');
  const ext = KINDS[m[1]];
  if (ext === 'png' && !bytes.subarray(0, 8).equals(PNG_MAGIC)) return { ok: false, reason: 'the PNG data does not start with the PNG signature' };
  if (ext === 'svg' && !/^\s*(<\?xml[^>]*>\s*)?<svg[\s>]/.test(bytes.subarray(0, 256).toString('utf8'))) return { ok: false, reason: 'the SVG data does not start with <svg>' };
  return { ok: true, ext, bytes };
}

/** A file name for a chart: its name with anything but letters, digits, ".", "_", "-" turned into "-". */
export function imageFileName(name: string, ext: string): string {
  const base = name.replace(/[^\w.-]+/g, '-').replace(/^[-.]+|-+$/g, '').slice(0, 120) || 'chart';
  return `${base}.${ext}`;
}

/** Writes `bytes` to `file` through a temporary file in the same folder and a rename. */
export function writeFileAtomic(file: string, bytes: Uint8Array): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    fs.writeFileSync(tmp, bytes, { flag: 'wx' });
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
