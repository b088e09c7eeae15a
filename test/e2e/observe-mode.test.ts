// Issue 15: a first visit under a grant in `mode: observe`, end to end with mbpoll and a pymodbus PLC.
// Reads go through; a write its rules allow waits for a person and reaches the PLC only once approved
// (asserted at the PLC); a refused one never does. `grants suggest` then proposes the reads and the
// approved write, and lists the refused one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { Plc, freePort, mbpoll } from '../adapters/modbus/fixtures/harness.ts';
import { modbusDoorYaml } from './modbus-site.ts';
import { adminRequest } from '../../src/admin/client.ts';
import { startDaemon, tempDir, until, type DaemonProcess } from './daemon-harness.ts';

const tmp = tempDir('penstock-e2e-observe-');
let plc: Plc;
let daemon: DaemonProcess;
let modbusPort: number;

before(async () => {
  const plcPort = await freePort();
  modbusPort = await freePort();
  plc = await Plc.start('tcp', plcPort);
  daemon = await startDaemon(tmp.dir, `appliance: { id: e2e-observe, site: Test, zone: dmz, state_dir: ${tmp.dir}/state, runtime_dir: ${tmp.dir}/run }
approvals: { timeout_seconds: 60 }
${modbusDoorYaml(modbusPort, plcPort)}grants:
  - { id: g-first-visit, principal: vendor-1, targets: [plc-1], task: { ticket: WO-9 }, mode: observe, rules: [{ modbus: { preset: readwrite } }] }
`);
});
after(async () => {
  await daemon?.stop();
  await plc?.stop();
  tmp.cleanup();
});

const mb = (args: string[]) => mbpoll(['-m', 'tcp', '-p', String(modbusPort), '-a', '1', '-t', '4', '-o', '10', ...args, '127.0.0.1']);
// Over the admin socket from this process, not a penstockctl process per poll: mbpoll gives up after
// 10 s (its longest time-out), and on a loaded machine starting a CLI a few times takes that long.
const admin = (command: string, params: unknown = {}) => adminRequest(daemon.socket, command, params);
const pending = () => until(async () => ((await admin('approvals.list')) as { id: string; action: { object: { address: number } } }[])[0], 'a pending approval', 9_000);

test('observe mode: reads allowed, a write waits for a person and reaches the PLC only when approved; suggest learns from it', async () => {
  const r = await mb(['-r', '0', '-c', '5']);
  assert.equal(r.code, 0, r.stderr);

  const write = mbpoll(['-m', 'tcp', '-p', String(modbusPort), '-a', '1', '-t', '4', '-o', '10', '-r', '7', '127.0.0.1', '123']);
  const asked = await pending();
  assert.equal(asked.action.object.address, 7);
  await plc.logged(); // the PLC's log lines can come after its answers
  assert.deepEqual(plc.writes(), [], 'nothing reaches the PLC before a person says yes');
  await admin('approvals.approve', { id: asked.id });
  const written = await write;
  assert.equal(written.code, 0, written.stderr);
  await plc.logged();
  assert.deepEqual(plc.writes().map((w) => [w.address, w.value]), [[7, 123]]);

  const refused = mbpoll(['-m', 'tcp', '-p', String(modbusPort), '-a', '1', '-t', '4', '-o', '10', '-r', '8', '127.0.0.1', '5']);
  const second = await pending();
  await admin('approvals.deny', { id: second.id });
  assert.notEqual((await refused).code, 0);
  await plc.logged();
  assert.deepEqual(plc.writes().map((w) => w.address), [7], 'the refused write never reached the PLC');

  const yamlText = await until(async () => {
    const s = await daemon.ctl(['grants', 'suggest', '--principal', 'vendor-1']);
    assert.equal(s.code, 0, s.stderr);
    return /reads; FC 3/.test(s.stdout) ? s.stdout : undefined;
  }, 'the read aggregate in the suggestion');
  const { grants } = parse(yamlText) as { grants: { rules: { modbus: Record<string, unknown> }[] }[] };
  assert.deepEqual(grants[0]!.rules.map((x) => x.modbus), [
    { effect: 'allow', function_codes: [3], units: [1], tables: ['holding_register'], addresses: [{ from: 0, to: 4 }] },
    { effect: 'allow', function_codes: [6], units: [1], tables: ['holding_register'], addresses: [{ from: 7, to: 7 }], min: 123, max: 123 },
  ]);
  assert.match(yamlText, /denied, not granted \(1\):\n\s*#\s+write .*address=8 .*\(approval_refused\)/);
});
