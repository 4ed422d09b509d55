/**
 * Hugging Face Hub datasets as training data: `owner/name`, `owner/name:split` or `owner/name:config:split`
 * resolves to the Parquet files the Hub converts every dataset to (branch refs/convert/parquet), downloaded
 * into the standard Hugging Face cache (datasets--owner--name/snapshots/<commit>/<config>/<split>/NNNN.parquet,
 * refs/refs/convert/parquet holding the commit), so huggingface_hub finds them too. Cached files are reused;
 * HF_HUB_OFFLINE=1 uses the cache only; HF_TOKEN is sent as a bearer token; HF_ENDPOINT moves the Hub.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoraStudioError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { hubEndpoint, hubFetch, isTrue, repoCacheDir, Unreachable } from '../io/hf_hub';

export const PARQUET_REVISION = 'refs/convert/parquet';

export interface HubRef {
  repo: string;
  /** a config name, or (when `split` is absent) a split or a config: see chooseSplit */
  config?: string;
  split?: string;
}

/** config → split → files (URLs online, paths from the cache) */
export type SplitListing = Record<string, Record<string, string[]>>;

export interface HubOptions {
  env?: NodeJS.ProcessEnv;
  /** the run config, named in errors */
  configFile?: string;
  /** API calls; default 30 s */
  timeoutMs?: number;
  log?: (message: string) => void;
}

export interface HubResolved {
  files: string[];
  config: string;
  split: string;
  warnings: string[];
}

const NAME = '[A-Za-z0-9][A-Za-z0-9._-]*';
const HUB_ID = new RegExp(`^(${NAME}/${NAME})(?::(${NAME}))?(?::(${NAME}))?$`);

/** `owner/name[:a[:b]]`, or null when the string cannot be a Hub dataset id. */
export function parseHubId(value: string): HubRef | null {
  const m = HUB_ID.exec(value);
  if (!m) return null;
  if (m[3] !== undefined) return { repo: m[1], config: m[2], split: m[3] };
  return m[2] !== undefined ? { repo: m[1], config: m[2] } : { repo: m[1] };
}

export function datasetCacheDir(repo: string, env: NodeJS.ProcessEnv = process.env): string {
  return repoCacheDir('datasets', repo, env);
}

/**
 * Picks config and split. No config/split: the "default" config (or the only one), split "train".
 * One part: a split of the default config if there is one by that name, else a config (its "train").
 * A missing split falls back to the Hub's "partial-<split>" (datasets over 5 GB are converted in part).
 */
export function chooseSplit(listing: SplitListing, ref: HubRef, field: string, file?: string): { config: string; split: string; items: string[]; warnings: string[] } {
  const configs = Object.keys(listing).sort();
  const fail = (msg: string): never => {
    throw new LoraStudioError(`dataset "${ref.repo}": ${msg}`, file, field);
  };
  if (configs.length === 0) fail('the Hub lists no Parquet files for it');
  const defaultConfig = (): string => {
    if (listing.default) return 'default';
    if (configs.length === 1) return configs[0];
    return fail(`it has several configs (${configs.join(', ')}); name one as ${ref.repo}:<config>:<split>`);
  };
  let config: string;
  let split: string;
  if (ref.split !== undefined) {
    config = ref.config!;
    split = ref.split;
  } else if (ref.config !== undefined) {
    const part = ref.config;
    const dflt = listing.default ? 'default' : configs.length === 1 ? configs[0] : undefined;
    if (dflt && listing[dflt][part]) [config, split] = [dflt, part];
    else if (listing[part]) [config, split] = [part, 'train'];
    else {
      const splits = dflt ? Object.keys(listing[dflt]).sort() : [];
      return fail(`"${part}" is neither a split${dflt ? ` of config "${dflt}" (${splits.join(', ')})` : ''} nor a config (${configs.join(', ')})`);
    }
  } else {
    config = defaultConfig();
    split = 'train';
  }
  if (!listing[config]) fail(`no config "${config}"; configs: ${configs.join(', ')}`);
  const warnings: string[] = [];
  let items = listing[config][split];
  if (!items && listing[config][`partial-${split}`]) {
    items = listing[config][`partial-${split}`];
    warnings.push(`dataset "${ref.repo}": the Hub converted only part of split "${split}" to Parquet; using "partial-${split}"`);
    split = `partial-${split}`;
  }
  if (!items || items.length === 0) fail(`config "${config}" has no split "${split}"; splits: ${Object.keys(listing[config]).sort().join(', ')}`);
  return { config, split, items, warnings };
}

/** The cache as a listing: the snapshot of refs/convert/parquet, or else any snapshot holding config/split folders. */
export function cachedListing(repo: string, env: NodeJS.ProcessEnv): { snapshot: string; listing: SplitListing } | null {
  const dir = datasetCacheDir(repo, env);
  const candidates: string[] = [];
  try {
    const sha = fs.readFileSync(path.join(dir, 'refs', ...PARQUET_REVISION.split('/')), 'utf8').trim();
    if (sha) candidates.push(path.join(dir, 'snapshots', sha));
  } catch {
    // no ref recorded
  }
  try {
    for (const s of fs.readdirSync(path.join(dir, 'snapshots')).sort()) candidates.push(path.join(dir, 'snapshots', s));
  } catch {
    // no snapshots
  }
  for (const snapshot of candidates) {
    const listing: SplitListing = {};
    for (const config of subdirs(snapshot)) {
      for (const split of subdirs(path.join(snapshot, config))) {
        const files = fs
          .readdirSync(path.join(snapshot, config, split))
          .filter((f) => f.endsWith('.parquet'))
          .sort()
          .map((f) => path.join(snapshot, config, split, f));
        if (files.length) (listing[config] ??= {})[split] = files;
      }
    }
    if (Object.keys(listing).length) return { snapshot, listing };
  }
  return null;
}

