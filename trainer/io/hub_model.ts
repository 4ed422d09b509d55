/**
 * A model given as a Hugging Face Hub id (`gpt2`, `openai-community/gpt2`) resolves to a folder in the
 * standard Hugging Face cache (models--owner--name/snapshots/<commit>/), downloading config.json, the
 * tokenizer files and the safetensors weights when the network allows. A cached snapshot is used offline.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LoraStudioError, preview } from '../errors';
import { readShardIndex } from './hf_folder';
import { hubCacheDir, hubEndpoint, hubFetch, isTrue, repoCacheDir, Unreachable } from './hf_hub';
import { writeFileAtomic } from './atomic';

const MODEL_ID = /^(?:[A-Za-z0-9][A-Za-z0-9._-]*\/)?[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** A snapshot folder name: a commit hash or a revision name, never a path. */
const SNAPSHOT_NAME = /^(?!\.\.?$)[A-Za-z0-9._-]{1,128}$/;
const WANTED = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];

export function modelCacheDir(id: string, env: NodeJS.ProcessEnv = process.env): string {
  return repoCacheDir('models', id, env);
}

function cachedSnapshot(id: string, env: NodeJS.ProcessEnv, configOnly: boolean): string | null {
  const dir = modelCacheDir(id, env);
  const ref = path.join(dir, 'refs', 'main');
  if (!fs.existsSync(ref)) return null;
  const commit = fs.readFileSync(ref, 'utf8').trim();
  if (!SNAPSHOT_NAME.test(commit)) return null; // not a commit name: never a path outside the cache
  const snap = path.join(dir, 'snapshots', commit);
  if (!fs.existsSync(path.join(snap, 'config.json'))) return null;
  if (configOnly) return snap;
  const index = path.join(snap, 'model.safetensors.index.json');
  if (fs.existsSync(index)) {
    const shards = new Set(readShardIndex(index).values());
    return [...shards].every((f) => fs.existsSync(path.join(snap, f))) ? snap : null;
  }
  return fs.existsSync(path.join(snap, 'model.safetensors')) && fs.existsSync(path.join(snap, 'tokenizer.json')) ? snap : null;
}

/**
 * A local folder as it is; otherwise a Hub id, from the cache or downloaded. `field` names the config field in
 * errors. `configOnly` fetches just config.json (enough for the module tree); training fetches the rest later.
 */
export async function resolveModelDir(
  value: string, field: string, opts: { configFile?: string; env?: NodeJS.ProcessEnv; log?: (m: string) => void; configOnly?: boolean } = {},
): Promise<string> {
  if (fs.existsSync(value)) return value;
  const env = opts.env ?? process.env;
  if (!MODEL_ID.test(value) || value.startsWith('.') || path.isAbsolute(value)) {
    throw new LoraStudioError(`model folder ${preview(value)} does not exist (and it is not a Hugging Face Hub id)`, opts.configFile ?? value, field);
  }
  const cached = cachedSnapshot(value, env, !!opts.configOnly);
  if (cached) return cached;
  const endpoint = hubEndpoint(env);
  const offline = (why: string) => new LoraStudioError(
    `model ${preview(value)} is neither a local folder nor in the Hugging Face cache (${hubCacheDir(env)}), and ${why}. ` +
    'Download it where the network allows (e.g. `huggingface-cli download ' + value + '`) or give the path of a local folder with config.json, model.safetensors and tokenizer.json.',
    opts.configFile ?? value, field);
  if (isTrue(env.HF_HUB_OFFLINE)) throw offline('HF_HUB_OFFLINE is set');
  try {
    const info = await hubFetch(`${endpoint}/api/models/${value}/revision/main`, env, 30_000);
    if (!info.ok) throw new LoraStudioError(`the Hugging Face Hub answered HTTP ${info.status} for model "${value}"${info.status === 401 || info.status === 404 ? ' (a private or gated model needs HF_TOKEN)' : ''}`, opts.configFile ?? value, field);
    const json = (await info.json().catch(() => {
      throw new LoraStudioError(`the Hugging Face Hub's answer for model "${value}" is not JSON`, opts.configFile ?? value, field);
    })) as { sha?: unknown; siblings?: Array<{ rfilename?: unknown } | null> } | null;
    if (!json || typeof json !== 'object') throw new LoraStudioError(`the Hugging Face Hub's answer for model "${value}" is not a JSON object`, opts.configFile ?? value, field);
    const sha = json.sha ?? 'main';
    if (typeof sha !== 'string' || !SNAPSHOT_NAME.test(sha)) {
      throw new LoraStudioError(`the Hugging Face Hub answered a revision ${preview(sha)} that is not a commit name`, opts.configFile ?? value, field);
    }
    const files = new Set((Array.isArray(json.siblings) ? json.siblings : []).map((s) => s?.rfilename).filter((f): f is string => typeof f === 'string'));
    const snap = path.join(modelCacheDir(value, env), 'snapshots', sha);
    let wanted = WANTED.filter((f) => files.has(f));
    if (opts.configOnly) {
      wanted = ['config.json'];
    } else if (files.has('model.safetensors.index.json')) {
      const idx = await download(`${endpoint}/${value}/resolve/${sha}/model.safetensors.index.json`, path.join(snap, 'model.safetensors.index.json'), env, opts.log);
      wanted = [...wanted, ...new Set(readShardIndex(idx).values())];
    } else if (files.has('model.safetensors')) {
      wanted.push('model.safetensors');
    } else {
      throw new LoraStudioError(`model "${value}" on the Hub has no safetensors weights`, opts.configFile ?? value, field);
    }
    for (const f of wanted) await download(`${endpoint}/${value}/resolve/${sha}/${f}`, path.join(snap, f), env, opts.log);
    writeFileAtomic(path.join(modelCacheDir(value, env), 'refs', 'main'), sha);
    return snap;
  } catch (e) {
    if (e instanceof Unreachable) throw offline(`the Hugging Face Hub could not be reached at ${endpoint} (${e.message})`);
    throw e;
  }
}

async function download(url: string, dest: string, env: NodeJS.ProcessEnv, log?: (m: string) => void): Promise<string> {
  if (fs.existsSync(dest)) return dest;
  log?.(`downloading ${url}`);
  const res = await hubFetch(url, env, 600_000);
  if (!res.ok) throw new LoraStudioError(`the Hugging Face Hub answered HTTP ${res.status}`, url);
  writeFileAtomic(dest, new Uint8Array(await res.arrayBuffer()));
  return dest;
}
