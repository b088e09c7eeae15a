// End to end over plain Modbus/TCP (the weak mode: source-address binding) and Modbus/TCP Security
// (mutual TLS), with peers no one here wrote: mbpoll as the vendor's tool, pymodbus as the PLC.
// Asserts on both sides: what the client got, what reached the PLC (its own request log), and what the
// real journal holds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, makePki, mbpoll, mbpollValues, Plc, pymodbusTls, startGateway, tempDir, tlsModbusExchange, until, type Gateway, type Pki } from './fixtures/harness.ts';
import { encodeMbap } from '../../../src/adapters/modbus/codec.ts';

const tlsExchange = (client: { cert: string; key: string }, frame: Buffer) => tlsModbusExchange(gw.port('mb-tls'), pki.caCert, client, frame);

let tmp: ReturnType<typeof tempDir>;
let plc: Plc;
let gw: Gateway;
let pki: Pki;

function config(plcPort: number): string {
  return `
appliance: { id: gw-test, site: Test bench, zone: lab, state_dir: ${tmp.dir}/state }
journal: { every_read: false, aggregate_reads_seconds: 3600 }
listeners:
  - id: mb-tcp
    protocol: modbus
    mode: tcp
    host: 127.0.0.1
    port: 0
    bindings: [{ source: 127.0.0.1, principal: vendor-a }]
    routes: [{ unit: 1, target: plc-1 }, { unit: 7, target: plc-1, target_unit: 3 }, { unit: 2, target: inverter-1 }]
  - id: mb-tls
    protocol: modbus
    mode: tls
    host: 127.0.0.1
    port: 0
    tls: { cert: ${pki.serverCert}, key: ${pki.serverKey}, client_ca: ${pki.caCert} }
    routes: [{ unit: 1, target: plc-1 }]
principals:
  - id: vendor-a
    kind: vendor
    owner: Pump Service Ltd
    purpose: Pump station tuning
    credentials: { x509: { subject_cn: vendor-a } }
  - id: stranger
    kind: vendor
    owner: Nobody
    purpose: Holds no grant
    credentials: { x509: { subject_cn: stranger } }
targets:
  - id: plc-1
    protocol: modbus
    zone: pumps
    host: 127.0.0.1
    port: ${plcPort}
    timeout_ms: 1000
    read_back_before_write: true
  # The same pymodbus PLC as a Fronius: it has no register 40250, so WMaxLimPct_SF cannot be read.
  - { id: inverter-1, protocol: modbus, zone: pv, host: 127.0.0.1, port: ${plcPort}, timeout_ms: 1000, profile: fronius-symo-intsf }
grants:
  - id: g-pumps
    principal: vendor-a
    targets: [plc-1]
    task: { ticket: CHG-42 }
    rules:
      - modbus: { access: read, tables: [holding_register, input_register], addresses: ["0-49"] }
      - modbus: { access: write, tables: [holding_register], addresses: ["10-19"], min: 0, max: 500 }
  - id: g-inverter
    principal: vendor-a
    targets: [inverter-1]
    task: { ticket: CHG-43 }
    rules:
      - modbus: { access: write, points: [controls.WMaxLimPct], max: 80 }
`;
}

before(async () => {
  tmp = tempDir('penstock-mb-e2e-');
  pki = makePki(tmp.dir);
  const plcPort = await freePort();
  plc = await Plc.start('tcp', plcPort);
  gw = await startGateway(tmp.dir, config(plcPort));
});

after(async () => {
  await gw?.stop();
  await plc?.stop();
  tmp?.cleanup();
});

const port = () => String(gw.port('mb-tcp'));

