/**
 * Hub model ids: a fake Hugging Face Hub on 127.0.0.1 serves a tiny model; resolveModelDir lays it out in the
 * standard cache (models--owner--name/snapshots/<sha>, refs/main), fetches only config.json for the module
 * tree, reuses the cache, works offline from it, and says clearly when the Hub cannot be reached.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { modelCacheDir, resolveModelDir } from '../../../trainer/io/hub_model';
import { writeRandomGPT2 } from '../../../trainer/models/gpt2/random_init';
import { loadModelFolder } from '../../../trainer/models/gpt2/folder';
import { LoraStudioError } from '../../../trainer/errors';

const SHA = 'a'.repeat(40);

describe('Hub model ids', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-hub-'));
  const src = path.join(root, 'src');
  const requests: string[] = [];
  let server: http.Server;
  let endpoint = '';
  const env = () => ({ HF_ENDPOINT: endpoint, HF_HUB_CACHE: path.join(root, 'cache') });

  before(async () => {
    writeRandomGPT2(src);
    server = http.createServer((req, res) => {
      requests.push(req.url!);
      if (req.url === '/api/models/owner/tiny/revision/main') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ sha: SHA, siblings: ['config.json', 'model.safetensors', 'tokenizer.json', 'README.md'].map((rfilename) => ({ rfilename })) }));
        return;
      }
      const m = new RegExp(`^/owner/tiny/resolve/${SHA}/(.+)$`).exec(req.url!);
      if (m && fs.existsSync(path.join(src, m[1]))) {
        res.end(fs.readFileSync(path.join(src, m[1])));
        return;
      }
      res.statusCode = 404;
      res.end('not found');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('fetches only config.json for the module tree, then the weights for training, into the HF cache layout', async () => {
    const snap = path.join(modelCacheDir('owner/tiny', env()), 'snapshots', SHA);
    const configOnly = await resolveModelDir('owner/tiny', 'model', { env: env(), configOnly: true });
    assert.equal(configOnly, snap);
    assert.deepEqual(fs.readdirSync(snap).sort(), ['config.json']);
    const full = await resolveModelDir('owner/tiny', 'model', { env: env() });
    assert.equal(full, snap);
    assert.deepEqual(fs.readdirSync(snap).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
    assert.equal(fs.readFileSync(path.join(modelCacheDir('owner/tiny', env()), 'refs', 'main'), 'utf8'), SHA);
    assert.equal(loadModelFolder(full).weights.size, loadModelFolder(src).weights.size);
  });

  it('reuses the cache, also offline', async () => {
    const before = requests.length;
    await resolveModelDir('owner/tiny', 'model', { env: env() });
    await resolveModelDir('owner/tiny', 'model', { env: { ...env(), HF_HUB_OFFLINE: '1' } });
    assert.equal(requests.length, before);
  });

  it('names the id, the field and the cache when the Hub cannot be reached', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    await assert.rejects(
      resolveModelDir('owner/other', 'model', { env: { HF_ENDPOINT: `http://127.0.0.1:${port}`, HF_HUB_CACHE: path.join(root, 'cache') }, configFile: 'run.json' }),
      (e: unknown) => e instanceof LoraStudioError && e.field === 'model' && e.file === 'run.json' && /"owner\/other".*could not be reached/.test(e.message),
    );
    await assert.rejects(resolveModelDir('owner/other', 'model', { env: { ...env(), HF_HUB_OFFLINE: '1' } }), /HF_HUB_OFFLINE/);
    await assert.rejects(resolveModelDir('./no/such/folder', 'model', { env: env() }), /does not exist/);
  });
});
