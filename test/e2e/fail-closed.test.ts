// Issue 3, fail closed through the whole daemon: the journal's filesystem (a small tmpfs) fills up, a
// vendor's Modbus write is refused with a Modbus exception and never reaches the PLC, the daemon
// reports the journal as not writable and raises the alert; when space returns it recovers by itself,
// journals the recovery, and the next write goes through.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { Plc, freePort, mbpoll } from '../adapters/modbus/fixtures/harness.ts';
import { startDaemon, tempDir, until, type DaemonProcess } from './daemon-harness.ts';
import { modbusSiteYaml } from './modbus-site.ts';

const tmp = tempDir('penstock-e2e-full-');
const mnt = join(tmp.dir, 'journal-fs');
let mounted = false;
let plc: Plc | undefined;
let daemon: DaemonProcess | undefined;
let modbusPort: number;

before(() => {
  mkdirSync(mnt);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt], { stdio: 'pipe' });
    mounted = true;
  } catch {
    mounted = false;
  }
});

after(async () => {
  await daemon?.stop();
  await plc?.stop();
  if (mounted) execFileSync('umount', ['-l', mnt]);
  tmp.cleanup();
});

function fill(path: string): void {
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(64 * 1024, 0xab);
  try {
    for (;;) writeSync(fd, block);
  } catch {
    // ENOSPC: the filesystem is full.
  } finally {
    closeSync(fd);
  }
}

test('a full journal filesystem refuses privileged actions, alerts, and recovers by itself', async (t) => {
  if (!mounted) {
    t.skip('mounting a tmpfs is not permitted here (needs root): the journal-level capacity test covers fail-closed');
    return;
  }
  const plcPort = await freePort();
  modbusPort = await freePort();
  plc = await Plc.start('tcp', plcPort);
  const yaml = modbusSiteYaml({
    id: 'e2e-full-gw', dir: tmp.dir, modbusPort, plcPort,
    journal: `{ path: ${mnt}/journal, checkpoint_every: 1000, checkpoint_seconds: 3600 }`,
    grant: { id: 'g-write', ticket: 'WO-5', access: 'readwrite' },
  });
  daemon = await startDaemon(tmp.dir, yaml);
  const write = (address: number, value: number) => mbpoll(['-m', 'tcp', '-p', String(modbusPort), '-a', '1', '-t', '4', '-r', String(address), '127.0.0.1', String(value)]);

  const ok = await write(5, 55);
  assert.equal(ok.code, 0, ok.stderr);
  await plc.logged(); // its log line can come after its answer
  assert.ok(plc.writes().some((w) => w.address === 5));

  const filler = join(mnt, 'filler');
  fill(filler);
  // LMDB may still fit a few commits into pages it already holds; once it needs more, writes are
  // refused: a Modbus exception, and the refused write never reaches the PLC.
  let attempt = 10;
  const refused = await until(async () => {
    const address = attempt++;
    const r = await write(address, 66);
    return r.code !== 0 ? { ...r, address } : undefined;
  }, 'a refused write once the disk is full', 20_000);
  assert.match(refused.stderr, /failure/i, 'server device failure exception');
  await plc.logged();
  assert.ok(!plc.writes().some((w) => w.address === refused.address), 'a write that could not be journaled never reached the PLC');
  const status = await daemon.json<{ journal: { writable: boolean; failure?: string } }>(['status']);
  assert.equal(status.journal.writable, false);
  assert.ok(status.journal.failure, 'the status says why');
  assert.match(daemon.stderr(), /ALERT journal cannot be written/);

  // Space returns: the journal recovers by itself (no restart, no command) and writes flow again.
  rmSync(filler);
  await until(async () => ((await daemon!.json<{ journal: { writable: boolean } }>(['status'])).journal.writable ? true : undefined), 'the journal to recover', 20_000);
  const again = await write(7, 77);
  assert.equal(again.code, 0, again.stderr);
  await plc.logged();
  assert.ok(plc.writes().some((w) => w.address === 7));
  // The recovery is journaled once it held (a few probe intervals), once per outage.
  const recovered = await until(async () => {
    const tail = await daemon!.json<{ events: { event: { event: string } }[] }>(['journal', 'tail', '-n', '200']);
    const n = tail.events.filter((e) => e.event.event === 'alert.journal_recovered').length;
    return n > 0 ? n : undefined;
  }, 'the recovery to be journaled', 20_000);
  assert.equal(recovered, 1, 'one recovery event for one outage');
  assert.equal(daemon.stderr().match(/ALERT journal cannot be written/g)?.length, 1, 'one alert for one outage');
  const v = await daemon.ctl(['journal', 'verify']);
  assert.equal(v.code, 0, v.stdout);
});
