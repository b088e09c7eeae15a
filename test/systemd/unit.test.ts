// The shipped unit, sysusers and tmpfiles snippets, checked by systemd's own tools (Debian package
// systemd): the hardening score, that no key is misspelt or ignored, and the users and directories
// they produce in a scratch root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INSTALL_PREFIX, shippedDaemon } from '../../scripts/shipped-daemon.ts';
import { DEFAULT_HARDWARE_DIR, loadHardwareProfiles } from '../../src/config/hardware.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const UNIT = join(ROOT, 'systemd/penstock.service');
const SYSUSERS = join(ROOT, 'systemd/penstock.sysusers.conf');
const TMPFILES = join(ROOT, 'systemd/penstock.tmpfiles.conf');
const MAX_EXPOSURE = 2.0;

const ANALYZE = '/usr/bin/systemd-analyze';
const noAnalyze = existsSync(ANALYZE) ? false : `${ANALYZE} is missing (apt-get install systemd)`;
const notRoot = process.getuid?.() === 0 ? false : 'needs root to chown inside a scratch root';

/** [Section] Key=Value lines; a key may repeat (later lines add to earlier ones). */
function parseUnit(text: string): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(eq > 0, `not a Key=Value line: ${line}`);
    const key = `${section}.${line.slice(0, eq)}`;
    keys.set(key, [...(keys.get(key) ?? []), line.slice(eq + 1)]);
  }
  return keys;
}

const unit = parseUnit(readFileSync(UNIT, 'utf8'));
const one = (key: string): string | undefined => unit.get(key)?.at(-1);

/** Score a unit file; returns the overall exposure level and what systemd said on stderr. */
function exposure(file: string): { score: number; stderr: string } {
  const r = spawnSync(ANALYZE, ['security', '--offline=yes', '--no-pager', file], { encoding: 'utf8' });
  const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(r.stdout);
  assert.ok(m, `no "Overall exposure level" line in:\n${r.stdout}\n${r.stderr}`);
  return { score: Number(m[1]), stderr: r.stderr };
}

test('the unit is Type=notify with a watchdog, and systemd accepts messages from the notify child', () => {
  assert.equal(one('Service.Type'), 'notify');
  assert.equal(one('Service.NotifyAccess'), 'all', 'systemd-notify sends from a child process');
  assert.match(one('Service.WatchdogSec') ?? '', /^\d+s$/);
  assert.equal(one('Service.ExecReload'), '/bin/kill -HUP $MAINPID');
  assert.equal(one('Service.KillSignal'), 'SIGTERM');
  assert.equal(one('Service.Restart'), 'on-failure');
});

test('ExecStart runs the pinned Node on the built dist/ with the V8 flags, and that layout exists in this repo', () => {
  const argv = (one('Service.ExecStart') ?? '').split(/\s+/);
  assert.deepEqual(argv, [`${INSTALL_PREFIX}/node_modules/node/bin/node`, '$PENSTOCK_V8_FLAGS', `${INSTALL_PREFIX}/dist/main.js`, '--config', '/etc/penstock/penstock.yaml']);
  const shipped = shippedDaemon(ROOT);
  assert.deepEqual(shipped.flags, ['--max-semi-space-size=2', '--max-old-space-size=128']);
  // bin/penstock starts the daemon the same way (same default flags, same entry point).
  const launcher = readFileSync(join(ROOT, 'bin/penstock'), 'utf8');
  assert.equal(/PENSTOCK_V8_FLAGS:=([^}]*)\}/.exec(launcher)?.[1], shipped.flags.join(' '));
  assert.match(launcher, /"\$root\/dist\/main\.js"/);
  // The malloc settings too, in both.
  assert.deepEqual(shipped.env, { MALLOC_MMAP_THRESHOLD_: '131072', MALLOC_TRIM_THRESHOLD_: '131072' });
  for (const [k, v] of Object.entries(shipped.env)) assert.ok(launcher.includes(`\${${k}:=${v}}`), `bin/penstock sets ${k}=${v}`);
  // The unit must run the very runtime package.json pins (the npm `node` package), not a system node.
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const pinned = pkg.dependencies.node;
  assert.match(pinned ?? '', /^24\./);
  const installed = JSON.parse(readFileSync(join(ROOT, 'node_modules/node/package.json'), 'utf8')) as { version: string };
  assert.equal(installed.version, pinned);
  for (const path of [argv[0]!, argv[2]!]) assert.ok(existsSync(join(ROOT, path.slice(INSTALL_PREFIX.length))), `${path} has no counterpart in the repo`);
  assert.equal(execFileSync(join(ROOT, 'node_modules/node/bin/node'), ['--version'], { encoding: 'utf8' }).trim(), `v${pinned}`);
});

test('the unit runs as the sysusers user, with only the one capability and a JIT-compatible memory policy', () => {
  const sysusers = readFileSync(SYSUSERS, 'utf8');
  assert.equal(one('Service.User'), 'penstock');
  assert.match(sysusers, /^u\s+penstock\s/m);
  assert.match(sysusers, /^g\s+penstock-admin\s/m);
  assert.equal(one('Service.DynamicUser'), undefined);
  assert.equal(one('Service.CapabilityBoundingSet'), 'CAP_NET_BIND_SERVICE');
  assert.equal(one('Service.AmbientCapabilities'), 'CAP_NET_BIND_SERVICE');
  // V8 maps pages writable then executable: MemoryDenyWriteExecute=yes would kill the daemon.
  assert.notEqual(one('Service.MemoryDenyWriteExecute'), 'yes');
  assert.equal(one('Service.PrivateDevices'), undefined, 'PrivateDevices would hide the RS-485 port');
  assert.equal(one('Service.DevicePolicy'), 'closed');
  assert.ok((unit.get('Service.DeviceAllow') ?? []).includes('char-ttyS rw'));
  assert.equal(one('Service.IPAddressDeny'), undefined, 'the daemon must reach PLCs');
});

