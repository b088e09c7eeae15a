// End to end: node-opcua client → Penstock's OPC UA front door (real core, LMDB journal, vault) → the
// plant (an upstream node-opcua server with a boiler). One plant and one gateway serve every test here
// (node-opcua starts are slow); tests that change shared state say so and restore it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AttributeIds,
  BrowseDirection,
  ClientMonitoredItem,
  ClientSubscription,
  DataType,
  MessageSecurityMode,
  SecurityPolicy,
  StatusCodes,
  TimestampsToReturn,
  UserTokenType,
  Variant,
  makeBrowsePath,
  type ClientSession,
  type TransferSubscriptionsResponse,
  type DataValue,
} from 'node-opcua';
import { hashOpcuaPassword } from '../../../src/adapters/opcua/identity.ts';
import { opcuaListenerInternals } from '../../../src/adapters/opcua/adapter.ts';
import { OPCUA_REFUSAL_REASONS } from '../../../src/adapters/opcua/refusals.ts';
import { ANNA as anna, connect, freePort, makeIdentity, makeVault, startGateway, tempDir, until, type ClientIdentity, type Gateway } from './fixtures/harness.ts';
import { startPlant, type Plant } from './fixtures/plant.ts';
import { hostileFrames, openNoneChannel, rawExchange } from './fixtures/raw.ts';

// Outcome, session and refusal records gate nothing, so the core commits them lazily, after the client
// has its answer: the tests wait (until) for the record they check, never a fixed time.

const NS = 'ns=1;s=boiler-1';
const LEVEL = `${NS}/Boiler/Drum/Level`;
const PRESSURE = `${NS}/Boiler/Drum/Pressure`;
const SETPOINT = `${NS}/Boiler/Setpoint`;
const FUEL = `${NS}/Boiler/Burner/FuelValve`;
const BOILER = `${NS}/Boiler`;
const START_PUMP = `${NS}/Boiler/StartPump`;
const RESET_TRIP = `${NS}/Boiler/ResetTrip`;
const HIGH_LEVEL = `${NS}/Boiler/Alarms/HighLevel`;
const KNOB = `${NS}/Bench/Knob`;

let tmp: { dir: string; cleanup: () => void };
let plant: Plant;
let gw: Gateway;
let endpoint: string;
let insecureEndpoint: string;
let vendorApp: ClientIdentity;
let rogueApp: ClientIdentity;
let agentUser: ClientIdentity;
const open: { close: () => Promise<void> }[] = [];


async function annaSession(): Promise<ClientSession> {
  const c = await connect(endpoint, { identity: vendorApp, user: anna });
  open.push(c);
  return c.session;
}

async function agentSession(): Promise<ClientSession> {
  const c = await connect(endpoint, {
    identity: vendorApp,
    user: { type: UserTokenType.Certificate, certificateData: agentUser.der, privateKey: readFileSync(agentUser.keyFile, 'utf8') },
  });
  open.push(c);
  return c.session;
}

/** The OPC UA block of a journaled action (journal/fields.ts renders it snake_case). */
function opcuaOf(e: { action?: Record<string, unknown> }): { node_id?: string; value?: number } {
  return (e.action?.opcua ?? {}) as { node_id?: string; value?: number };
}

/** TransferSubscriptions, which node-opcua's session has but its ClientSession type does not list. */
function raw(s: ClientSession): { transferSubscriptions(o: { subscriptionIds: number[]; sendInitialValues: boolean }): Promise<TransferSubscriptionsResponse> } {
  return s as unknown as ReturnType<typeof raw>;
}

function names(refs: { browseName: { name: string | null } }[] | null | undefined): string[] {
  return (refs ?? []).map((r) => r.browseName.name ?? '').sort();
}

