// The Modbus agent tools (modbus_read, modbus_write) run in-process as the agent front door runs them, through
// the real core and journal, against a pymodbus device holding a Fronius SunSpec map (the shipped
// fronius-symo-intsf profile) at 40000. The device is seeded and checked with a separate pymodbus client
// straight to its port, so every assertion on what landed is the device's own word.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { z } from 'zod';
import { protocolModule } from '../../../src/adapters/registry.ts';
import type { AgentToolResult, FrontDoor } from '../../../src/adapters/types.ts';
import { modbusAgentTools, modbusReadOutput, modbusWriteOutput } from '../../../src/adapters/modbus/agent-tools.ts';
import { modbusRuleSchema } from '../../../src/adapters/modbus/rules.ts';
import { upstreamsFor } from '../../../src/adapters/modbus/pool.ts';
import { startTestCore, openTestSession, testAgentCall, type TestCore } from '../../core-harness.ts';
import { freePort, Plc, runPython, tempDir, until } from './fixtures/harness.ts';

let tmp: ReturnType<typeof tempDir>;
let plc: Plc;
let plcPort: number;
let t: TestCore;
let door: FrontDoor;
let mute: net.Server;
const muteSockets = new Set<net.Socket>();

function config(mutePort: number, deadPort: number): string {
  return `
appliance: { id: gw-agent, site: Test bench, zone: lab, state_dir: ${tmp.dir}/state }
journal: { every_read: false, aggregate_reads_seconds: 3600 }
principals:
  - { id: agent-7, kind: agent, owner: Ops, purpose: PV tuning }
targets:
  - { id: inverter-1, protocol: modbus, zone: pv, host: 127.0.0.1, port: ${plcPort}, timeout_ms: 1000, profile: fronius-symo-intsf, read_back_before_write: true }
  - { id: plc-1, protocol: modbus, zone: pumps, host: 127.0.0.1, port: ${plcPort}, timeout_ms: 1000 }
  - { id: mute-1, protocol: modbus, zone: pumps, host: 127.0.0.1, port: ${mutePort}, timeout_ms: 200 }
  - { id: dead-1, protocol: modbus, zone: pumps, host: 127.0.0.1, port: ${deadPort}, timeout_ms: 200 }
grants:
  - id: g-inverter
    principal: agent-7
    targets: [inverter-1]
    task: { ticket: CHG-77 }
    rules:
      - modbus: { access: read }
      - modbus: { access: write, points: [controls.WMaxLimPct, controls.Conn_WinTms], max: 90 }
      - modbus: { effect: approve, access: write, points: [controls.OutPFSet_WinTms] }
  - id: g-plcs
    principal: agent-7
    targets: [plc-1, mute-1, dead-1]
    task: { ticket: CHG-78 }
    rules:
      - modbus: { access: read }
      - modbus: { access: write, tables: [holding_register, coil], addresses: ["10-19"] }
`;
}

// ------------------------------------------------------------------ the device, seen directly

function pyClient(body: string): Promise<string> {
  return runPython(`
from pymodbus.client import ModbusTcpClient
c = ModbusTcpClient("127.0.0.1", port=${plcPort})
assert c.connect()
${body}
c.close()
`);
}

async function deviceRegisters(address: number, count = 1): Promise<number[]> {
  const out = await pyClient(`r = c.read_holding_registers(${address}, ${count}, slave=1)\nprint(",".join(str(v) for v in r.registers))`);
  return out.trim().split(',').map(Number);
}

async function deviceCoils(address: number, count = 1): Promise<number[]> {
  const out = await pyClient(`r = c.read_coils(${address}, ${count}, slave=1)\nprint(",".join(str(int(v)) for v in r.bits[:${count}]))`);
  return out.trim().split(',').map(Number);
}

function seed(address: number, values: number[]): Promise<string> {
  return pyClient(`c.write_registers(${address}, [${values.join(', ')}], slave=1)`);
}

const i16 = (v: number) => v & 0xffff;

// ------------------------------------------------------------------ calls

let calls = 0;
async function call(name: string, args: Record<string, unknown>, opts: { binding?: string } = {}): Promise<{ r: AgentToolResult; correlation: string }> {
  const correlation = `corr-${++calls}`;
  const session = openTestSession(t.core, 'agent-7', String(args.target));
  try {
    const r = await door.callAgentTool!(name, args, testAgentCall(t.core, session, { correlation, ...opts }));
    return { r, correlation };
  } finally {
    session.close();
  }
}

