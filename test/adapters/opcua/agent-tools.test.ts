// The OPC UA agent tools (opcua_browse, opcua_read, opcua_write, opcua_call), in process: the real core
// (LMDB journal, grants, approvals) with an OPC UA listener in front of the node-opcua plant; each call
// as the MCP door makes it (testAgentCall: correlation id, approval binding). What reached the plant is
// asserted there (its counters, its state) and through a second node-opcua client straight to it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { AttributeIds, DataType, MessageSecurityMode, NodeId, OPCUAClient, SecurityPolicy, Variant, VariantArrayType, type ClientSession } from 'node-opcua';
import { fromVariant, toVariant } from '../../../src/adapters/opcua/agent-values.ts';
import { protocolModule } from '../../../src/adapters/registry.ts';
import type { AgentToolResult, AgentToolSpec, FrontDoor } from '../../../src/adapters/types.ts';
import type { OpcuaRuleConfig } from '../../../src/adapters/opcua/rules.ts';
import { opcuaListenerInternals } from '../../../src/adapters/opcua/adapter.ts';
import type { Session } from '../../../src/sessions/registry.ts';
import type { StoredEvent } from '../../../src/journal/event.ts';
import { startTestCore, testAgentCall, type TestCore } from '../../core-harness.ts';
import { agentLinkTargets, closeAgentLinks } from '../../../src/adapters/opcua/links.ts';
import { freePort, startGateway, tempDir, until, type Gateway } from './fixtures/harness.ts';
import { startPlant, type Plant } from './fixtures/plant.ts';

const NS = 'ns=1;s=boiler-1';
const LEVEL = `${NS}/Boiler/Drum/Level`;
const SETPOINT = `${NS}/Boiler/Setpoint`;
const FUEL = `${NS}/Boiler/Burner/FuelValve`;
const KNOB = `${NS}/Bench/Knob`;
const START_PUMP = `${NS}/Boiler/StartPump`;
const RESET_TRIP = `${NS}/Boiler/ResetTrip`;

const module = protocolModule('opcua')!;
const tools = new Map((module.agentTools ?? []).map((t) => [t.name, t as AgentToolSpec<OpcuaRuleConfig>]));

let tmp: { dir: string; cleanup: () => void };
let plant: Plant;
let gw: Gateway;
let door: FrontDoor;
let session: Session;
let direct: { session: ClientSession; close: () => Promise<void> };

/** The plant's own view of one of its variables, through a client of its own (not the gateway). */
async function plantValue(plantNodeId: string): Promise<unknown> {
  const dv = await direct.session.read({ nodeId: plantNodeId, attributeId: AttributeIds.Value });
  return dv.value.value;
}

async function run(name: string, args: Record<string, unknown>, opts: { correlation?: string; binding?: string } = {}): Promise<AgentToolResult> {
  // As the MCP door does: the arguments validated against the tool's schema first.
  const parsed = tools.get(name)!.input.parse(args) as Record<string, unknown>;
  return door.callAgentTool!(name, parsed, testAgentCall(gw.core, session, opts));
}

/** The agent principal and the plant as a target, in both configs (the targets list comes last: more may follow). */
function agentAndBoiler(): string {
  return `principals:
  - id: agent-ai
    kind: agent
    owner: Boilerworks GmbH
    purpose: boiler tuning agent
targets:
  - id: boiler-1
    protocol: opcua
    zone: plant
    endpoint: ${plant.endpoint}
    server_certificate: ${plant.certFile}
`;
}

/** The agent's session as the MCP door opens it (no wire of its own). */
function agentSession(core: TestCore['core']): Session {
  return core.sessions.open({ principal: core.config().principals.get('agent-ai')!, chain: ['agent-ai'], listener: 'mcp-test', protocol: 'mcp', remote: '127.0.0.1:1', attributes: {} }, () => {});
}

