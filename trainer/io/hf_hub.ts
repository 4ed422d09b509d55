/**
 * The Hugging Face Hub client pieces that models and datasets share: the endpoint (HF_ENDPOINT), the standard
 * cache folder (HF_HUB_CACHE / HF_HOME / XDG_CACHE_HOME), repo cache folders as huggingface_hub lays them out
 * (`models--owner--name`, `datasets--owner--name`), HF_HUB_OFFLINE, and fetch with HF_TOKEN and a timeout that
 * turns a network failure into `Unreachable`.
 */
import * as os from 'node:os';
import * as path from 'node:path';

/** The Hub could not be reached (no network, DNS, refused, timeout, or a 5xx answer). */
export class Unreachable extends Error {}

/** huggingface_hub's truthy spellings for boolean env variables such as HF_HUB_OFFLINE. */
export function isTrue(v: string | undefined): boolean {
  return v !== undefined && ['1', 'ON', 'YES', 'TRUE'].includes(v.trim().toUpperCase());
}

export function hubEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  return (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, '');
}

/** HF_HUB_CACHE, else HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return path.join(env.HF_HOME, 'hub');
  const xdg = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(xdg, 'huggingface', 'hub');
}

/** `<cache>/models--owner--name` or `<cache>/datasets--owner--name`. */
export function repoCacheDir(kind: 'models' | 'datasets', repo: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(hubCacheDir(env), `${kind}--${repo.split('/').join('--')}`);
}

export async function hubFetch(url: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Response> {
  const headers: Record<string, string> = {};
  if (env.HF_TOKEN) headers.authorization = `Bearer ${env.HF_TOKEN}`;
  let res: Response;
  try {
    res = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new Unreachable(cause?.code ?? cause?.message ?? (e as Error).message);
  }
  if (res.status >= 500) throw new Unreachable(`HTTP ${res.status}`);
  return res;
}