function ok(r: AgentToolResult): Record<string, unknown> {
  assert.ok(r.ok, JSON.stringify(r));
  return r.result;
}

function errorCode(r: AgentToolResult): string {
  assert.ok(!r.ok && 'error' in r, JSON.stringify(r));
  return r.error.code;
}

const eventsOf = (correlation: string) => t.events().filter((e) => (e.detail as { correlation?: string } | undefined)?.correlation === correlation);

before(async () => {
  tmp = tempDir('penstock-mb-agent-');
  plcPort = await freePort();
  plc = await Plc.start('tcp', plcPort, 40300);
  // A device that accepts the connection and never answers.
  mute = net.createServer((s) => {
    muteSockets.add(s);
    s.on('error', () => {});
    s.once('close', () => muteSockets.delete(s));
  });
  await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
  const deadPort = await freePort();
  t = await startTestCore(tmp.dir, config((mute.address() as net.AddressInfo).port, deadPort));
  door = await protocolModule('modbus')!.load();
  // The SunSpec map: common model marker and manufacturer, inverter currents and energy with their
  // scale factors, the immediate controls' scale factors.
  await seed(40000, [0x5375, 0x6e53, 1, 65, ...Buffer.from('Fronius\0').reduce<number[]>((a, b, i, all) => (i % 2 ? a : [...a, (b << 8) | all[i + 1]!]), [])]);
  await seed(40071, [1234, 411, 412, 413, i16(-2)]); // A, AphA-C, A_SF
  await seed(40093, [0x0001, 0x0002, 1]); // WH (uint32, 65538), WH_SF = 1
  await seed(40229, [60, 0, 1, 8000]); // Conn_WinTms, Conn_RvrtTms, Conn, WMaxLimPct (80.00 %)
  await seed(40238, [30]); // OutPFSet_WinTms
  await seed(40250, [i16(-2), i16(-3), 0x8000]); // WMaxLimPct_SF, OutPFSet_SF, VArPct_SF (not implemented)
});

after(async () => {
  await t?.stop();
  await plc?.stop();
  for (const s of muteSockets) s.destroy();
  await new Promise((resolve) => (mute ? mute.close(resolve) : resolve(undefined)));
  tmp?.cleanup();
});

test('the module offers modbus_read and modbus_write, listed by the rules that grant a read or a write', async () => {
  const m = protocolModule('modbus')!;
  assert.deepEqual(m.agentTools?.map((s) => [s.name, s.readOnly]), [['modbus_read', true], ['modbus_write', false]]);
  assert.equal(typeof door.callAgentTool, 'function');
  const [read, write] = modbusAgentTools;
  const listed = (body: Record<string, unknown>) => {
    const rule = modbusRuleSchema.parse(body);
    return [read!.listedBy(rule), write!.listedBy(rule)];
  };
  assert.deepEqual(listed({ preset: 'readonly' }), [true, false]);
  assert.deepEqual(listed({ preset: 'readwrite' }), [true, true]);
  assert.deepEqual(listed({ preset: 'programming' }), [false, false], 'diagnostics, file records, vendor codes: neither tool sends them');
  assert.deepEqual(listed({ access: 'read', tables: ['coil'] }), [true, false]);
  assert.deepEqual(listed({ access: 'read', tables: ['input_register'], addresses: ['0-9'] }), [true, false]);
  assert.deepEqual(listed({ access: 'write', points: ['controls.*'], max: 90 }), [false, true]);
  assert.deepEqual(listed({ access: 'readwrite', tables: ['holding_register'] }), [true, true]);
  assert.deepEqual(listed({ access: 'write', tables: ['discrete_input'] }), [false, false], 'no write function addresses discrete inputs');
  assert.deepEqual(listed({ effect: 'approve', access: 'write', points: ['controls.Conn'] }), [false, true]);
  assert.deepEqual(listed({ function_codes: [3] }), [true, false]);
  assert.deepEqual(listed({ function_codes: [16] }), [false, true]);
  assert.deepEqual(listed({ function_codes: [22] }), [false, false], 'mask write is not a function the tool sends');
  assert.deepEqual(listed({ function_codes: [8, 43] }), [false, false]);
  // What tools/list shows: each schema converts to JSON Schema, strict (no other arguments).
  for (const spec of modbusAgentTools) {
    const input = z.toJSONSchema(spec.input) as { properties: Record<string, unknown>; additionalProperties: boolean };
    assert.equal(input.additionalProperties, false);
    assert.ok('target' in input.properties);
    z.toJSONSchema(spec.output!);
  }
});

