// penstockctl vault: the operator's way to put a target credential in the vault, from stdin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { penstockctl } from '../e2e/daemon-harness.ts';
import { Vault } from '../../src/vault/vault.ts';

test('vault init-key, set from stdin, list: the value is stored encrypted and never printed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'penstock-vault-cli-'));
  try {
    const config = join(dir, 'penstock.yaml');
    writeFileSync(config, `appliance: { id: v1, site: s, zone: z, state_dir: ${dir}/state, runtime_dir: ${dir}/run }\nvault: { key_file: ${dir}/vault.key }\n`);
    const unused = join(dir, 'no.sock');
    assert.equal((await penstockctl(unused, ['vault', 'init-key', '--config', config])).code, 0);
    const set = await penstockctl(unused, ['vault', 'set', 'plc-ssh', '--config', config], 'correct horse battery staple\n');
    assert.equal(set.code, 0, set.stderr);
    assert.ok(!set.stdout.includes('correct horse'));
    const list = await penstockctl(unused, ['vault', 'list', '--config', config]);
    assert.equal(list.stdout.trim(), 'plc-ssh');
    assert.ok(!readFileSync(join(dir, 'state', 'vault.json'), 'utf8').includes('correct horse'), 'encrypted at rest');
    assert.equal(Vault.open(join(dir, 'state', 'vault.json'), join(dir, 'vault.key')).get('plc-ssh').reveal(), 'correct horse battery staple');
    // A second init-key would replace the key and orphan every entry: refused.
    assert.notEqual((await penstockctl(unused, ['vault', 'init-key', '--config', config])).code, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
