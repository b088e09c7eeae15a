// A receiver that accepts TLS and then reads nothing (a hung SIEM): the export waits on the socket's
// drain instead of buffering the journal, the cursor stops short of the end, and stopping the daemon's
// export does not hang on it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { systemClock } from '../../src/common/clock.ts';
import { LmdbJournal } from '../../src/journal/journal.ts';
import { generateSigningKeyPem } from '../../src/journal/checkpoint.ts';
import { siemExportSchema, startSiemExports, journalSource } from '../../src/siem/exporter.ts';
import { makeTestPki } from '../sync/certs.ts';
import { tempDir, until } from '../support.ts';

test('a receiver that reads nothing holds the export back without unbounded buffering, and stop() returns', async () => {
  const pki = makeTestPki();
  const { dir, cleanup } = tempDir('penstock-siem-stall-');
  const sockets: TLSSocket[] = [];
  const server = createServer({ cert: pki.server.cert, key: pki.server.key }, (s) => {
    s.pause(); // never read: the kernel buffers fill, then the sender's writes wait for drain
    sockets.push(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const journal = await LmdbJournal.open({ path: dir, mapSizeMiB: 512, appliance: 'gw-stall', signingKeyPem: generateSigningKeyPem(), clock: systemClock, checkpointEvery: 100_000, checkpointSeconds: 3600 });
  try {
    const filler = 'x'.repeat(2000);
    for (let i = 0; i < 20; i++) await Promise.all(Array.from({ length: 1000 }, (_, k) => journal.append({ event: 'action.outcome', detail: { i, k, filler } })));
    const size = journal.size();
    const cfg = siemExportSchema.parse({ id: 'stall', host: '127.0.0.1', port: (server.address() as AddressInfo).port, tls: { ca: pki.ca.certPath }, settle_ms: 0, batch: 100 });
    const memory = () => process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    const before = memory();
    const exports = await startSiemExports([cfg], journalSource(journal), pino({ level: 'silent' }));
    await until(() => sockets.length === 1 && exports.status()[0]!.exported > 0, 'the export to connect and write');
    // ~40 MB of events against a receiver that reads nothing: the writes block well before the end.
    const t0 = Date.now();
    await exports.stop();
    const s = exports.status()[0]!;
    assert.ok(Date.now() - t0 < 8000, `stop() took ${Date.now() - t0} ms`);
    assert.ok(s.sent < size - 1, `sent ${s.sent} of ${size - 1}: the export waited for the receiver`);
    assert.ok(s.cursor <= s.sent);
    assert.ok(memory() - before < 32 * 2 ** 20, `no journal-sized buffer (${Math.round((memory() - before) / 2 ** 20)} MiB more)`);
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
    await journal.close();
    cleanup();
    pki.cleanup();
  }
});