test('modbus_read by point: engineering units scaled by the SunSpec factor the device holds, with the raw registers', async () => {
  const { r, correlation } = await call('modbus_read', { target: 'inverter-1', point: 'inverter.A' });
  const res = ok(r);
  modbusReadOutput.parse(res);
  assert.deepEqual(res.values, [1234]);
  assert.deepEqual(res.point, { name: 'inverter.A', type: 'uint16', access: 'R', units: 'A', description: 'Amps (scaled by inverter.A_SF)', value: 12.34, scale_exponent: -2, scale_factor: 'inverter.A_SF' });
  assert.deepEqual([res.table, res.address, res.count, res.unit], ['holding', 40071, 1, 1]);
  assert.match(String((r as { text?: string }).text), /inverter\.A = 12\.34 A/);
  // The agent's read was one FC 3 of the point's register at the device, decided and journaled with the call's id.
  await plc.logged();
  assert.ok(plc.requests.some((q) => q.fc === 3 && q.address === 40071 && q.count === 1));
  // A correlated read is journaled lazily: wait for its record to be committed.
  await until(() => eventsOf(correlation).some((e) => e.event === 'action.allowed'), 'the read journaled');
  const allowed = eventsOf(correlation).filter((e) => e.event === 'action.allowed');
  assert.deepEqual(allowed.map((e) => (e.action as { modbus: { func_code: number; address: number; quantity: number } }).modbus).map((o) => [o.func_code, o.address, o.quantity]), [[3, 40071, 1]]);

  const wh = ok((await call('modbus_read', { target: 'inverter-1', point: 'inverter.WH' })).r);
  assert.deepEqual(wh.values, [1, 2]);
  assert.equal((wh.point as { value: number }).value, 655380, 'uint32 big-endian 65538 × 10^1');
  const mn = ok((await call('modbus_read', { target: 'inverter-1', point: 'common.Mn' })).r);
  assert.equal((mn.point as { value: string }).value, 'Fronius');
  assert.equal(mn.count, 16);
  // A factor the device does not implement (0x8000): the value is unknown, the raw register is still given.
  const var_ = ok((await call('modbus_read', { target: 'inverter-1', point: 'controls.VArWMaxPct' })).r);
  assert.equal((var_.point as { value: unknown }).value, null);
  assert.equal((var_.point as { scale_exponent: unknown }).scale_exponent, null);
});

test('modbus_read by address returns raw values; the count is bounded as in Modbus and the bound is never sent', async () => {
  const regs = ok((await call('modbus_read', { target: 'plc-1', table: 'holding', address: 0, count: 5 })).r);
  modbusReadOutput.parse(regs);
  assert.deepEqual(regs.values, [100, 101, 102, 103, 104]);
  const inputs = ok((await call('modbus_read', { target: 'plc-1', table: 'input', address: 7 })).r);
  assert.deepEqual(inputs.values, [1007]);
  const bits = ok((await call('modbus_read', { target: 'plc-1', table: 'coil', address: 0, count: 2000 })).r);
  assert.equal((bits.values as number[]).length, 2000);
  await plc.logged();
  const before = plc.requests.length;
  assert.equal(errorCode((await call('modbus_read', { target: 'plc-1', table: 'holding', address: 0, count: 126 })).r), 'count_too_large');
  assert.equal(errorCode((await call('modbus_read', { target: 'plc-1', table: 'input', address: 65530, count: 10 })).r), 'address_out_of_range');
  await plc.logged();
  assert.equal(plc.requests.length, before, 'nothing reached the device');
  // The input schema itself stops a count beyond the bits' bound.
  assert.equal(modbusAgentTools[0]!.input.safeParse({ target: 'plc-1', table: 'coil', address: 0, count: 2001 }).success, false);
});