test('resource limits fit the smallest hardware profile, leave the capped V8 heap room, and forbid core dumps', () => {
  const profiles = [...loadHardwareProfiles(DEFAULT_HARDWARE_DIR).values()];
  assert.ok(profiles.length >= 2);
  const smallest = Math.min(...profiles.map((p) => p.service.memory_max_mib));
  assert.equal(one('Service.MemoryMax'), `${smallest}M`, 'MemoryMax is the smallest profile\'s service.memory_max_mib');
  assert.equal(one('Service.TasksMax'), String(Math.min(...profiles.map((p) => p.service.tasks_max))));
  // A core dump would hold the unwrapped vault key and target credentials.
  assert.equal(one('Service.LimitCORE'), '0');
  // The V8 old-space cap the unit sets, plus as much again for code, buffers and node-opcua's native
  // memory (measured peak ~200 MiB with a 128 MiB cap), must fit under MemoryMax.
  const heapCap = Number(/--max-old-space-size=(\d+)/.exec(shippedDaemon(ROOT).flags.join(' '))?.[1]);
  assert.ok(heapCap > 0, 'the unit caps the V8 heap');
  assert.ok(heapCap * 2 + 64 <= smallest, `heap cap ${heapCap} MiB leaves too little under MemoryMax=${smallest}M`);
  for (const p of profiles) assert.ok(p.service.memory_max_mib <= p.memory_mib / 2, `${p.name}: the service takes at most half the board's memory`);
});

test(`systemd-analyze security scores the unit at ${MAX_EXPOSURE} or lower, with no ignored keys`, { skip: noAnalyze }, () => {
  const { score, stderr } = exposure(UNIT);
  assert.ok(score <= MAX_EXPOSURE, `exposure ${score} > ${MAX_EXPOSURE}`);
  // A misspelt hardening key is ignored with a warning, not an error: treat any warning as failure.
  assert.equal(stderr.trim(), '');
});

test('the score check can fail: the same service without its hardening scores far worse', { skip: noAnalyze }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'penstock-unit-'));
  try {
    const bare = join(dir, 'penstock.service');
    writeFileSync(bare, `[Service]\nType=notify\nExecStart=${one('Service.ExecStart')}\nUser=penstock\n`);
    assert.ok(exposure(bare).score > MAX_EXPOSURE + 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('systemd-analyze verify finds nothing wrong beyond the install tree being absent here', { skip: noAnalyze }, () => {
  const r = spawnSync(ANALYZE, ['verify', '--man=no', '--no-pager', UNIT], { encoding: 'utf8' });
  const missingInstall = new RegExp(`Command ${INSTALL_PREFIX}/\\S+ is not executable`);
  const complaints = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.trim() !== '' && !missingInstall.test(l));
  assert.deepEqual(complaints, []);
  // And verify does catch what we care about (a misspelt key), so the check above means something.
  const dir = mkdtempSync(join(tmpdir(), 'penstock-unit-'));
  try {
    const typo = join(dir, 'penstock.service');
    writeFileSync(typo, readFileSync(UNIT, 'utf8').replace('ProtectSystem=strict', 'ProtectSystm=strict'));
    const t = spawnSync(ANALYZE, ['verify', '--man=no', '--no-pager', typo], { encoding: 'utf8' });
    assert.match(t.stderr, /Unknown key .?ProtectSystm/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sysusers and tmpfiles produce the users, groups, owners and modes the unit relies on', { skip: noAnalyze || notRoot }, () => {
  const root = mkdtempSync(join(tmpdir(), 'penstock-root-'));
  try {
    mkdirSync(join(root, 'etc/penstock'), { recursive: true });
    // A key file left world-readable by a careless copy: tmpfiles' `z` line must tighten it.
    const key = join(root, 'etc/penstock/vault.key');
    writeFileSync(key, 'k', { mode: 0o644 });
    execFileSync('/bin/systemd-sysusers', [`--root=${root}`, SYSUSERS], { stdio: 'pipe' });
    execFileSync('/bin/systemd-tmpfiles', [`--root=${root}`, '--create', TMPFILES], { stdio: 'pipe' });

    const ids = (file: string) => new Map(readFileSync(join(root, 'etc', file), 'utf8').trim().split('\n').map((l) => {
      const f = l.split(':');
      return [f[0]!, Number(f[2])] as const;
    }));
    const users = ids('passwd');
    const groups = ids('group');
    const expect = (path: string, mode: number, uid: number | undefined, gid: number | undefined) => {
      const st = statSync(join(root, path));
      assert.equal((st.mode & 0o7777).toString(8), mode.toString(8), `${path} mode`);
      assert.equal(st.uid, uid, `${path} owner`);
      assert.equal(st.gid, gid, `${path} group`);
    };
    assert.ok(users.has('penstock') && groups.has('penstock') && groups.has('penstock-admin'));
    expect('var/lib/penstock', 0o750, users.get('penstock'), groups.get('penstock'));
    // setgid: the admin socket is born in group penstock-admin without a chown.
    expect('run/penstock', 0o2750, users.get('penstock'), groups.get('penstock-admin'));
    expect('etc/penstock/vault.key', 0o640, 0, groups.get('penstock'));
    const socketDirChild = join(root, 'run/penstock/probe');
    writeFileSync(socketDirChild, '');
    assert.equal(statSync(socketDirChild).gid, groups.get('penstock-admin'), 'files in /run/penstock inherit group penstock-admin');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
