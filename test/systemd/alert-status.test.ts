// Issue 15: an alert reaches the service's systemd status line. The real daemon (src/main.ts) runs with
// NOTIFY_SOCKET pointing at a datagram listener standing in for systemd (notify-listener.ts); mbpoll
// (libmodbus) probes the registers next to its grant on a pymodbus PLC, the detectors journal
// alert.probing, and a STATUS= naming the alert kind and its journal seq arrives at the listener.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Plc, freePort, mbpoll } from '../adapters/modbus/fixtures/harness.ts';
import { startDaemon, tempDir, until, type DaemonProcess } from '../e2e/daemon-harness.ts';
import { modbusDoorYaml } from '../e2e/modbus-site.ts';
import { startNotifyListener, type NotifyListener } from './notify-listener.ts';

const tmp = tempDir('penstock-alert-status-');
let plc: Plc;
let daemon: DaemonProcess;
let listener: NotifyListener;
let modbusPort: number;

/** vendor-1 may read holding registers and write 10-19 (the writes next to them are refused). */
const config = (plcPort: number) => `appliance: { id: alert-status, site: Test site, zone: dmz, state_dir: ${tmp.dir}/state, runtime_dir: ${tmp.dir}/run }
${modbusDoorYaml(modbusPort, plcPort)}grants:
  - { id: g-maint, principal: vendor-1, targets: [plc-1], task: { ticket: WO-1 }, rules: [{ modbus: { preset: readonly } }, { modbus: { access: write, tables: [holding_register], addresses: ["10-19"], max: 500 } }] }
`;

const writeRegister = (address: number, value: number) => mbpoll(['-m', 'tcp', '-p', String(modbusPort), '-a', '1', '-t', '4', '-r', String(address), '127.0.0.1', String(value)]);
const alertStatuses = () => listener.messages.filter((m) => m.fields.STATUS?.startsWith('ALERT '));

before(async () => {
  const plcPort = await freePort();
  modbusPort = await freePort();
  listener = await startNotifyListener(tmp.dir);
  plc = await Plc.start('tcp', plcPort);
  daemon = await startDaemon(tmp.dir, config(plcPort), { env: { NOTIFY_SOCKET: listener.path } });
});

after(async () => {
  await daemon?.stop();
  await plc?.stop();
  await listener?.close();
  tmp.cleanup();
});

test('alert.probing in the real daemon puts a STATUS= line naming the kind and its journal seq on the systemd socket', { timeout: 90_000 }, async () => {
  // The daemon speaks to this socket at all: READY=1 once it serves.
  await until(() => listener.messages.some((m) => m.fields.READY === '1'), 'READY=1 from the daemon', 30_000);
  // Work inside the grant alerts nothing.
  assert.equal((await writeRegister(12, 100)).code, 0);
  for (const address of [30, 31, 32, 33]) assert.notEqual((await writeRegister(address, 1)).code, 0, `the write to ${address} is refused`);

  const status = await until(() => alertStatuses()[0], 'an ALERT status line', 30_000);
  const tail = await daemon.json<{ events: { seq: number; event: { event: string; principal?: string } }[] }>(['journal', 'tail', '-n', '500']);
  const journaled = tail.events.filter((e) => e.event.event.startsWith('alert.'));
  assert.deepEqual(journaled.map((e) => e.event.event), ['alert.probing'], 'the one alert journaled');
  assert.equal(journaled[0]!.event.principal, 'vendor-1');
  assert.match(status.fields.STATUS!, /^ALERT probing \(warning\): vendor-1 on plc-1, journal seq (\d+)$/);
  assert.equal(Number(/journal seq (\d+)$/.exec(status.fields.STATUS!)![1]), journaled[0]!.seq, 'the status names the journaled alert');
  assert.equal(alertStatuses().length, 1, 'one alert, one status line');
  // Only the status changes: the daemon still serves and is not told to stop.
  assert.ok(!listener.messages.some((m) => m.fields.STOPPING === '1'));
  assert.equal((await writeRegister(12, 101)).code, 0);
});