test('arguments that name nothing get stable error codes and reach neither policy nor the device', async () => {
  await plc.logged();
  const before = plc.requests.length;
  // An allowed read by a tool call is journaled lazily, not awaited: earlier tests' can still land.
  await t.core.recorded();
  const eventsBefore = t.events().length;
  const cases: [string, Record<string, unknown>, string][] = [
    ['modbus_read', { target: 'inverter-1', point: 'inverter.Nope' }, 'unknown_point'],
    ['modbus_write', { target: 'inverter-1', point: 'controls.Nope', value: 1 }, 'unknown_point'],
    ['modbus_read', { target: 'plc-1', point: 'inverter.A' }, 'no_profile'],
    ['modbus_read', { target: 'nowhere', table: 'holding', address: 0 }, 'unknown_target'],
    ['modbus_read', { target: 'inverter-1', point: 'inverter.A', address: 3 }, 'invalid_arguments'],
    ['modbus_read', { target: 'plc-1', address: 3 }, 'invalid_arguments'],
    ['modbus_write', { target: 'inverter-1', point: 'inverter.A', value: 3 }, 'point_read_only'],
    ['modbus_write', { target: 'plc-1', table: 'holding', address: 10 }, 'invalid_arguments'],
    ['modbus_write', { target: 'plc-1', table: 'holding', address: 10, values: [true] }, 'invalid_arguments'],
    ['modbus_write', { target: 'plc-1', table: 'coil', address: 10, values: [2] }, 'invalid_arguments'],
    ['modbus_write', { target: 'plc-1', table: 'holding', address: 10, values: Array(124).fill(1) }, 'count_too_large'],
    ['modbus_frobnicate', { target: 'plc-1' }, 'unknown_tool'],
  ];
  for (const [name, args, code] of cases) assert.equal(errorCode((await call(name, args)).r), code, `${name} ${JSON.stringify(args)}`);
  await plc.logged();
  assert.equal(plc.requests.length, before, 'nothing reached the device');
  await t.core.recorded();
  assert.deepEqual(t.events().slice(eventsBefore).filter((e) => e.event.startsWith('action.')).map((e) => [e.event, e.detail]), [], 'nothing was decided');
});

test('modbus_write by point converts engineering units with the device\'s factor; the write arrives and is journaled with the old value', async () => {
  const { r, correlation } = await call('modbus_write', { target: 'inverter-1', point: 'controls.WMaxLimPct', value: 45.5 });
  const res = ok(r);
  modbusWriteOutput.parse(res);
  assert.deepEqual(await deviceRegisters(40232), [4550], 'the device holds 45.5 % at SF -2');
  assert.deepEqual([res.function_code, res.address, res.count, res.written, res.old_values], [6, 40232, 1, [4550], [8000]]);
  assert.deepEqual(res.point, { name: 'controls.WMaxLimPct', type: 'uint16', units: '% WMax', value: 45.5, scale_exponent: -2, scale_factor: 'controls.WMaxLimPct_SF' });
  const events = eventsOf(correlation);
  const allowed = events.find((e) => e.event === 'action.allowed')!;
  const outcome = events.find((e) => e.event === 'action.outcome')!;
  assert.ok(allowed && outcome && allowed.seq < outcome.seq, 'journaled before it was sent, then its outcome');
  // The same Action the front door builds for an FC 6 to 40232, factor included (as the journal renders it).
  assert.deepEqual(allowed.action, { target: 'inverter-1', verb: 'write', modbus: { unit: 1, func: 'WRITE_SINGLE_REGISTER', func_code: 6, table: 'holding_register', address: 40232, quantity: 1, values: [4550], scale_factors: { 'controls.WMaxLimPct_SF': -2 } } });
  assert.deepEqual([outcome.outcome?.ok, outcome.outcome?.new_values, outcome.outcome?.old_values], [true, [4550], [8000]]);

  // A point with no factor, and the link closes when no one holds the pool.
  ok((await call('modbus_write', { target: 'inverter-1', point: 'controls.Conn_WinTms', value: 90 })).r);
  assert.deepEqual(await deviceRegisters(40229), [90]);
  assert.equal(upstreamsFor(t.core).links().size, 0, 'the call released the shared pool, and with no listener the links are closed');
});

