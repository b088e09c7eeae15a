// SIEM export from the collector (issue 16 item 3, "and from the collector"): the collector's `siem:`
// entries export what it verified into PostgreSQL to a real rsyslog over TLS, as OCSF. With two
// collectors on the same database, each export runs on one of them at a time (its cursor is shared):
// every verified event reaches rsyslog, and the second collector does not send them all again.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { startCollector, type Collector } from '../../src/collector/collector.ts';
import { collectorConfigSchema } from '../../src/collector/config.ts';
import { makeTestPki } from '../sync/certs.ts';
import { startRsyslog, type Rsyslog } from '../peers/rsyslog.ts';
import { until } from '../support.ts';
import { Publisher, appendEvents, collectorConfig, openAppliance, quietLog, startPeers, type Peers } from './harness.ts';

let peers: Peers | undefined;
let rs: Rsyslog | undefined;
const collectors: Collector[] = [];
const pki = makeTestPki();

after(async () => {
  for (const c of collectors) await c.close();
  await rs?.close();
  await peers?.stop();
  pki.cleanup();
});

test('two collectors: the export runs on one, and every verified event reaches rsyslog as OCSF', async () => {
  peers = await startPeers();
  rs = await startRsyslog({ ca: pki.ca.certPath, cert: pki.server.certPath, key: pki.server.keyPath });
  const db = await peers.pg.createDatabase('siem_from_collector');
  const a = await openAppliance(peers, 'gw-siem-1');
  const b = await openAppliance(peers, 'gw-siem-2');
  await appendEvents(a, 600, 200);
  await appendEvents(b, 400, 200);

  const base = collectorConfig(peers, db, [a, b]);
  const withSiem = (id: string) => collectorConfigSchema.parse({
    ...base,
    collector: { ...base.collector, id },
    siem: [{ id: 'soc', host: '127.0.0.1', port: rs!.port, tls: { ca: pki.ca.certPath, server_name: 'localhost' } }],
  });
  collectors.push(await startCollector(withSiem('c1'), quietLog));
  collectors.push(await startCollector(withSiem('c2'), quietLog));
  const publisher = await Publisher.connect(peers);
  await publisher.streamReady();
  await publisher.publishJournal(a);
  await publisher.publishJournal(b);
  await publisher.close();

  const uids = () => new Set(rs!.messages().map((l) => (JSON.parse(l) as { metadata: { uid: string } }).metadata.uid));
  await until(() => uids().size >= 1000, `rsyslog receiving 1000 events (has ${uids().size})`, 60_000);
  for (let seq = 0; seq < 600; seq++) assert.ok(uids().has(`gw-siem-1:${seq}`), `gw-siem-1:${seq} exported`);
  for (let seq = 0; seq < 400; seq++) assert.ok(uids().has(`gw-siem-2:${seq}`), `gw-siem-2:${seq} exported`);
  const running = collectors.map((c) => c.status().siem.length);
  assert.deepEqual(running.sort(), [0, 1], 'the export runs on exactly one collector');
  // At-least-once allows a resend after a cut; with no cut, one collector sending: each event once.
  assert.equal(rs.messages().length, 1000);
  const record = JSON.parse(rs.messages()[0]!) as { class_uid: number; metadata: { product: { name: string } } };
  assert.equal(record.metadata.product.name, 'Penstock');
  assert.equal(typeof record.class_uid, 'number');
});