function subdirs(dir: string): string[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  } catch {
    return [];
  }
}

/** Keeps the config → split → [url] entries of the Hub's answer that have that shape. */
function toListing(json: unknown): SplitListing {
  const listing: SplitListing = {};
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return listing;
  for (const [config, splits] of Object.entries(json)) {
    if (typeof splits !== 'object' || splits === null || Array.isArray(splits)) continue;
    for (const [split, urls] of Object.entries(splits)) {
      if (Array.isArray(urls) && urls.every((u) => typeof u === 'string')) (listing[config] ??= {})[split] = urls as string[];
    }
  }
  return listing;
}

export async function resolveHubDataset(value: string, ref: HubRef, field: string, opts: HubOptions = {}): Promise<HubResolved> {
  const env = opts.env ?? process.env;
  const endpoint = hubEndpoint(env);
  const cacheDir = datasetCacheDir(ref.repo, env);
  const fromCache = (why: string): HubResolved => {
    const cached = cachedListing(ref.repo, env);
    if (!cached) {
      throw new LoraStudioError(
        `"${value}" is not a local file, and as a Hugging Face Hub dataset it is not in the cache (${cacheDir}) ` +
          `and ${why}. Connect to the network once to download it, or use a local file (JSONL, CSV or Parquet), which works offline.`,
        opts.configFile,
        field,
      );
    }
    const chosen = chooseSplit(cached.listing, ref, field, opts.configFile);
    return { files: chosen.items, config: chosen.config, split: chosen.split, warnings: chosen.warnings };
  };
  if (isTrue(env.HF_HUB_OFFLINE)) return fromCache('HF_HUB_OFFLINE is set, so the Hub was not asked');
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const unreachable = (e: Unreachable): HubResolved => {
    const r = fromCache(`the Hugging Face Hub could not be reached at ${endpoint} (${e.message})`);
    r.warnings.push(`the Hugging Face Hub could not be reached (${e.message}); using the cached copy of "${ref.repo}"`);
    return r;
  };
  let listing: SplitListing;
  let sha: string;
  try {
    const res = await hubFetch(`${endpoint}/api/datasets/${ref.repo}/parquet`, env, timeoutMs);
    if (!res.ok) {
      const hint = res.status === 401 || res.status === 403 || res.status === 404 ? '; if it is private or gated, set HF_TOKEN' : '';
      throw new LoraStudioError(`the Hugging Face Hub answered HTTP ${res.status} for dataset "${ref.repo}"${hint}`, opts.configFile, field);
    }
    listing = toListing(await res.json().catch(() => null));
    const rev = await hubFetch(`${endpoint}/api/datasets/${ref.repo}/revision/${encodeURIComponent(PARQUET_REVISION)}`, env, timeoutMs);
    if (!rev.ok) throw new LoraStudioError(`the Hugging Face Hub answered HTTP ${rev.status} for the Parquet branch of "${ref.repo}"`, opts.configFile, field);
    sha = String(((await rev.json()) as { sha?: string }).sha ?? '');
    if (!/^[0-9a-f]{40}$/.test(sha)) throw new LoraStudioError(`the Hugging Face Hub gave no commit for the Parquet branch of "${ref.repo}"`, opts.configFile, field);
  } catch (e) {
    if (e instanceof Unreachable) return unreachable(e);
    throw e;
  }
  const chosen = chooseSplit(listing, ref, field, opts.configFile);
  const snapshotDir = path.join(cacheDir, 'snapshots', sha, chosen.config, chosen.split);
  // Shards land as "<name>.incomplete" and are renamed only once all are here, so the cache never
  // holds part of a split that a later offline run would take for the whole.
  const files: string[] = [];
  const pending: string[] = [];
  for (const url of chosen.items) {
    const shard = /(\d+)\.parquet$/.exec(url)?.[1];
    if (shard === undefined) throw new LoraStudioError(`unexpected Parquet URL from the Hub: ${url}`, opts.configFile, field);
    const target = path.join(snapshotDir, `${shard.padStart(4, '0')}.parquet`);
    files.push(target);
    if (fs.existsSync(target)) continue;
    opts.log?.(`downloading ${url}`);
    try {
      const res = await hubFetch(url, env, Math.max(timeoutMs, 3_600_000));
      if (!res.ok) throw new LoraStudioError(`the Hugging Face Hub answered HTTP ${res.status} for ${url}`, opts.configFile, field);
      writeFileAtomic(`${target}.incomplete`, new Uint8Array(await res.arrayBuffer()));
      pending.push(target);
    } catch (e) {
      if (e instanceof LoraStudioError) throw e;
      throw new LoraStudioError(
        `downloading dataset "${ref.repo}" from the Hugging Face Hub failed at ${url} (${(e as Error).message}); run again to resume`,
        opts.configFile,
        field,
      );
    }
  }
  for (const target of pending) fs.renameSync(`${target}.incomplete`, target);
  writeFileAtomic(path.join(cacheDir, 'refs', ...PARQUET_REVISION.split('/')), sha);
  return { files, config: chosen.config, split: chosen.split, warnings: chosen.warnings };
}