function events(correlation: string): StoredEvent[] {
  return gw.events().filter((e) => (e.detail as { correlation?: string } | undefined)?.correlation === correlation);
}

before(async () => {
  tmp = tempDir('penstock-opcua-agent-');
  const [plantPort, gwPort] = [await freePort(), await freePort()];
  plant = await startPlant(plantPort, join(tmp.dir, 'plant'));
  gw = await startGateway(tmp.dir, `
appliance: { id: gw-test, site: test-site, zone: plant, state_dir: ${tmp.dir}/state, runtime_dir: ${tmp.dir}/run }
journal: { path: ${tmp.dir}/journal }
sessions: { actions_per_second: 100000 }
listeners:
  - id: opcua-main
    protocol: opcua
    host: 127.0.0.1
    port: ${gwPort}
    targets: [boiler-1]
${agentAndBoiler()}  - id: plc-1
    protocol: modbus
    zone: plant
    host: 127.0.0.1
grants:
  - id: g-agent
    principal: agent-ai
    targets: [boiler-1]
    task: { ticket: WO-2001 }
    rules:
      - opcua: { verbs: [browse, read], browse_paths: [Objects/Boiler/Drum] }
      - opcua: { verbs: [browse, read, write], nodes: ["${SETPOINT}"], min: 0, max: 100 }
      - opcua: { verbs: [browse, write], nodes: ["${KNOB}"] }
      - opcua: { effect: approve, verbs: [write], nodes: ["${FUEL}"] }
      - opcua: { verbs: [browse, call], browse_paths: [Objects/Boiler/ResetTrip] }
`);
  const internals = opcuaListenerInternals(gw.listeners.get('opcua-main')!)!;
  await until(() => internals.gateway.locate(RESET_TRIP) !== undefined && internals.gateway.locate(KNOB) !== undefined, 'the boiler mirrored', 20_000);
  door = await module.load();
  session = agentSession(gw.core);
  const client = OPCUAClient.create({ endpointMustExist: false, securityMode: MessageSecurityMode.None, securityPolicy: SecurityPolicy.None, connectionStrategy: { maxRetry: 0 }, requestedSessionTimeout: 600_000 });
  await client.connect(plant.endpoint);
  const s = await client.createSession();
  direct = { session: s, close: async () => { await s.close().catch(() => {}); await client.disconnect().catch(() => {}); } };
});

after(async () => {
  await direct?.close();
  if (gw) await closeAgentLinks(gw.core);
  await gw?.stop();
  await plant?.stop();
  tmp?.cleanup();
});

describe('OPC UA agent tools: descriptors', () => {
  it('each tool is listed by the rules whose verbs let it do something', () => {
    const listed = (rule: Partial<OpcuaRuleConfig>) => [...tools.values()].filter((t) => t.listedBy({ nodes: ['x'], ...rule } as OpcuaRuleConfig)).map((t) => t.name).sort();
    assert.deepEqual(listed({ verbs: ['read'] }), ['opcua_read']);
    assert.deepEqual(listed({ verbs: ['browse', 'read', 'subscribe'] }), ['opcua_browse', 'opcua_read']);
    assert.deepEqual(listed({ verbs: ['browse'] }), ['opcua_browse']);
    assert.deepEqual(listed({ verbs: ['write'] }), ['opcua_write']);
    assert.deepEqual(listed({ verbs: ['call'] }), ['opcua_call']);
    assert.deepEqual(listed({ verbs: ['subscribe', 'history'] }), []);
    assert.deepEqual(listed({ effect: 'approve', verbs: ['browse', 'write'] }), ['opcua_browse', 'opcua_write']);
  });

  it('arguments are strict and bounded', () => {
    assert.ok(tools.get('opcua_read')!.input.safeParse({ target: 'boiler-1', nodes: [LEVEL] }).success);
    assert.equal(tools.get('opcua_read')!.input.safeParse({ target: 'boiler-1', nodes: Array(51).fill(LEVEL) }).success, false);
    assert.equal(tools.get('opcua_read')!.input.safeParse({ target: 'boiler-1', nodes: [] }).success, false);
    assert.equal(tools.get('opcua_write')!.input.safeParse({ target: 'boiler-1', node: SETPOINT, value: 1, extra: true }).success, false);
    assert.equal(tools.get('opcua_browse')!.input.safeParse({ target: 'boiler-1', max_references: 501 }).success, false);
    assert.equal(tools.get('opcua_call')!.input.safeParse({ target: 'boiler-1', method: RESET_TRIP, arguments: Array(33).fill(1) }).success, false);
    for (const t of tools.values()) assert.equal(t.readOnly, t.name === 'opcua_browse' || t.name === 'opcua_read', t.name);
  });
});