before(async () => {
  tmp = tempDir('penstock-opcua-e2e-');
  const [plantPort, gwPort, insecurePort] = [await freePort(), await freePort(), await freePort()];
  [plant, vendorApp, rogueApp, agentUser] = await Promise.all([
    startPlant(plantPort, join(tmp.dir, 'plant')),
    makeIdentity(tmp.dir, 'vendor-laptop'),
    makeIdentity(tmp.dir, 'rogue-laptop'),
    makeIdentity(tmp.dir, 'agent-user'),
  ]);
  const vault = makeVault(tmp.dir, { 'anna-opcua': hashOpcuaPassword(anna.password) });
  const agentFp = createHash('sha256').update(agentUser.der).digest('hex');
  gw = await startGateway(tmp.dir, `
appliance: { id: gw-test, site: test-site, zone: plant, state_dir: ${tmp.dir}/state, runtime_dir: ${tmp.dir}/run }
journal: { path: ${tmp.dir}/journal }
vault: { file: ${vault.file}, key_file: ${vault.keyFile} }
sessions: { actions_per_second: 100000 }
listeners:
  - id: opcua-main
    protocol: opcua
    host: 127.0.0.1
    port: ${gwPort}
    targets: [boiler-1]
    trusted_clients: [${vendorApp.certFile}]
  - id: opcua-insecure
    protocol: opcua
    host: 127.0.0.1
    port: ${insecurePort}
    targets: [boiler-1]
    allow_security_none: true
    trusted_clients: [${vendorApp.certFile}]
principals:
  - id: vendor-anna
    kind: vendor
    owner: Boilerworks GmbH
    purpose: boiler commissioning
    credentials: { opcua_user: { username: anna, password: "vault:anna-opcua" } }
  - id: agent-observer
    kind: agent
    owner: plant IT
    purpose: read-only monitoring agent
    credentials: { x509: { fingerprints: ["${agentFp}"] } }
targets:
  - id: boiler-1
    protocol: opcua
    zone: plant
    endpoint: ${plant.endpoint}
    server_certificate: ${plant.certFile}
grants:
  - id: g-anna
    principal: vendor-anna
    targets: [boiler-1]
    task: { ticket: WO-1001 }
    rules:
      - opcua: { verbs: [browse, read, subscribe], browse_paths: [Objects/Boiler/Drum, Objects/Boiler/Alarms, Objects/Bench] }
      - opcua: { verbs: [browse, read, write], nodes: ["${SETPOINT}"], min: 0, max: 100 }
      - opcua: { verbs: [browse, call], browse_paths: [Objects/Boiler/StartPump, Objects/Boiler/ResetTrip] }
      - opcua: { effect: approve, verbs: [write], nodes: ["${KNOB}"] }
  - id: g-agent
    principal: agent-observer
    targets: [boiler-1]
    task: { ticket: MON-7 }
    rules:
      - opcua: { verbs: [browse, read, subscribe], browse_paths: [Objects/Boiler/Drum] }
`);
  const internals = opcuaListenerInternals(gw.listeners.get('opcua-main')!)!;
  endpoint = internals.endpointUrl;
  insecureEndpoint = opcuaListenerInternals(gw.listeners.get('opcua-insecure')!)!.endpointUrl;
  // The mirror is built once the upstream link is up.
  await until(() => internals.gateway.locate(LEVEL) !== undefined && internals.gateway.locate(RESET_TRIP) !== undefined, 'the boiler mirrored', 20_000);
});

after(async () => {
  await Promise.allSettled(open.map((c) => c.close()));
  await gw?.stop();
  await plant?.stop();
  tmp?.cleanup();
});

