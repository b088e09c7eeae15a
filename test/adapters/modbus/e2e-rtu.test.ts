// End to end over Modbus RTU: a socat pty pair stands in for the RS-485 line, pymodbus serves RTU on one
// end (the PLC), Penstock's upstream drives the other through serialport; mbpoll is the vendor's tool on
// the gateway's plain Modbus/TCP front door.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { mbpoll, mbpollValues, Plc, startGateway, tempDir, until, type Gateway } from './fixtures/harness.ts';

let tmp: ReturnType<typeof tempDir>;
let socat: ChildProcess;
let socatExit: Promise<void>;
let plc: Plc | undefined;
let gw: Gateway;

before(async () => {
  tmp = tempDir('penstock-mb-rtu-');
  const plcEnd = join(tmp.dir, 'plc-tty');
  const gwEnd = join(tmp.dir, 'gw-tty');
  socat = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${plcEnd}`, `pty,raw,echo=0,link=${gwEnd}`], { stdio: 'ignore' });
  socatExit = new Promise((r) => socat.once('exit', () => r()));
  await until(() => existsSync(plcEnd) && existsSync(gwEnd), 'the socat pty pair');
  plc = await Plc.start('rtu', plcEnd);
  gw = await startGateway(tmp.dir, `
appliance: { id: gw-rtu, site: Test bench, zone: lab, state_dir: ${tmp.dir}/state }
listeners:
  - id: mb-tcp
    protocol: modbus
    mode: tcp
    port: 0
    bindings: [{ source: 127.0.0.1, principal: vendor-a }]
    routes: [{ unit: 1, target: plc-rtu, target_unit: 5 }]
principals:
  - { id: vendor-a, kind: vendor, owner: Drive Service, purpose: Drive tuning }
targets:
  - id: plc-rtu
    protocol: modbus
    zone: drives
    serial: { device: ${gwEnd}, baud: 19200, parity: none }
    timeout_ms: 500
    read_back_before_write: true
grants:
  - id: g-drive
    principal: vendor-a
    targets: [plc-rtu]
    task: { ticket: CHG-77 }
    rules:
      - modbus: { access: readwrite, tables: [holding_register], addresses: ["0-19"], min: 0, max: 1000 }
`);
});

after(async () => {
  await gw?.stop();
  await plc?.stop();
  if (socat && socat.exitCode === null) socat.kill('SIGKILL');
  await socatExit;
  tmp?.cleanup();
});

const port = () => String(gw.port('mb-tcp'));

test('RTU: an allowed read and write reach the PLC on the serial line, with the routed unit id', async () => {
  const r = await mbpoll(['-p', port(), '-r', '2', '-c', '3', '127.0.0.1']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.deepEqual([...mbpollValues(r.stdout)], [[2, 102], [3, 103], [4, 104]]);
  await until(() => plc!.requests.some((q) => q.fc === 3 && q.unit === 5 && q.address === 2 && q.count === 3), 'the RTU read');

  const w = await mbpoll(['-p', port(), '-r', '4', '127.0.0.1', '777']);
  assert.equal(w.code, 0, w.stdout + w.stderr);
  await until(() => plc!.writes().some((q) => q.fc === 6 && q.address === 4 && q.value === 777), 'the RTU write');
  await until(() => gw.events().some((e) => e.event === 'action.outcome'), 'the outcome');
  const outcome = gw.events().find((e) => e.event === 'action.outcome')!;
  assert.deepEqual(outcome.outcome?.old_values, [104]);
  assert.deepEqual(outcome.outcome?.new_values, [777]);
});

test('RTU: denied writes return the exception and never reach the serial line', async () => {
  const before = plc!.requests.length;
  const out = await mbpoll(['-p', port(), '-r', '25', '127.0.0.1', '1']);
  assert.match(out.stdout + out.stderr, /Illegal data address/i);
  const big = await mbpoll(['-p', port(), '-r', '5', '127.0.0.1', '5000']);
  assert.match(big.stdout + big.stderr, /Illegal data value/i);
  // A last allowed read on the same serial line: once the PLC has logged it, a stray denied write sent
  // before it would be in the log too (the log can lag the answers, so its length alone proves nothing).
  const marker = await mbpoll(['-p', port(), '-r', '0', '127.0.0.1']);
  assert.equal(marker.code, 0, marker.stdout + marker.stderr);
  await until(() => plc!.requests.slice(before).some((q) => q.fc === 3 && q.unit === 5 && q.address === 0 && q.count === 1), 'the last read at the PLC');
  assert.deepEqual(plc!.requests.slice(before), [{ fc: 3, unit: 5, address: 0, count: 1 }], 'no denied request reached the PLC');
});

test('RTU: a PLC that stops answering gives the client exception 0x0B, not a hang, and the journal records it', async () => {
  await plc!.stop();
  plc = undefined;
  const r = await mbpoll(['-p', port(), '-r', '6', '127.0.0.1', '9']);
  assert.notEqual(r.code, 0);
  assert.match(r.stdout + r.stderr, /Target device failed to respond/i);
  await until(() => gw.events().some((e) => e.event === 'action.outcome' && e.outcome?.upstream === 'UPSTREAM_TIMEOUT'), 'the failed outcome');
});