describe('OPC UA agent tools: values', () => {
  it('values read come back as bounded JSON: arrays and texts cut, 64-bit integers exact, node ids by namespace URI', () => {
    const long = fromVariant(new Variant({ dataType: DataType.Double, arrayType: VariantArrayType.Array, value: new Float64Array(150).fill(1.5) }));
    assert.equal((long.value as number[]).length, 100);
    assert.equal(long.truncated, true);
    const text = fromVariant(new Variant({ dataType: DataType.String, value: 'x'.repeat(5000) }));
    assert.equal((text.value as string).length, 1025);
    assert.equal(text.truncated, true);
    assert.deepEqual(fromVariant(new Variant({ dataType: DataType.Int64, arrayType: VariantArrayType.Scalar, value: [0x7fffffff, 0xffffffff] })), { value: '9223372036854775807', data_type: 'Int64' });
    assert.deepEqual(fromVariant(new Variant({ dataType: DataType.NodeId, value: new NodeId(NodeId.NodeIdType.NUMERIC, 3001, 3) }), (i) => (i === 3 ? 'urn:plant-b' : undefined)), { value: 'nsu=urn:plant-b;i=3001', data_type: 'NodeId' });
    assert.deepEqual(fromVariant(new Variant({ dataType: DataType.DateTime, value: new Date('2026-12-05T10:00:00Z') })), { value: '2026-12-05T10:00:00.000Z', data_type: 'DateTime' });
  });

  it('values written are checked against their type before anything is decided', () => {
    assert.deepEqual(toVariant('-9223372036854775808', 'Int64').value, [-0x80000000, 0]);
    assert.deepEqual(toVariant('18446744073709551615', 'UInt64').value, [0xffffffff, 0xffffffff]);
    assert.equal(toVariant([1, 2], 'Int16').arrayType, VariantArrayType.Array);
    for (const [v, t] of [[70000, 'Int16'], [1.5, 'Int32'], [-1, 'UInt32'], ['1', 'Double'], [1, 'Boolean'], ['18446744073709551616', 'UInt64'], ['yesterday', 'DateTime'], [1e39, 'Float']] as const) {
      assert.throws(() => toVariant(v, t), { name: 'AgentValueError' }, `${v} as ${t}`);
    }
  });
});