test('an allowed read reaches the PLC and returns its values', async () => {
  const r = await mbpoll(['-p', port(), '-r', '0', '-c', '5', '127.0.0.1']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.deepEqual([...mbpollValues(r.stdout)], [[0, 100], [1, 101], [2, 102], [3, 103], [4, 104]]);
  await until(() => plc.requests.some((q) => q.fc === 3 && q.address === 0 && q.count === 5), 'the read at the PLC');
  // Reads are journaled as a per-session aggregate, written when the session ends (mbpoll disconnects).
  await until(() => gw.events().some((e) => e.event === 'reads.aggregate' && JSON.stringify(e.detail).includes('"address":0')), 'the read aggregate');
  const agg = gw.events().find((e) => e.event === 'reads.aggregate')!;
  const reads = agg.detail!.reads as Array<{ target: string; object: { address: number; quantity: number }; count: number }>;
  assert.deepEqual(reads.map((r) => [r.target, r.object.address, r.object.quantity, r.count]), [['plc-1', 0, 5, 1]]);
});

test('an allowed write reaches the PLC, is journaled before it, and its outcome records old → new', async () => {
  const r = await mbpoll(['-p', port(), '-r', '12', '127.0.0.1', '250']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  await until(() => plc.writes().some((q) => q.fc === 6 && q.address === 12 && q.value === 250), 'the write at the PLC');
  await until(() => gw.events().some((e) => e.event === 'action.outcome'), 'the outcome event');
  const events = gw.events();
  const allowed = events.find((e) => e.event === 'action.allowed' && (e.action as { verb?: string })?.verb === 'write');
  const outcome = events.find((e) => e.event === 'action.outcome');
  assert.ok(allowed, 'the write was journaled as allowed');
  assert.ok(allowed.seq < outcome!.seq, 'journaled before its outcome');
  assert.equal(allowed.principal, 'vendor-a');
  assert.equal(allowed.target, 'plc-1');
  assert.equal((allowed.decision as { grant?: string }).grant, 'g-pumps');
  assert.deepEqual(outcome!.outcome?.new_values, [250], 'the values written, under the README\'s name');
  assert.deepEqual(outcome!.outcome?.old_values, [112], 'the value read back just before the write');
  assert.equal(outcome!.outcome?.before, undefined);
  assert.equal(outcome!.outcome?.ok, true);
});

test('a write bounded in engineering units is refused while the scale factor of the device cannot be read, and never reaches it', async () => {
  await plc.logged();
  const writesBefore = plc.writes().length;
  const r = await mbpoll(['-p', port(), '-a', '2', '-r', '40232', '127.0.0.1', '50']);
  assert.notEqual(r.code, 0);
  assert.match(r.stdout + r.stderr, /Illegal data value/i);
  // The gateway asked the device for the factor itself; the device has no such register.
  await plc.logged();
  assert.ok(plc.requests.some((q) => q.fc === 3 && q.address === 40250 && q.count === 1), 'the factor read at the PLC');
  assert.equal(plc.writes().length, writesBefore, 'the write never reached the PLC');
  const denied = await until(() => gw.events().find((e) => e.event === 'action.denied' && e.target === 'inverter-1'), 'the denial');
  assert.match(String((denied.decision as { explanation?: string }).explanation), /scale factor controls\.WMaxLimPct_SF could not be read from the device/);
});

test('denied requests get the right exception at once and never reach the PLC', async () => {
  await plc.logged();
  const writesBefore = plc.writes().length;
  // Outside the granted range → illegal data address.
  const addr = await mbpoll(['-p', port(), '-r', '30', '127.0.0.1', '5']);
  assert.notEqual(addr.code, 0);
  assert.match(addr.stdout + addr.stderr, /Illegal data address/i);
  // Inside the range but above the rule's max → illegal data value.
  const value = await mbpoll(['-p', port(), '-r', '11', '127.0.0.1', '900']);
  assert.notEqual(value.code, 0);
  assert.match(value.stdout + value.stderr, /Illegal data value/i);
  // Coils are not granted at all → illegal function.
  const fn = await mbpoll(['-p', port(), '-t', '0', '-r', '3', '127.0.0.1', '1']);
  assert.notEqual(fn.code, 0);
  assert.match(fn.stdout + fn.stderr, /Illegal function/i);
  // A read the PLC would answer, on an address not granted → illegal data address, not forwarded.
  const read = await mbpoll(['-p', port(), '-r', '60', '-c', '2', '127.0.0.1']);
  assert.match(read.stdout + read.stderr, /Illegal data address/i);

  // The PLC side: an allowed request sent after the denials is seen, the denied ones never were.
  const ok = await mbpoll(['-p', port(), '-r', '13', '127.0.0.1', '7']);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  await until(() => plc.writes().some((q) => q.address === 13 && q.value === 7), 'the allowed write');
  const newWrites = plc.writes().slice(writesBefore);
  assert.deepEqual(newWrites.map((q) => [q.fc, q.address, q.value]), [[6, 13, 7]]);
  assert.ok(!plc.requests.some((q) => q.fc === 3 && q.address === 60), 'the denied read never reached the PLC');

  const denied = gw.events().filter((e) => e.event === 'action.denied');
  const reasons = denied.map((e) => (e.decision as { reason: string }).reason);
  for (const reason of ['object_not_granted', 'value_out_of_bounds', 'function_not_granted']) assert.ok(reasons.includes(reason), `a denial with reason ${reason}`);
});

test('a unit id routes to its target unit; an unrouted unit gets gateway path unavailable', async () => {
  const r = await mbpoll(['-p', port(), '-a', '7', '-r', '2', '127.0.0.1']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  await until(() => plc.requests.some((q) => q.fc === 3 && q.unit === 3 && q.address === 2), 'the read on unit 3 at the PLC');
  const unrouted = await mbpoll(['-p', port(), '-a', '9', '-r', '2', '127.0.0.1']);
  assert.notEqual(unrouted.code, 0);
  assert.match(unrouted.stdout + unrouted.stderr, /gateway path/i);
});

test('mode tls: pymodbus\'s TLS client with a client certificate reads and writes through Modbus/TCP Security', async () => {
  const client = pki.client('vendor-a', { role: 'Operator' });
  const out = await pymodbusTls(gw.port('mb-tls'), pki.caCert, client, `
    r = await c.read_holding_registers(0, 3, slave=1)
    print("read", r.registers)
    w = await c.write_register(14, 321, slave=1)
    print("write", w.isError())
    d = await c.write_register(40, 1, slave=1)
    print("denied", d.exception_code if d.isError() else "no")`);
  assert.match(out, /read \[100, 101, 102\]/);
  assert.match(out, /write False/);
  assert.match(out, /denied 2/, 'illegal data address for a write outside the grant');
  await plc.logged();
  assert.ok(plc.writes().some((q) => q.address === 14 && q.value === 321), 'the TLS write at the PLC');
  assert.ok(!plc.writes().some((q) => q.address === 40), 'the denied write never reached the PLC');
  const opened = gw.events().filter((e) => e.event === 'session.opened' && e.listener === 'mb-tls');
  assert.equal(opened.at(-1)?.principal, 'vendor-a');
  const outcome = gw.events().filter((e) => e.event === 'action.outcome' && e.listener === 'mb-tls').at(-1);
  assert.equal(outcome?.outcome?.role, 'Operator', 'the Modbus/TCP Security role is recorded');
});

test('mode tls: a certificate from the right CA that names no principal is refused and journaled', async () => {
  const client = pki.client('unknown-cn');
  const got = await tlsExchange(client, encodeMbap(1, 1, Buffer.from([3, 0, 0, 0, 1])));
  assert.equal(got, 'closed');
  await until(() => gw.events().some((e) => e.event === 'auth.failed' && e.listener === 'mb-tls'), 'auth.failed');
  // In the one refusal shape, with a stable reason.
  await until(() => gw.events().some((e) => e.event === 'auth.failed' && e.listener === 'mb-tls' && e.detail?.reason === 'unknown_certificate' && e.detail?.protocol === 'modbus'), 'auth.failed, unknown_certificate');
});

test('mode tls: a principal without a grant gets illegal function, and nothing reaches the PLC', async () => {
  await plc.logged();
  const before = plc.requests.length;
  const client = pki.client('stranger');
  const got = await tlsExchange(client, encodeMbap(9, 1, Buffer.from([3, 0, 0, 0, 1])));
  assert.deepEqual(got, { transactionId: 9, pdu: [0x83, 0x01] });
  await plc.logged();
  assert.equal(plc.requests.length, before);
});

test('mode tcp: a connection from an unbound address is closed and journaled as auth.failed', async () => {
  const net = await import('node:net');
  // 127.0.0.2 is loopback too, but no binding names it.
  const closed = await new Promise<boolean>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: gw.port('mb-tcp'), localAddress: '127.0.0.2' });
    s.on('error', () => resolve(true));
    s.on('close', () => resolve(true));
    s.on('connect', () => s.write(encodeMbap(1, 1, Buffer.from([3, 0, 0, 0, 1]))));
    s.on('data', () => resolve(false));
  });
  assert.equal(closed, true);
  await until(() => gw.events().some((e) => e.event === 'auth.failed' && e.listener === 'mb-tcp' && String(e.detail?.remote).startsWith('127.0.0.2')), 'auth.failed for 127.0.0.2');
  await until(() => gw.events().some((e) => e.event === 'auth.failed' && String(e.detail?.remote).startsWith('127.0.0.2') && e.detail?.reason === 'no_binding'), 'auth.failed, no_binding');
});

test('kill through the session registry ends the connection at once', async () => {
  const net = await import('node:net');
  const s = net.connect({ host: '127.0.0.1', port: gw.port('mb-tcp') });
  await new Promise((r) => s.once('connect', r));
  s.write(encodeMbap(1, 1, Buffer.from([3, 0, 0, 0, 1])));
  await new Promise((r) => s.once('data', r));
  const session = gw.core.sessions.list().find((x) => x.listener === 'mb-tcp');
  assert.ok(session);
  assert.ok(session.counters.bytesIn >= 12 && session.counters.bytesOut >= 11);
  const closed = new Promise((r) => s.once('close', r));
  gw.core.sessions.kill(session.id, { reason: 'killed', by: { uid: 0, verified: true } });
  await closed;
  await until(() => gw.events().some((e) => e.event === 'session.killed' && e.session === session.id), 'session.killed');
});
