// Issue 10: `penstockctl journal verify` ran on the daemon's event loop, so the Modbus front door stopped
// answering until a verify of a large journal finished. Here the real daemon holds a journal of
// PENSTOCK_TEST_JOURNAL_EVENTS events (default 200,000; the case is 1,000,000) and mbpoll reads
// registers through the front door while the verify runs: round trips complete inside the span the
// daemon reports it spent verifying.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemClock } from '../../src/common/clock.ts';
import { LmdbJournal } from '../../src/journal/journal.ts';
import { Plc, freePort, mbpoll } from '../adapters/modbus/fixtures/harness.ts';
import { startDaemon, tempDir, type DaemonProcess } from './daemon-harness.ts';
import { modbusSiteYaml } from './modbus-site.ts';

const EVENTS = Number(process.env.PENSTOCK_TEST_JOURNAL_EVENTS ?? 200_000);
const tmp = tempDir('penstock-e2e-verify-');
let plc: Plc | undefined;
let daemon: DaemonProcess | undefined;

after(async () => {
  await daemon?.stop();
  await plc?.stop();
  tmp.cleanup();
});

test(`Modbus reads through the front door are answered while journal verify checks ${EVENTS.toLocaleString('en-US')} events`, async () => {
  const plcPort = await freePort();
  const modbusPort = await freePort();
  plc = await Plc.start('tcp', plcPort);
  const journalPath = join(tmp.dir, 'journal');
  const yaml = modbusSiteYaml({
    id: 'e2e-verify-gw', dir: tmp.dir, modbusPort, plcPort,
    journal: `{ path: ${journalPath}, checkpoint_every: 10000, checkpoint_seconds: 3600, map_size_mib: 4096 }`,
    grant: { id: 'g-read', ticket: 'WO-6', access: 'read' },
  });
  // First start makes the appliance key; then the journal is grown offline with that key, as years of
  // operation would have, and the daemon started on it again.
  daemon = await startDaemon(tmp.dir, yaml);
  const appliance = (await daemon.json<{ vkey: string }>(['journal', 'status'])).vkey.split('+')[0]!;
  await daemon.stop();
  const journal = await LmdbJournal.open({
    path: journalPath,
    mapSizeMiB: 4096,
    appliance,
    signingKeyPem: readFileSync(join(tmp.dir, 'state', 'keys', 'appliance-ed25519.pem'), 'utf8'),
    clock: systemClock,
    checkpointEvery: 10_000,
    checkpointSeconds: 3600,
  });
  for (let i = 0; i < EVENTS; i += 10_000) {
    await Promise.all(Array.from({ length: Math.min(10_000, EVENTS - i) }, (_, k) => journal.append({ event: 'action.allowed', session: `s-${(i + k) % 97}`, target: 'plc-1', detail: { i: i + k } })));
  }
  await journal.close();
  daemon = await startDaemon(tmp.dir, yaml);

  const read = () => mbpoll(['-m', 'tcp', '-p', String(modbusPort), '-a', '1', '-t', '4', '-r', '3', '-c', '2', '127.0.0.1']);
  const warm = await read();
  assert.equal(warm.code, 0, warm.stderr);
  let verifying = true;
  const answered: number[] = [];
  const reader = (async () => {
    while (verifying) {
      const r = await read();
      assert.equal(r.code, 0, r.stderr);
      answered.push(performance.now());
    }
  })();
  let verify: { ok: boolean; size: number; seconds: number };
  let verifyEnded: number;
  try {
    verify = await daemon.json<{ ok: boolean; size: number; seconds: number }>(['journal', 'verify']);
    verifyEnded = performance.now();
  } finally {
    verifying = false;
    await reader;
  }
  assert.equal(verify.ok, true);
  assert.ok(verify.size >= EVENTS);
  // The daemon says how long it verified; the answer then took a few milliseconds to reach the CLI's
  // output. Round trips that completed inside that span were served while the verify ran.
  const verifyStarted = verifyEnded - verify.seconds * 1000;
  const during = answered.filter((t) => t > verifyStarted && t < verifyEnded - 100).length;
  assert.ok(during >= 3, `${during} Modbus round trips completed during the ${verify.seconds.toFixed(1)} s verify (${answered.length} in all)`);
});