describe('OPC UA agent tools: calls', () => {
  it('opcua_browse shows only what the grants make visible, bounded', async () => {
    const top = await run('opcua_browse', { target: 'boiler-1' });
    assert.ok(top.ok);
    assert.deepEqual((top.result.references as { name: string }[]).map((r) => r.name).sort(), ['Bench', 'Boiler']);
    const boiler = await run('opcua_browse', { target: 'boiler-1', node: 'Objects/Boiler' });
    assert.ok(boiler.ok);
    const refs = boiler.result.references as { node: string; name: string; node_class: string; writable?: boolean; data_type?: string }[];
    assert.deepEqual(refs.map((r) => r.name).sort(), ['Drum', 'ResetTrip', 'Setpoint']); // no Burner, no StartPump
    assert.deepEqual(refs.find((r) => r.name === 'Setpoint'), { node: SETPOINT, browse_path: 'Objects/Boiler/Setpoint', name: 'Setpoint', node_class: 'Variable', writable: true, data_type: 'Double' });
    assert.equal(refs.find((r) => r.name === 'ResetTrip')!.node_class, 'Method');
    const one = await run('opcua_browse', { target: 'boiler-1', node: `${NS}/Boiler`, max_references: 1 });
    assert.ok(one.ok);
    assert.equal((one.result.references as unknown[]).length, 1);
    assert.equal(one.result.truncated, true);
    // A node browse does not show: refused by policy (the denial journaled with the call's id).
    const hidden = await run('opcua_browse', { target: 'boiler-1', node: `${NS}/Boiler/Burner` }, { correlation: 'browse-burner' });
    assert.ok(!hidden.ok && 'refused' in hidden);
    assert.equal(hidden.refused.effect, 'deny');
    assert.equal(hidden.refused.reason, 'object_not_granted');
    await gw.core.recorded();
    assert.deepEqual(events('browse-burner').map((e) => [e.event, (e.action as { verb: string }).verb]), [['action.denied', 'browse']]);
  });

  it('opcua_read returns the plant\'s values, per node, and never reads what it may not', async () => {
    plant.setLevel(61.25);
    const fuelReads = plant.hits.fuelValveReads;
    // The listener's link carries the agent's reads: one upstream session for vendors and agents.
    const shared = opcuaListenerInternals(gw.listeners.get('opcua-main')!)!.gateway.upstreams.get('boiler-1')!;
    const upstreamReads = shared.stats.reads;
    const r = await run('opcua_read', { target: 'boiler-1', nodes: [LEVEL, 'Objects/Boiler/Setpoint', FUEL] }, { correlation: 'read-1' });
    assert.ok(r.ok, JSON.stringify(r));
    const results = r.result.results as { node: string; status: string; value?: unknown; data_type?: string; refused?: { reason: string } }[];
    assert.deepEqual(results.map((x) => [x.node, x.status]), [[LEVEL, 'Good'], [SETPOINT, 'Good'], [FUEL, 'BadUserAccessDenied']]);
    assert.equal(results[0]!.value, 61.25);
    assert.equal(results[0]!.data_type, 'Double');
    assert.equal(results[1]!.value, await plantValue('ns=1;s=Boiler.Setpoint'));
    assert.equal(results[2]!.refused?.reason, 'object_not_granted');
    assert.equal(results[2]!.value, undefined);
    assert.equal(plant.hits.fuelValveReads, fuelReads, 'the refused node was not read on the plant');
    assert.equal(shared.stats.reads, upstreamReads + 1, 'the allowed nodes went in one read on the listener\'s link');
    // Each node decided and journaled with the call's correlation id.
    await gw.core.recorded();
    assert.deepEqual(events('read-1').map((e) => [e.event, (e.action as { opcua: { node_id: string } }).opcua.node_id]), [['action.allowed', LEVEL], ['action.allowed', SETPOINT], ['action.denied', FUEL]]);
    // Nothing readable: the whole call is refused.
    const none = await run('opcua_read', { target: 'boiler-1', nodes: [FUEL] });
    assert.ok(!none.ok && 'refused' in none);
    assert.equal(none.refused.reason, 'object_not_granted');
    assert.equal(plant.hits.fuelValveReads, fuelReads);
    // The gateway's namespace by URI names the same node.
    const uri = opcuaListenerInternals(gw.listeners.get('opcua-main')!)!.server.engine.addressSpace!.getNamespaceUri(1);
    const byUri = await run('opcua_read', { target: 'boiler-1', nodes: [`nsu=${uri};s=boiler-1/Boiler/Drum/Level`] });
    assert.ok(byUri.ok);
    assert.deepEqual((byUri.result.results as { node: string; value: unknown }[]).map((x) => [x.node, x.value]), [[LEVEL, 61.25]]);
    // Metadata from the mirror, to whoever may see the node.
    const name = await run('opcua_read', { target: 'boiler-1', nodes: [LEVEL], attribute: 'DisplayName' });
    assert.ok(name.ok);
    assert.deepEqual((name.result.results as { value: unknown }[])[0]!.value, 'Level');
  });

  it('names that name nothing are errors with stable codes', async () => {
    const codes = async (name: string, args: Record<string, unknown>) => {
      const r = await run(name, args);
      return !r.ok && 'error' in r ? r.error.code : 'not an error';
    };
    assert.equal(await codes('opcua_read', { target: 'boiler-1', nodes: [LEVEL, `${NS}/Boiler/NoSuchNode`] }), 'unknown_node');
    assert.equal(await codes('opcua_read', { target: 'boiler-1', nodes: ['Objects/Nowhere'] }), 'unknown_node');
    assert.equal(await codes('opcua_read', { target: 'boiler-1', nodes: ['nsu=urn:nobody;s=boiler-1/Boiler/Setpoint'] }), 'unknown_node');
    assert.equal(await codes('opcua_write', { target: 'boiler-1', node: 'ns=1;s=boiler-2/Boiler/Setpoint', value: 1 }), 'unknown_node');
    assert.equal(await codes('opcua_read', { target: 'boiler-9', nodes: [LEVEL] }), 'unknown_target');
    assert.equal(await codes('opcua_read', { target: 'plc-1', nodes: [LEVEL] }), 'not_opcua_target');
    assert.equal(await codes('opcua_write', { target: 'boiler-1', node: `${NS}/Boiler`, value: 1 }), 'not_a_variable');
    assert.equal(await codes('opcua_write', { target: 'boiler-1', node: SETPOINT, value: 'fifty' }), 'invalid_value');
    assert.equal(await codes('opcua_call', { target: 'boiler-1', method: SETPOINT }), 'not_a_method');
    assert.equal(await codes('opcua_call', { target: 'boiler-1', method: RESET_TRIP }), 'invalid_arguments');
    assert.equal(await codes('opcua_call', { target: 'boiler-1', method: RESET_TRIP, arguments: [5] }), 'invalid_arguments');
    assert.equal(plant.hits.resetTrip, 0);
  });

  it('an allowed opcua_write arrives at the plant, with the value before in its record and its outcome journaled', async () => {
    const before = plant.hits.setpointWrites;
    const old = await plantValue('ns=1;s=Boiler.Setpoint');
    const r = await run('opcua_write', { target: 'boiler-1', node: SETPOINT, value: 55.5 }, { correlation: 'write-1' });
    assert.deepEqual(r, { ok: true, result: { target: 'boiler-1', node: SETPOINT, status: 'Good', data_type: 'Double' }, text: 'wrote Objects/Boiler/Setpoint' });
    assert.equal(plant.hits.setpointWrites, before + 1);
    assert.equal(await plantValue('ns=1;s=Boiler.Setpoint'), 55.5);
    await gw.core.recorded();
    const [allowed, outcome] = events('write-1');
    assert.equal(allowed?.event, 'action.allowed');
    assert.deepEqual(allowed?.action, { target: 'boiler-1', verb: 'write', opcua: { node_id: SETPOINT, browse_path: 'Objects/Boiler/Setpoint', attribute: 'Value', value: 55.5 } });
    assert.deepEqual((allowed?.detail as Record<string, unknown>).new_values, [55.5]);
    assert.deepEqual((allowed?.detail as Record<string, unknown>).old_values, [old]);
    assert.equal(outcome?.event, 'action.outcome');
    assert.equal((outcome?.outcome as { status: string }).status, 'Good');
  });

  it('a denied opcua_write never reaches the plant: out of bounds, or no rule', async () => {
    const writes = plant.hits.setpointWrites;
    const setpoint = plant.setpoint();
    const r = await run('opcua_write', { target: 'boiler-1', node: SETPOINT, value: 150 }, { correlation: 'write-oob' });
    assert.ok(!r.ok && 'refused' in r);
    assert.equal(r.refused.reason, 'value_out_of_bounds');
    const level = await plantValue('ns=1;s=Boiler.Drum.Level');
    const l = await run('opcua_write', { target: 'boiler-1', node: LEVEL, value: 1 });
    assert.ok(!l.ok && 'refused' in l);
    assert.equal(l.refused.effect, 'deny');
    assert.equal(plant.hits.setpointWrites, writes);
    assert.equal(plant.setpoint(), setpoint);
    assert.equal(await plantValue('ns=1;s=Boiler.Drum.Level'), level);
    await gw.core.recorded();
    assert.deepEqual(events('write-oob').map((e) => e.event), ['action.denied']);
  });

  it('an approve rule answers at once with a pending approval, the plant untouched; once approved the same call runs', async () => {
    const { fuelValveWrites, fuelValveReads } = plant.hits;
    const args = { target: 'boiler-1', node: FUEL, value: 20 };
    const r = await run('opcua_write', args, { correlation: 'fuel-1', binding: 'sha256-of-fuel-args' });
    assert.ok(!r.ok && 'refused' in r);
    assert.equal(r.refused.effect, 'approve');
    const approval = (r.refused as { approval?: { id: string } }).approval;
    assert.ok(approval?.id);
    assert.equal(plant.hits.fuelValveWrites, fuelValveWrites);
    assert.equal(plant.hits.fuelValveReads, fuelValveReads, 'not even the value before was read');
    // (Not core.recorded(): it would wait for the person's answer, which the approval's own event records.)
    assert.ok(events('fuel-1').some((e) => e.event === 'approval.requested'));
    gw.core.approvals.approve(approval.id, { uid: 0, user: 'root', verified: true });
    const again = await run('opcua_write', args, { correlation: 'fuel-2', binding: 'sha256-of-fuel-args' });
    assert.ok(again.ok, JSON.stringify(again));
    assert.equal(plant.hits.fuelValveWrites, fuelValveWrites + 1);
    assert.equal(await plantValue('ns=1;s=Boiler.Burner.FuelValve'), 20);
  });

  it('a Bad status from the plant is a device_status error, journaled as the outcome', async () => {
    // The rule on the knob is unbounded: a text is allowed, and the plant refuses it for a Double.
    const before = await plantValue('ns=1;s=Bench.Knob');
    const r = await run('opcua_write', { target: 'boiler-1', node: KNOB, value: 'not a number', data_type: 'String' }, { correlation: 'knob-1' });
    assert.ok(!r.ok && 'error' in r);
    assert.equal(r.error.code, 'device_status');
    assert.equal(r.error.detail?.status, 'BadTypeMismatch');
    assert.equal(await plantValue('ns=1;s=Bench.Knob'), before);
    await gw.core.recorded();
    assert.deepEqual(events('knob-1').map((e) => [e.event, (e.outcome as { status?: string } | undefined)?.status]), [['action.allowed', undefined], ['action.outcome', 'BadTypeMismatch']]);
  });

  it('opcua_call runs an allowed method with typed arguments and returns its outputs; a denied one never reaches the plant', async () => {
    const { resetTrip, startPump } = plant.hits;
    const r = await run('opcua_call', { target: 'boiler-1', method: 'Objects/Boiler/ResetTrip', arguments: ['after inspection'] }, { correlation: 'call-1' });
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(r.result.outputs, [{ value: true, data_type: 'Boolean' }]);
    assert.equal(r.result.object, `${NS}/Boiler`);
    assert.equal(plant.hits.resetTrip, resetTrip + 1);
    await gw.core.recorded();
    const [allowed, outcome] = events('call-1');
    assert.deepEqual(allowed?.action, { target: 'boiler-1', verb: 'call', opcua: { node_id: RESET_TRIP, browse_path: 'Objects/Boiler/ResetTrip', object_id: `${NS}/Boiler` } });
    assert.deepEqual((allowed?.detail as Record<string, unknown>).arguments, ['after inspection']);
    assert.deepEqual(outcome?.outcome, { status: 'Good', outputs: [true] });

    const denied = await run('opcua_call', { target: 'boiler-1', method: START_PUMP, object: `${NS}/Boiler` }, { correlation: 'call-2' });
    assert.ok(!denied.ok && 'refused' in denied);
    assert.equal(denied.refused.effect, 'deny');
    assert.equal(plant.hits.startPump, startPump);
    await gw.core.recorded();
    assert.deepEqual(events('call-2').map((e) => e.event), ['action.denied']);
  });
});