test('modbus_write by address: registers (FC 6/16) and coils (FC 5/15) arrive at the device', async () => {
  const regs = ok((await call('modbus_write', { target: 'plc-1', table: 'holding', address: 12, values: [250, 251] })).r);
  assert.equal(regs.function_code, 16);
  assert.deepEqual(await deviceRegisters(12, 2), [250, 251]);
  const one = ok((await call('modbus_write', { target: 'plc-1', table: 'holding', address: 14, values: [7] })).r);
  assert.equal(one.function_code, 6);
  assert.deepEqual(await deviceRegisters(14), [7]);
  const coils = ok((await call('modbus_write', { target: 'plc-1', table: 'coil', address: 10, values: [true, false, 1] })).r);
  assert.deepEqual([coils.function_code, coils.written], [15, [1, 0, 1]]);
  assert.deepEqual(await deviceCoils(10, 3), [1, 0, 1]);
  assert.equal(ok((await call('modbus_write', { target: 'plc-1', table: 'coil', address: 19, values: [true] })).r).function_code, 5);
  assert.deepEqual(await deviceCoils(19), [1]);
});

test('a denied write is refused with the verdict and never reaches the device', async () => {
  await plc.logged();
  const writes = plc.writes().length;
  // Inside the point's own range (0-100), above the rule's bound (90) in engineering units.
  const bounded = await call('modbus_write', { target: 'inverter-1', point: 'controls.WMaxLimPct', value: 95 });
  assert.ok(!bounded.r.ok && 'refused' in bounded.r, JSON.stringify(bounded.r));
  assert.deepEqual([bounded.r.refused.effect, bounded.r.refused.reason], ['deny', 'value_out_of_bounds']);
  const outside = await call('modbus_write', { target: 'plc-1', table: 'holding', address: 30, values: [5] });
  assert.ok(!outside.r.ok && 'refused' in outside.r);
  assert.equal(outside.r.refused.reason, 'object_not_granted');
  await plc.logged();
  assert.equal(plc.writes().length, writes, 'no write reached the device');
  assert.deepEqual(await deviceRegisters(40232), [4550]);
  assert.deepEqual(await deviceRegisters(30), [130]);
  for (const c of [bounded.correlation, outside.correlation]) {
    assert.deepEqual(eventsOf(c).map((e) => e.event), ['action.denied'], 'one denial with the call\'s id, no outcome');
  }
});

test('an approve rule answers with a pending approval at once and the device is untouched', async () => {
  const { r, correlation } = await call('modbus_write', { target: 'inverter-1', point: 'controls.OutPFSet_WinTms', value: 120 }, { binding: 'b'.repeat(64) });
  assert.ok(!r.ok && 'refused' in r, JSON.stringify(r));
  assert.equal(r.refused.effect, 'approve');
  assert.ok(r.refused.effect === 'approve' && r.refused.approval?.id, 'the pending approval is named');
  assert.deepEqual(await deviceRegisters(40238), [30]);
  await plc.logged();
  assert.ok(!plc.writes().some((q) => q.address === 40238 && q.value === 120));
  assert.ok(eventsOf(correlation).length > 0 && !eventsOf(correlation).some((e) => e.event === 'action.outcome' || e.event === 'action.allowed'));
});

test('a value the point cannot take is refused with a code before any decision, and never sent', async () => {
  await plc.logged();
  const writes = plc.writes().length;
  await t.core.recorded(); // earlier tests' lazily journaled reads
  const eventsBefore = t.events().length;
  const cases: [Record<string, unknown>, string][] = [
    [{ point: 'controls.WMaxLimPct', value: 150 }, 'value_out_of_range'], // profile max 100
    [{ point: 'controls.WMaxLimPct', value: -1 }, 'value_out_of_range'],
    [{ point: 'controls.WMaxLimPct', value: 45.123 }, 'value_too_precise'], // SF -2: hundredths
    [{ point: 'controls.Conn_WinTms', value: 12.5 }, 'value_too_precise'],
    [{ point: 'controls.Conn_WinTms', value: true }, 'invalid_arguments'],
    [{ point: 'controls.VArWMaxPct', value: 10 }, 'scale_factor_unavailable'], // VArPct_SF = 0x8000
  ];
  for (const [args, code] of cases) assert.equal(errorCode((await call('modbus_write', { target: 'inverter-1', ...args })).r), code, JSON.stringify(args));
  await plc.logged();
  assert.equal(plc.writes().length, writes, 'nothing written');
  await t.core.recorded();
  assert.deepEqual(t.events().slice(eventsBefore).filter((e) => e.event.startsWith('action.')).map((e) => [e.event, e.detail]), [], 'nothing decided');
});

