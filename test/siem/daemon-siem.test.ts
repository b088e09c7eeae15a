// The gateway's SIEM export wired into the real daemon: a Modbus write by mbpoll through the front door
// reaches the real rsyslog as OCSF JSON; `penstockctl status` shows each export's cursor, lag and last
// error; an export to a receiver the pinned CA did not sign stays up, refused, and says why; a reload with
// the right CA restarts it, and it delivers from its cursor.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { Plc, freePort, mbpoll } from '../adapters/modbus/fixtures/harness.ts';
import { modbusSiteYaml } from '../e2e/modbus-site.ts';
import { startDaemon, tempDir, until, type DaemonProcess } from '../e2e/daemon-harness.ts';
import { makeTestPki, type TestPki } from '../sync/certs.ts';
import { startRsyslog, type Rsyslog } from '../peers/rsyslog.ts';
import type { SiemExportStatus } from '../../src/siem/exporter.ts';

const tmp = tempDir('penstock-e2e-siem-');
let pki: TestPki;
let rs: Rsyslog;
let plc: Plc;
let daemon: DaemonProcess;
let modbusPort: number;
let yaml: string;

before(async () => {
  pki = makeTestPki();
  rs = await startRsyslog({ ca: pki.ca.certPath, cert: pki.server.certPath, key: pki.server.keyPath });
  const plcPort = await freePort();
  modbusPort = await freePort();
  plc = await Plc.start('tcp', plcPort);
  yaml = `${modbusSiteYaml({ id: 'gw-siem', dir: tmp.dir, journal: `{ path: ${tmp.dir}/journal }`, modbusPort, plcPort, grant: { id: 'g-maint', ticket: 'WO-7', access: 'readwrite' } })}
siem:
  - { id: soc, host: 127.0.0.1, port: ${rs.port}, tls: { ca: ${pki.ca.certPath} }, settle_ms: 200 }
  - { id: wrong-ca, host: 127.0.0.1, port: ${rs.port}, tls: { ca: ${pki.otherCa.certPath} }, events: [action.] }
`;
  daemon = await startDaemon(tmp.dir, yaml);
});

after(async () => {
  await daemon?.stop();
  await plc?.stop();
  await rs?.close();
  pki?.cleanup();
  tmp.cleanup();
});

function records(): Record<string, any>[] {
  return rs.messages().map((l) => JSON.parse(l) as Record<string, any>);
}

test('a Modbus write through the front door reaches rsyslog as OCSF API Activity', async () => {
  const w = await mbpoll(['-m', 'tcp', '-p', String(modbusPort), '-a', '1', '-t', '4', '-r', '12', '127.0.0.1', '4242']);
  assert.equal(w.code, 0, w.stderr);
  const r = await until(() => records().find((x) => x.unmapped.penstock.event === 'action.allowed' && x.unmapped.penstock.action?.verb === 'write'), 'the write in rsyslog');
  assert.equal(r.class_uid, 6003);
  assert.equal(r.activity_id, 3);
  assert.equal(r.actor.user.uid, 'vendor-1');
  assert.equal(r.api.service.name, 'modbus');
  assert.equal(r.dst_endpoint.name, 'plc-1');
  assert.deepEqual(r.unmapped.penstock.action.modbus.values, [4242]);
  assert.match(r.metadata.uid, /^gw-siem:\d+$/);
  const started = records().find((x) => x.unmapped.penstock.event === 'daemon.started');
  assert.equal(started?.class_uid, 6002);
});

test('status shows each export: cursor, lag, last error', async () => {
  const status = await until(async () => {
    const s = await daemon.json<{ siem: SiemExportStatus[]; journal: { size: number; cursors?: Record<string, number> } }>(['status']);
    const soc = s.siem.find((x) => x.id === 'soc')!;
    return soc.cursor >= 0 && soc.lag === 0 && s.siem.find((x) => x.id === 'wrong-ca')?.last_error ? s : undefined;
  }, 'the soc export to catch up and the other to fail');
  const soc = status.siem.find((x) => x.id === 'soc')!;
  assert.equal(soc.state, 'connected');
  assert.equal(soc.last_error, undefined);
  assert.equal(status.journal.cursors?.['siem:soc'], soc.cursor);
  const wrong = status.siem.find((x) => x.id === 'wrong-ca')!;
  assert.equal(wrong.last_error!.code, 'tls_untrusted');
  assert.equal(wrong.cursor, -1);
  assert.ok(wrong.lag > 0);
  // What plant staff read: a line per export, the refused one with its reason. Asked until the soc line
  // shows it caught up, as above: the first test's outcome and session end are journaled lazily, so one
  // can be committed after the look above and wait out the export's settle time.
  const caughtUp = /siem soc:\s+connected to \S+, delivered up to \d+ \(0 waiting\)/;
  const text = await until(async () => {
    const out = (await daemon.ctl(['status'])).stdout;
    return caughtUp.test(out) ? out : undefined;
  }, 'penstockctl status to show the soc export caught up');
  assert.match(text, /siem wrong-ca:\s+\S+ to \S+, nothing delivered yet \(\d+ waiting\), last error tls_untrusted/);
});

test('a reload with the right CA restarts the refused export, which delivers from its cursor', async () => {
  const before = records().length;
  writeFileSync(daemon.configFile, yaml.replace(`tls: { ca: ${pki.otherCa.certPath} }, events: [action.]`, `tls: { ca: ${pki.ca.certPath} }, events: [action.]`));
  const r = await daemon.ctl(['config', 'reload']);
  assert.equal(r.code, 0, r.stderr);
  const fixed = await until(async () => {
    const s = await daemon.json<{ siem: SiemExportStatus[] }>(['status']);
    const x = s.siem.find((e) => e.id === 'wrong-ca')!;
    return x.cursor >= 0 && x.lag === 0 && !x.last_error ? x : undefined;
  }, 'the export with the right CA to catch up');
  assert.equal(fixed.state, 'connected');
  // Its filter lets only action.* through: the write of the first test arrives a second time, from this export.
  const writes = records().slice(before).filter((x) => x.unmapped.penstock.event === 'action.allowed' && x.unmapped.penstock.action?.verb === 'write');
  assert.ok(writes.some((x) => x.unmapped.penstock.action.modbus.values[0] === 4242), 'the earlier write delivered by the restarted export');
});