describe('OPC UA agent tools when the listener closes', () => {
  it('the listener withdraws its link: the next call opens one of the agent tools\' own', async () => {
    const listener = gw.listeners.get('opcua-main')!;
    const shared = opcuaListenerInternals(listener)!.gateway.upstreams.get('boiler-1')!;
    await listener.close();
    assert.equal(shared.state, 'closed');
    const r = await run('opcua_read', { target: 'boiler-1', nodes: [LEVEL] });
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual((r.result.results as { status: string; value: unknown }[]).map((x) => [x.status, x.value]), [['Good', plant.level()]]);
    assert.deepEqual(agentLinkTargets(gw.core), ['boiler-1']);
    assert.equal(await closeAgentLinks(gw.core), 1);
  });
});

describe('OPC UA agent tools on a target no OPC UA listener serves', () => {
  let own: TestCore;
  let ownDir: { dir: string; cleanup: () => void };
  let ownSession: Session;

  before(async () => {
    ownDir = tempDir('penstock-opcua-agent-own-');
    own = await startTestCore(ownDir.dir, `
appliance: { id: gw-own, site: test-site, zone: plant, state_dir: ${ownDir.dir}/state, runtime_dir: ${ownDir.dir}/run }
journal: { path: ${ownDir.dir}/journal }
${agentAndBoiler()}grants:
  - id: g-agent
    principal: agent-ai
    targets: [boiler-1]
    task: { ticket: WO-2002 }
    rules:
      - opcua: { verbs: [browse, read, write], nodes: ["${SETPOINT}"], min: 0, max: 100 }
`);
    ownSession = agentSession(own.core);
  });

  after(async () => {
    await closeAgentLinks(own.core);
    await own?.stop();
    ownDir?.cleanup();
  });

  it('the agent tools open a link of their own (the gateway\'s client certificate, the same node ids), shared by their calls, closed when their sessions end', async () => {
    const call = (name: string, args: Record<string, unknown>) => door.callAgentTool!(name, tools.get(name)!.input.parse(args) as Record<string, unknown>, testAgentCall(own.core, ownSession));
    const r = await call('opcua_read', { target: 'boiler-1', nodes: [SETPOINT] });
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual((r.result.results as { status: string; value: unknown }[]).map((x) => [x.status, x.value]), [['Good', plant.setpoint()]]);
    const writes = plant.hits.setpointWrites;
    const w = await call('opcua_write', { target: 'boiler-1', node: 'Objects/Boiler/Setpoint', value: 12.5 });
    assert.ok(w.ok, JSON.stringify(w));
    assert.equal(plant.hits.setpointWrites, writes + 1);
    assert.equal(await plantValue('ns=1;s=Boiler.Setpoint'), 12.5);
    const denied = await call('opcua_write', { target: 'boiler-1', node: SETPOINT, value: 101 });
    assert.ok(!denied.ok && 'refused' in denied);
    assert.equal(plant.hits.setpointWrites, writes + 1);
    assert.deepEqual(agentLinkTargets(own.core), ['boiler-1'], 'one link served every call');
    // The agent's session ends (as every session does when the daemon drains): the link closes with it.
    ownSession.close();
    await until(() => agentLinkTargets(own.core).length === 0, 'the own link closed after its last session', 10_000);
  });
});