test('the device\'s exception, a silent device and an unreachable one are errors with stable codes', async () => {
  // The device has 40300 holding registers: 50000 is an illegal data address (exception 2).
  const exc = await call('modbus_read', { target: 'plc-1', table: 'holding', address: 50000, count: 2 });
  assert.ok(!exc.r.ok && 'error' in exc.r);
  assert.equal(exc.r.error.code, 'device_exception');
  assert.equal(exc.r.error.detail?.exception, 2);
  const silent = await call('modbus_read', { target: 'mute-1', table: 'holding', address: 0 });
  assert.equal(errorCode(silent.r), 'device_timeout');
  assert.equal(errorCode((await call('modbus_read', { target: 'dead-1', table: 'holding', address: 0 })).r), 'device_unavailable');
  // A write the device refuses is journaled as allowed and its outcome says so.
  const w = await call('modbus_write', { target: 'mute-1', table: 'holding', address: 10, values: [1] });
  assert.equal(errorCode(w.r), 'device_timeout');
  const outcome = eventsOf(w.correlation).find((e) => e.event === 'action.outcome');
  assert.equal(outcome?.outcome?.ok, false);
});

test('a call uses the link the front doors share, and leaves it open while a listener holds the pool', async () => {
  const pool = upstreamsFor(t.core);
  const release = pool.acquire(); // as a listener does while it runs
  try {
    ok((await call('modbus_read', { target: 'plc-1', table: 'holding', address: 1 })).r);
    const link = pool.links().get('plc-1');
    assert.equal(link?.state, 'up');
    ok((await call('modbus_write', { target: 'plc-1', table: 'holding', address: 15, values: [15] })).r);
    assert.equal(pool.links().get('plc-1'), link, 'the same link, still up');
    assert.equal(link?.state, 'up');
  } finally {
    release();
  }
  assert.equal(pool.links().size, 0, 'closed once the last user let go');
});

test('a call cancelled while the device has not answered ends at once; the write\'s outcome is still journaled', async () => {
  const correlation = 'corr-cancel';
  const session = openTestSession(t.core, 'agent-7', 'mute-1');
  const abort = new AbortController();
  const agentCall = { ...testAgentCall(t.core, session, { correlation }), signal: abort.signal };
  const pending = door.callAgentTool!('modbus_write', { target: 'mute-1', table: 'holding', address: 11, values: [3] }, agentCall);
  await until(() => eventsOf(correlation).some((e) => e.event === 'action.allowed'), 'the write decided');
  abort.abort();
  assert.equal(errorCode(await pending), 'cancelled');
  const outcome = await until(() => eventsOf(correlation).find((e) => e.event === 'action.outcome'), 'the outcome');
  assert.equal(outcome.outcome?.ok, false);
  session.close();
});

test('once a person approves, the same call runs once and its write arrives; the next one asks again', async () => {
  const session = openTestSession(t.core, 'agent-7', 'inverter-1');
  const binding = 'c'.repeat(64);
  const args = { target: 'inverter-1', point: 'controls.OutPFSet_WinTms', value: 240 };
  const run = () => door.callAgentTool!('modbus_write', args, testAgentCall(t.core, session, { binding }));
  try {
    const first = await run();
    assert.ok(!first.ok && 'refused' in first && first.refused.effect === 'approve' && first.refused.approval);
    assert.deepEqual(await deviceRegisters(40238), [30]);
    t.core.approvals.approve(first.refused.approval.id, { uid: 1000, user: 'operator', verified: true });
    await plc.logged();
    const writes = plc.writes().length;
    const second = await run();
    assert.deepEqual(ok(second).written, [240]);
    assert.deepEqual(await deviceRegisters(40238), [240]);
    const third = await run();
    assert.ok(!third.ok && 'refused' in third && third.refused.effect === 'approve', 'one approval, one run');
    await plc.logged();
    assert.equal(plc.writes().length, writes + 1);
  } finally {
    session.close();
  }
});
