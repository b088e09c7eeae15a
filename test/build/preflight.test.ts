// The tests' preflight and install list (the table in scripts/install-deps.sh, preflight.mjs): one
// list, and a missing peer is named with its install command before any test runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readDeps } from '../../scripts/preflight.mjs';
import { tempDir } from '../support.ts';

const ROOT = join(import.meta.dirname, '..', '..');

test('a machine without mbpoll and python3-serial is told, in one message, what to install', () => {
  const tmp = tempDir('penstock-preflight-');
  try {
    // What a fresh machine lacks: a Python that cannot import serial (as python3-pymodbus without its
    // recommends), and a PATH without mbpoll.
    mkdirSync(join(tmp.dir, 'py', 'serial'), { recursive: true });
    writeFileSync(join(tmp.dir, 'py', 'serial', '__init__.py'), "raise ModuleNotFoundError(\"No module named 'serial'\")\n");
    const withoutMbpoll = (process.env.PATH ?? '').split(':').filter((d) => spawnSync('test', ['-x', join(d, 'mbpoll')]).status !== 0);
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts/preflight.mjs')], {
      encoding: 'utf8',
      env: { ...process.env, PATH: withoutMbpoll.join(':'), PYTHONPATH: join(tmp.dir, 'py') },
      timeout: 60_000,
    });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /program mbpoll \(Debian package mbpoll\)/);
    assert.match(r.stderr, /Python module serial \(Debian package python3-serial\)/);
    assert.match(r.stderr, /Python module pymodbus\.server \(Debian package python3-pymodbus\)/, 'pymodbus fails to import without serial');
    assert.match(r.stderr, /bash scripts\/install-deps\.sh/);
    assert.match(r.stderr, /apt-get install [^\n]*\bmbpoll\b[^\n]*\bpython3-serial\b/);
  } finally {
    tmp.cleanup();
  }
});

test('install-deps.sh installs exactly the packages the preflight checks', () => {
  const tmp = tempDir('penstock-install-deps-');
  try {
    // A dpkg-query that says nothing is installed and an apt-get that records what it is asked for.
    const log = join(tmp.dir, 'apt.log');
    writeFileSync(join(tmp.dir, 'dpkg-query'), '#!/bin/sh\nexit 1\n');
    writeFileSync(join(tmp.dir, 'apt-get'), `#!/bin/sh\necho "$@" >> ${log}\n`);
    writeFileSync(join(tmp.dir, 'sudo'), '#!/bin/sh\nexec "$@"\n');
    for (const f of ['dpkg-query', 'apt-get', 'sudo']) chmodSync(join(tmp.dir, f), 0o755);
    const r = spawnSync('bash', [join(ROOT, 'scripts/install-deps.sh')], { encoding: 'utf8', env: { ...process.env, PATH: `${tmp.dir}:${process.env.PATH}` } });
    assert.equal(r.status, 0, r.stderr);
    const install = readFileSync(log, 'utf8').split('\n').find((l) => l.includes('install'))!;
    const asked = install.split(' ').filter((w) => w && !w.startsWith('-') && w !== 'install');
    assert.deepEqual(asked.sort(), readDeps().map((d) => d.pkg).sort());
    assert.ok(asked.includes('python3-serial') && asked.includes('python3-serial-asyncio'), 'what pymodbus only recommends is named');
  } finally {
    tmp.cleanup();
  }
});