describe('OPC UA gateway, end to end', () => {
  it('browse shows a principal only what its grants let it see', async () => {
    const s = await annaSession();
    const objects = await s.browse({ nodeId: 'i=85', browseDirection: BrowseDirection.Forward, referenceTypeId: 'HierarchicalReferences', includeSubtypes: true, resultMask: 63 });
    assert.ok(names(objects.references).includes('boiler-1'));
    const boiler = await s.browse({ nodeId: BOILER, browseDirection: BrowseDirection.Forward, referenceTypeId: 'HierarchicalReferences', includeSubtypes: true, resultMask: 63 });
    assert.deepEqual(names(boiler.references), ['Alarms', 'Drum', 'ResetTrip', 'Setpoint', 'StartPump']); // no Burner
    const agent = await agentSession();
    const seen = await agent.browse({ nodeId: BOILER, browseDirection: BrowseDirection.Forward, referenceTypeId: 'HierarchicalReferences', includeSubtypes: true, resultMask: 63 });
    assert.deepEqual(names(seen.references), ['Drum']);
    // The upstream's ids never show: gateway ids are stable and name the target.
    const drum = await agent.browse({ nodeId: `${NS}/Boiler/Drum`, browseDirection: BrowseDirection.Forward, resultMask: 63 });
    assert.ok(drum.references!.some((r) => r.nodeId.toString() === LEVEL));
  });

  it('TranslateBrowsePaths and RegisterNodes tell a hidden node from a missing one no more than browse does', async () => {
    const agent = await agentSession();
    // Browse names keep the plant's namespace (its URI published in the gateway's table).
    const boilerRef = (await agent.browse({ nodeId: NS, browseDirection: BrowseDirection.Forward, resultMask: 63 })).references!.find((r) => r.browseName.name === 'Boiler')!;
    const pns = boilerRef.browseName.namespaceIndex;
    assert.notEqual(pns, 1, "the plant's namespace is not the gateway's own");
    const translate = (path: string) => agent.translateBrowsePath(makeBrowsePath(`${NS}`, path.split('/').map((n) => `/${pns}:${n}`).join('')));
    const visible = await translate('Boiler/Drum/Level');
    assert.equal(visible.statusCode.name, 'Good');
    assert.equal(visible.targets![0]!.targetId.toString(), LEVEL);
    const hidden = await translate('Boiler/Burner/FuelValve'); // exists upstream, not granted to the agent
    const missing = await translate('Boiler/Burner/NoSuchValve');
    assert.equal(hidden.statusCode.name, 'BadNoMatch');
    assert.deepEqual(hidden.targets ?? [], []);
    assert.equal(hidden.statusCode.name, missing.statusCode.name);
    // Anna may see the burner's valve: the same path resolves for her.
    const anna = await annaSession();
    assert.equal((await anna.translateBrowsePath(makeBrowsePath(`${NS}`, `/${pns}:Boiler/${pns}:Burner`))).statusCode.name, 'BadNoMatch', 'Burner is not granted to anna either');
    assert.equal((await anna.translateBrowsePath(makeBrowsePath(`${NS}`, `/${pns}:Boiler/${pns}:Setpoint`))).targets![0]!.targetId.toString(), SETPOINT);
    // RegisterNodes: a hidden node and a missing one come back alike, as given; reads still decide per node.
    const [fuel, nowhere, level] = await agent.registerNodes([FUEL, `${NS}/Boiler/Burner/NoSuchValve`, LEVEL]);
    assert.equal(fuel!.toString(), FUEL);
    assert.equal(nowhere!.toString(), `${NS}/Boiler/Burner/NoSuchValve`);
    assert.equal(level!.toString(), LEVEL);
    assert.equal((await agent.read({ nodeId: level!, attributeId: AttributeIds.Value })).statusCode.name, 'Good');
    assert.equal((await agent.read({ nodeId: fuel!, attributeId: AttributeIds.Value })).statusCode.name, 'BadUserAccessDenied');
  });

  it('reads: allowed items are forwarded, a denied item in the same batch is refused and never reaches the plant', async () => {
    const s = await annaSession();
    const before = plant.hits.fuelValveReads;
    const dvs = await s.read([
      { nodeId: LEVEL, attributeId: AttributeIds.Value },
      { nodeId: FUEL, attributeId: AttributeIds.Value },
      { nodeId: PRESSURE, attributeId: AttributeIds.Value },
      { nodeId: 'i=2259', attributeId: AttributeIds.Value }, // Server_ServerStatus_State: the gateway's own
    ]);
    assert.equal(dvs[0]!.statusCode.name, 'Good');
    assert.equal(typeof dvs[0]!.value.value, 'number');
    assert.equal(dvs[1]!.statusCode.name, 'BadUserAccessDenied');
    assert.equal(dvs[2]!.statusCode.name, 'Good');
    assert.equal(dvs[2]!.value.value, 11.2);
    assert.equal(dvs[3]!.statusCode.name, 'Good');
    assert.equal(plant.hits.fuelValveReads, before, 'the refused read never reached the plant');
    const denied = gw.events().filter((e) => e.event === 'action.denied' && opcuaOf(e).node_id === FUEL);
    assert.ok(denied.length >= 1, 'the denial is journaled');
  });

  it('writes: in-bounds write forwarded and journaled before with the value read just before; out of bounds and ungranted refused', async () => {
    const s = await annaSession();
    const writesBefore = plant.hits.setpointWrites;
    const fuelBefore = plant.hits.fuelValveWrites;
    const old = plant.setpoint();
    const statuses = await s.write([
      { nodeId: SETPOINT, attributeId: AttributeIds.Value, value: { value: new Variant({ dataType: DataType.Double, value: 75 }) } },
      { nodeId: SETPOINT, attributeId: AttributeIds.Value, value: { value: new Variant({ dataType: DataType.Double, value: 150 }) } },
      { nodeId: FUEL, attributeId: AttributeIds.Value, value: { value: new Variant({ dataType: DataType.Double, value: 99 }) } },
      { nodeId: LEVEL, attributeId: AttributeIds.Value, value: { value: new Variant({ dataType: DataType.Double, value: 1 }) } },
    ]);
    assert.deepEqual(statuses.map((x) => x.name), ['Good', 'BadOutOfRange', 'BadUserAccessDenied', 'BadUserAccessDenied']);
    assert.equal(plant.setpoint(), 75);
    assert.equal(plant.hits.setpointWrites, writesBefore + 1, 'only the allowed write reached the plant');
    assert.equal(plant.hits.fuelValveWrites, fuelBefore);
    await until(() => gw.events().some((e) => e.event === 'action.outcome' && opcuaOf(e).value === 75), 'the outcome of the allowed write journaled');
    const events = gw.events();
    const allowed = events.findIndex((e) => e.event === 'action.allowed' && e.action?.verb === 'write' && opcuaOf(e).value === 75);
    const outcome = events.findIndex((e) => e.event === 'action.outcome' && opcuaOf(e).value === 75);
    assert.ok(allowed >= 0 && outcome > allowed, 'allowed write journaled before its outcome');
    // The record made before forwarding holds the value written and the one read just before.
    assert.deepEqual(events[allowed]!.detail, { new_values: [75], old_values: [old] });
    assert.equal((events[outcome]!.outcome as { status?: string }).status, 'Good');
    assert.ok(events.some((e) => e.event === 'action.denied' && e.decision?.reason === 'value_out_of_bounds'));
  });

  it('a write approved after the connection of its client dropped is not forwarded', async () => {
    const c = await connect(endpoint, { identity: vendorApp, user: anna });
    open.push(c);
    const before = (await c.session.read({ nodeId: KNOB, attributeId: AttributeIds.Value })).value.value as number;
    const write = c.session.write([{ nodeId: KNOB, attributeId: AttributeIds.Value, value: { value: new Variant({ dataType: DataType.Double, value: before + 7 }) } }]).catch((err: Error) => err);
    const pending = await until(() => gw.core.approvals.list().find((a) => (a.action.object as { nodeId?: string }).nodeId === KNOB), 'the approval request');
    // The laptop drops off the network: the channel goes, the OPC UA session stays on the server.
    (c.client as unknown as { keepPendingSessionsOnDisconnect: boolean }).keepPendingSessionsOnDisconnect = true;
    await c.client.disconnect();
    await write; // the client side gives up on its own (closed channel)
    gw.core.approvals.approve(pending.id, { uid: 0, user: 'root', verified: true });
    await until(() => gw.events().find((e) => e.event === 'action.outcome' && opcuaOf(e).node_id === KNOB), 'the outcome');
    const outcome = gw.events().find((e) => e.event === 'action.outcome' && opcuaOf(e).node_id === KNOB)!;
    assert.deepEqual({ ...(outcome.outcome as Record<string, unknown>), reason: undefined }, { status: 'BadSecureChannelClosed', forwarded: false, reason: undefined });
    const s = await annaSession();
    assert.equal((await s.read({ nodeId: KNOB, attributeId: AttributeIds.Value })).value.value, before, 'the plant never saw the write');
  });

  it('calls: an allowed method is forwarded with its arguments; another principal is refused and the plant sees nothing', async () => {
    const s = await annaSession();
    const [pump, reset] = await s.call([
      { objectId: BOILER, methodId: START_PUMP, inputArguments: [] },
      { objectId: BOILER, methodId: RESET_TRIP, inputArguments: [new Variant({ dataType: DataType.String, value: 'test trip' })] },
    ]);
    assert.equal(pump!.statusCode.name, 'Good');
    assert.equal(reset!.statusCode.name, 'Good');
    assert.equal(reset!.outputArguments![0]!.value, true);
    assert.equal(plant.hits.startPump, 1);
    assert.equal(plant.hits.resetTrip, 1);
    const resetRecord = gw.events().find((e) => e.event === 'action.allowed' && e.action?.verb === 'call' && opcuaOf(e).node_id === RESET_TRIP);
    assert.deepEqual(resetRecord?.detail, { arguments: ['test trip'] }, 'the call journaled with its arguments before it was forwarded');
    const agent = await agentSession();
    const [refused] = await agent.call([{ objectId: BOILER, methodId: START_PUMP, inputArguments: [] }]);
    assert.equal(refused!.statusCode.name, 'BadUserAccessDenied');
    assert.equal(plant.hits.startPump, 1, 'the refused call never reached the plant');
  });

  it('subscriptions: two sessions share one upstream monitored item; a refused item does not stop the others; notifications are journaled per session', async () => {
    const internals = opcuaListenerInternals(gw.listeners.get('opcua-main')!)!;
    const upstream = internals.gateway.upstreams.get('boiler-1')!;
    const clients = [await connect(endpoint, { identity: vendorApp, user: anna }), await connect(endpoint, {
      identity: vendorApp,
      user: { type: UserTokenType.Certificate, certificateData: agentUser.der, privateKey: readFileSync(agentUser.keyFile, 'utf8') },
    })];
    open.push(...clients);
    const principals = ['vendor-anna', 'agent-observer'];
    const seen: number[][] = [[], []];
    const firstStatus: string[] = [];
    const delivered = [0, 0];
    const subs: ClientSubscription[] = [];
    for (const [k, { session: s }] of clients.entries()) {
      const sub = await s.createSubscription2({ requestedPublishingInterval: 50, requestedMaxKeepAliveCount: 10, requestedLifetimeCount: 100, publishingEnabled: true });
      subs.push(sub);
      const item = await sub.monitor({ nodeId: LEVEL, attributeId: AttributeIds.Value }, { samplingInterval: 0, queueSize: 10 }, TimestampsToReturn.Both);
      item.on('changed', (dv: DataValue) => {
        if (delivered[k]!++ === 0) firstStatus[k] = dv.statusCode.name;
        if (dv.statusCode.isGood()) seen[k]!.push(dv.value.value as number);
      });
    }
    const denied = ClientMonitoredItem.create(subs[1]!, { nodeId: FUEL, attributeId: AttributeIds.Value }, { samplingInterval: 0 }, TimestampsToReturn.Both);
    const deniedStatus = await new Promise<string>((resolve) => {
      denied.on('err', (msg: string) => resolve(msg));
      denied.on('initialized', () => resolve('initialized'));
    });
    assert.match(deniedStatus, /BadUserAccessDenied/);
    await until(() => seen.every((s) => s.length > 0), 'initial values');
    const itemsForLevel = upstream.monitoredItemCount;
    assert.equal(itemsForLevel, 1, 'one upstream monitored item for two sessions watching Level');
    plant.setLevel(95);
    await until(() => seen.every((s) => s.includes(95)), 'the change reached both sessions');
    plant.setLevel(96);
    await until(() => seen.every((s) => s.includes(96)), 'the second change reached both sessions');
    assert.deepEqual(firstStatus, ['Good', 'Good'], 'the first value of each session is a current one, not BadWaitingForInitialData');
    for (const sub of subs) await sub.terminate();
    await until(() => upstream.monitoredItemCount === 0, 'the upstream item released when nobody watches');
    // Nobody watches: the level changes unseen. A new watcher starts from the plant's value now, not
    // from what the gateway last saw.
    plant.setLevel(12);
    const later = await clients[0]!.session.createSubscription2({ requestedPublishingInterval: 50, requestedMaxKeepAliveCount: 10, requestedLifetimeCount: 100, publishingEnabled: true });
    const again = await later.monitor({ nodeId: LEVEL, attributeId: AttributeIds.Value }, { samplingInterval: 0, queueSize: 10 }, TimestampsToReturn.Both);
    const firstAgain = await new Promise<DataValue>((resolve) => again.once('changed', resolve));
    delivered[0]!++;
    assert.equal(firstAgain.value.value, 12, 'the first value of a new watch is current, not the one left from the last watch');
    await later.terminate();
    // Each session's notifications are journaled as one aggregate per node when the session ends,
    // counting exactly what that session's client received.
    for (const c of clients) await c.close();
    for (const [k, principal] of principals.entries()) {
      const aggregateOf = () => gw.events()
        .filter((e) => e.event === 'reads.aggregate' && e.principal === principal)
        .flatMap((e) => (e.detail as { reads: { verb: string; kind?: string; count: number; object: { nodeId?: string } }[] }).reads)
        .filter((r) => r.kind === 'notification' && r.object.nodeId === LEVEL);
      await until(() => aggregateOf().length > 0, `${principal}'s notification aggregate`);
      const counted = aggregateOf().reduce((n, r) => n + r.count, 0);
      assert.equal(counted, delivered[k], `${principal}: notifications journaled = notifications received`);
      assert.ok(counted >= 3, `${principal} received the initial value and two changes`);
      assert.equal(aggregateOf()[0]!.verb, 'subscribe');
    }
  });

  it('a subscription cannot be transferred to a session of another principal (TransferSubscriptions)', async () => {
    const anna1 = await annaSession();
    const sub = await anna1.createSubscription2({ requestedPublishingInterval: 50, requestedMaxKeepAliveCount: 10, requestedLifetimeCount: 100, publishingEnabled: true });
    await sub.monitor({ nodeId: LEVEL, attributeId: AttributeIds.Value }, { samplingInterval: 0, queueSize: 10 }, TimestampsToReturn.Both);
    const agent = await agentSession();
    const taken = await raw(agent).transferSubscriptions({ subscriptionIds: [sub.subscriptionId], sendInitialValues: true });
    assert.equal(taken.results![0]!.statusCode.name, 'BadUserAccessDenied', 'another principal cannot take it');
    const anna2 = await annaSession();
    const moved = await raw(anna2).transferSubscriptions({ subscriptionIds: [sub.subscriptionId], sendInitialValues: false });
    assert.equal(moved.results![0]!.statusCode.name, 'Good', 'the same principal may move it to another of its sessions');
  });

  it('an upstream restart during a live subscription: the same client session resumes receiving', async () => {
    const internals = opcuaListenerInternals(gw.listeners.get('opcua-main')!)!;
    const upstream = internals.gateway.upstreams.get('boiler-1')!;
    const s = await annaSession();
    const sessionId = s.sessionId.toString();
    const sub = await s.createSubscription2({ requestedPublishingInterval: 50, requestedMaxKeepAliveCount: 10, requestedLifetimeCount: 1000, publishingEnabled: true });
    const values: (number | string)[] = [];
    const item = await sub.monitor({ nodeId: LEVEL, attributeId: AttributeIds.Value }, { samplingInterval: 0, queueSize: 10 }, TimestampsToReturn.Both);
    item.on('changed', (dv: DataValue) => values.push(dv.statusCode.isGood() ? (dv.value.value as number) : dv.statusCode.name));
    plant.setLevel(60);
    await until(() => values.includes(60), 'value before the restart');
    const restarting = plant.restart();
    await until(() => !upstream.up, 'the gateway notices the upstream is gone');
    const during = await s.read({ nodeId: LEVEL, attributeId: AttributeIds.Value });
    assert.ok(['BadNotConnected', 'BadCommunicationError'].includes(during.statusCode.name), `read while upstream down: ${during.statusCode.name}`);
    await restarting;
    await until(() => upstream.up, 'upstream reconnected', 30_000);
    plant.setLevel(33);
    await until(() => values.includes(33), 'notifications resumed after the restart', 30_000);
    assert.equal(s.sessionId.toString(), sessionId, 'no new client session');
    assert.ok(values.includes('BadNotConnected'), 'the client saw the outage as BadNotConnected');
    await sub.terminate();
  });

  it('refuses a wrong password, anonymous, an untrusted client certificate and SecurityPolicy None, and journals them', async () => {
    await assert.rejects(connect(endpoint, { identity: vendorApp, user: { type: UserTokenType.UserName, userName: 'anna', password: 'wrong' } }));
    await assert.rejects(connect(endpoint, { identity: vendorApp, user: { type: UserTokenType.Anonymous } }));
    await assert.rejects(connect(endpoint, { identity: rogueApp, user: anna }));
    await assert.rejects(connect(endpoint, { identity: vendorApp, user: anna, mode: MessageSecurityMode.None, policy: SecurityPolicy.None }));
    const rogueThumb = createHash('sha1').update(rogueApp.der).digest('hex');
    const failures = await until(() => {
      const f = gw.events().filter((e) => e.event === 'auth.failed').map((e) => e.detail as Record<string, unknown>);
      return f.some((d) => String(d.reason).includes('wrong_password')) && f.some((d) => d.thumbprint === rogueThumb) && f;
    }, 'the wrong password and the refused certificate journaled');
    assert.ok(failures.some((d) => String(d.reason).includes('wrong_password')), JSON.stringify(failures));
    // No endpoint offers an anonymous token or SecurityPolicy None (a client that sends one anyway is refused
    // and journaled by the front door: 'anonymous login refused').
    const probe = await connect(endpoint, { identity: vendorApp, user: anna });
    open.push(probe);
    const endpoints = await probe.client.getEndpoints();
    assert.ok(endpoints.length > 0);
    for (const ep of endpoints) {
      assert.equal(ep.securityMode, MessageSecurityMode.SignAndEncrypt);
      assert.ok(!(ep.userIdentityTokens ?? []).some((t) => t.tokenType === UserTokenType.Anonymous));
    }
    assert.ok(failures.some((d) => d.thumbprint === rogueThumb), 'the refused certificate is journaled with its thumbprint');
  });

  it('unresolvedPermissionPolicy is deny: a node without role permissions is closed even to an authenticated session', async () => {
    const { server } = opcuaListenerInternals(gw.listeners.get('opcua-main')!)!;
    const as = server.engine.addressSpace!;
    const extra = as.registerNamespace('urn:penstock:test:unguarded');
    const v = extra.addVariable({ organizedBy: as.rootFolder.objects, browseName: 'Unguarded', nodeId: 's=Unguarded', dataType: 'Double', value: { dataType: DataType.Double, value: 1 } });
    const s = await annaSession();
    const dv = await s.read({ nodeId: v.nodeId, attributeId: AttributeIds.Value });
    assert.equal(dv.statusCode.name, 'BadUserAccessDenied');
  });

  it('sessions appear in the registry with counters, journaled with their security, and kill ends one', async () => {
    const s = await annaSession();
    await s.read({ nodeId: LEVEL, attributeId: AttributeIds.Value });
    const mine = gw.core.sessions.list().filter((x) => x.protocol === 'opcua' && x.principal.id === 'vendor-anna');
    assert.ok(mine.length >= 1);
    const view = mine.at(-1)!.view();
    assert.equal(view.attributes.security_mode, 'SignAndEncrypt');
    assert.equal(view.attributes.identity, 'username');
    assert.ok(view.counters.allowed >= 1);
    const oldId = s.sessionId.toString();
    gw.core.sessions.kill(view.id, { reason: 'killed', by: { uid: 0, user: 'root', verified: true } });
    assert.equal(gw.core.sessions.get(view.id), undefined);
    const { server } = opcuaListenerInternals(gw.listeners.get('opcua-main')!)!;
    assert.ok(!server.engine.getSessions().some((x) => x.nodeId.toString() === oldId), 'the OPC UA session is gone from the front door');
    // node-opcua clients log in again on their own; that is a NEW session, authenticated and journaled anew.
    await s.read({ nodeId: LEVEL, attributeId: AttributeIds.Value });
    assert.notEqual(s.sessionId.toString(), oldId);
    await until(() => gw.events().some((e) => e.event === 'session.killed' && e.session === view.id), 'session.killed journaled');
  });
});

