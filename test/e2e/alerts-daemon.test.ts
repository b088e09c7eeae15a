// Issue 15, the detectors in the real daemon: mbpoll (libmodbus) as the vendor's tool, pymodbus as the
// PLC, the daemon as a process on a config file. A vendor probing registers next to its grant raises
// alert.probing; a setpoint written far outside its usual band raises alert.unusual_write. Asserted in
// the journal (penstockctl journal tail) and at the PLC.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Plc, freePort, mbpoll } from '../adapters/modbus/fixtures/harness.ts';
import { startDaemon, tempDir, until, type DaemonProcess } from './daemon-harness.ts';
import { modbusDoorYaml } from './modbus-site.ts';

const tmp = tempDir('penstock-e2e-alerts-');
let plc: Plc;
let daemon: DaemonProcess;
let modbusPort: number;

interface Tail { events: { seq: number; event: { seq: number; event: string; principal?: string; decision?: { reason?: string }; detail?: Record<string, unknown> } }[] }

function config(plcPort: number): string {
  return `appliance: { id: e2e-alerts, site: Test site, zone: dmz, state_dir: ${tmp.dir}/state, runtime_dir: ${tmp.dir}/run }
alerts:
  unusual_write: { min_samples: 3 }
${modbusDoorYaml(modbusPort, plcPort)}grants:
  - id: g-maint
    principal: vendor-1
    targets: [plc-1]
    task: { ticket: WO-1 }
    rules:
      - modbus: { preset: readonly }
      - modbus: { access: write, tables: [holding_register], addresses: ["10-19"], max: 500 }
`;
}

const writeRegister = (address: number, value: number) => mbpoll(['-m', 'tcp', '-p', String(modbusPort), '-a', '1', '-t', '4', '-r', String(address), '127.0.0.1', String(value)]);
/** The journal's last events, once one of them is `event`. */
const journalWith = (event: string) => until(async () => {
  const all = (await daemon.json<Tail>(['journal', 'tail', '-n', '500'])).events.map((e) => e.event);
  return all.some((e) => e.event === event) ? all : undefined;
}, `${event} in the journal`);

before(async () => {
  const plcPort = await freePort();
  modbusPort = await freePort();
  plc = await Plc.start('tcp', plcPort);
  daemon = await startDaemon(tmp.dir, config(plcPort));
});

after(async () => {
  await daemon?.stop();
  await plc?.stop();
  tmp.cleanup();
});

test('mbpoll writing to the registers next to its grant, one after another, raises one alert.probing naming the denials; none reaches the PLC', async () => {
  for (const address of [30, 31, 32, 33]) {
    const r = await writeRegister(address, 1);
    assert.notEqual(r.code, 0, `the write to ${address} is refused`);
  }
  const events = await journalWith('alert.probing');
  const probing = events.filter((e) => e.event === 'alert.probing');
  assert.equal(probing.length, 1);
  assert.equal(probing[0]!.principal, 'vendor-1');
  const denials = events.filter((e) => e.event === 'action.denied' && e.decision?.reason === 'object_not_granted').map((e) => e.seq);
  const triggers = probing[0]!.detail?.triggers as number[];
  assert.ok(triggers.length >= 4, `triggers ${triggers}`);
  assert.ok(triggers.every((seq) => denials.includes(seq)), `triggers ${triggers} are the denials ${denials}`);
  await plc.logged();
  assert.ok(!plc.writes().some((w) => w.address !== undefined && w.address >= 30 && w.address <= 33), 'no probed write reached the PLC');
});

test('a setpoint written far outside the values written to it before raises alert.unusual_write (logged, the write itself allowed)', async () => {
  for (const v of [100, 104, 98]) assert.equal((await writeRegister(12, v)).code, 0);
  assert.equal((await writeRegister(12, 102)).code, 0);
  assert.equal((await writeRegister(12, 480)).code, 0);
  const events = await journalWith('alert.unusual_write');
  const unusual = events.filter((e) => e.event === 'alert.unusual_write');
  assert.equal(unusual.length, 1);
  assert.deepEqual([unusual[0]!.detail?.value, unusual[0]!.detail?.usual_min, unusual[0]!.detail?.usual_max], [480, 98, 104]);
  await until(() => plc.writes().find((w) => w.address === 12 && (w.value ?? w.values?.[0]) === 480), 'the write at the PLC (log only)');
});