describe('OPC UA front door under hostile input', () => {
  it('SecurityPolicy None, where configured, works and every such session is journaled as insecure', async () => {
    const c = await connect(insecureEndpoint, { identity: vendorApp, user: anna, mode: MessageSecurityMode.None, policy: SecurityPolicy.None });
    open.push(c);
    const dv = await c.session.read({ nodeId: LEVEL, attributeId: AttributeIds.Value });
    assert.equal(dv.statusCode.name, 'Good');
    const opened = await until(() => {
      const o = gw.events().filter((e) => e.event === 'session.opened' && e.listener === 'opcua-insecure');
      return o.length >= 1 && o;
    }, 'the insecure session journaled');
    assert.ok(opened.length >= 1);
    for (const e of opened) assert.equal(((e.detail as { attributes?: Record<string, string> }).attributes ?? {}).security_mode, 'None');
    assert.ok(opened.every((e) => typeof ((e.detail as { attributes?: Record<string, string> }).attributes ?? {}).insecure === 'string'));
  });

  it('malformed messages (lying lengths, truncated chunks, huge arrays, deep nesting) leave the front door up and other sessions served', async () => {
    const good = await annaSession();
    const port = Number(new URL(insecureEndpoint.replace('opc.tcp:', 'http:')).port);
    const sessionsBefore = gw.core.sessions.list().length;
    for (const [name, frames] of Object.entries(hostileFrames(insecureEndpoint))) {
      // Some frames need an open (None) channel first: the decoder of service bodies is what they attack.
      const needsChannel = name.startsWith('msg:');
      const prefix = needsChannel ? await openNoneChannel(port, insecureEndpoint) : undefined;
      await rawExchange(port, frames(prefix?.ids), prefix);
      const dv = await good.read({ nodeId: LEVEL, attributeId: AttributeIds.Value });
      assert.equal(dv.statusCode.name, 'Good', `after ${name} the other session is still served`);
    }
    assert.equal(gw.core.sessions.list().length, sessionsBefore, 'no hostile frame produced a session');
    // What node-opcua refused with an ERR message is journaled, with the client's address and the status.
    const malformedEvents = () => gw.events().filter((e) => e.event === 'action.malformed' && e.listener === 'opcua-insecure');
    const statusesOf = (events: ReturnType<typeof malformedEvents>) => new Set(events.map((e) => (e.detail as { status?: string }).status));
    const malformed = await until(() => {
      const m = malformedEvents();
      const s = statusesOf(m);
      return s.has('BadTcpMessageTooLarge') && s.has('BadNotSupported') && m;
    }, 'the refused hostile frames journaled (BadTcpMessageTooLarge and BadNotSupported)');
    const statuses = statusesOf(malformed);
    assert.ok(statuses.has('BadTcpMessageTooLarge'), `lying lengths journaled: ${[...statuses].join(', ')}`);
    assert.ok(statuses.has('BadNotSupported'), 'the unknown service type journaled');
    assert.ok(malformed.every((e) => /^127\.0\.0\.1:\d+$/.test(String((e.detail as { remote?: string }).remote))));
    // And the front door still accepts new sessions.
    const fresh = await connect(endpoint, { identity: vendorApp, user: anna });
    open.push(fresh);
    assert.equal((await fresh.session.read({ nodeId: PRESSURE, attributeId: AttributeIds.Value })).statusCode.name, 'Good');
  });

  it('every refusal the front door journals itself carries the protocol and a stable reason code', async () => {
    // By now this file has refused a password, an untrusted certificate, SecurityPolicy None and hostile frames.
    await gw.core.recorded();
    const refusals = gw.events().filter((e) => e.event === 'auth.failed' || e.event === 'auth.rate_limited' || e.event === 'action.malformed');
    const reasons = new Set(refusals.map((e) => e.detail?.reason));
    for (const code of ['wrong_password', 'client_certificate_refused', 'secure_channel_refused', 'malformed_frame']) assert.ok(reasons.has(code), `${code} among ${[...reasons].join(', ')}`);
    for (const e of refusals) {
      assert.equal(e.detail?.protocol, 'opcua', JSON.stringify(e));
      assert.ok(Object.hasOwn(OPCUA_REFUSAL_REASONS, String(e.detail?.reason)), `a registered reason code: ${JSON.stringify(e.detail)}`);
    }
  });
});
