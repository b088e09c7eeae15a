// Forwarding needs the core's proof (issue 13): a verdict that says "allow" but carries an Authorization
// the core never minted sends nothing to the plant, for every service that reaches it (Write, Call, Read,
// CreateMonitoredItems, HistoryRead). The core here is the real one behind a wrapper that turns its
// refusals into such forged allows, as a bug in a front door might; the plant counts what reaches it.
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { AttributeIds, ClientMonitoredItem, DataType, HistoryReadRequest, ReadRawModifiedDetails, TimestampsToReturn, type ClientSession } from 'node-opcua';
import type { Core, Verdict } from '../../../src/core/core.ts';
import type { DaemonCore } from '../../../src/core/daemon-core.ts';
import type { RunningListener } from '../../../src/adapters/types.ts';
import { hashOpcuaPassword } from '../../../src/adapters/opcua/identity.ts';
import { opcuaAdapter, opcuaListenerInternals } from '../../../src/adapters/opcua/adapter.ts';
import { startTestCore, type TestCore } from '../../core-harness.ts';
import { ANNA as anna, connect, freePort, makeIdentity, makeVault, tempDir, until } from './fixtures/harness.ts';
import { startPlant, type Plant } from './fixtures/plant.ts';

const NS = 'ns=1;s=boiler-1';
const LEVEL = `${NS}/Boiler/Drum/Level`;
const SETPOINT = `${NS}/Boiler/Setpoint`;
const FUEL = `${NS}/Boiler/Burner/FuelValve`;
const BOILER = `${NS}/Boiler`;
const START_PUMP = `${NS}/Boiler/StartPump`;

/**
 * The real core, except that every refusal comes back as an allow with a look-alike Authorization (the
 * right session, action and decision, frozen) that the core did not mint.
 */
function forgingCore(core: DaemonCore): Core {
  return {
    clock: core.clock,
    log: core.log,
    journal: core.journal,
    sessions: core.sessions,
    approvals: core.approvals,
    grants: core.grants,
    vault: core.vault,
    config: () => core.config(),
    explain: (principal, action) => core.explain(principal, action),
    recordRefusal: (r) => core.recordRefusal(r),
    recordOutcome: (s, a, o) => core.recordOutcome(s, a, o),
    recordDeliveries: (s, a, n) => core.recordDeliveries(s, a, n),
    async authorize(session, action, opts): Promise<Verdict> {
      const verdict = await core.authorize(session, action, opts);
      if (verdict.authorization) return verdict;
      const decision = { ...verdict, effect: 'allow' as const };
      return { ...decision, authorization: Object.freeze({ session: session.id, action, decision: Object.freeze({ ...decision }) }) };
    },
  };
}

let tmp: { dir: string; cleanup: () => void };
let plant: Plant;
let t: TestCore;
let listener: RunningListener;
let session: ClientSession;
let closeClient: () => Promise<void>;

before(async () => {
  tmp = tempDir('penstock-opcua-forged-');
  const [plantPort, gwPort] = [await freePort(), await freePort()];
  const [p, vendorApp] = await Promise.all([startPlant(plantPort, join(tmp.dir, 'plant')), makeIdentity(tmp.dir, 'vendor-laptop')]);
  plant = p;
  const vault = makeVault(tmp.dir, { 'anna-opcua': hashOpcuaPassword(anna.password) });
  t = await startTestCore(tmp.dir, `
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
principals:
  - id: vendor-anna
    kind: vendor
    owner: Boilerworks GmbH
    purpose: boiler commissioning
    credentials: { opcua_user: { username: anna, password: "vault:anna-opcua" } }
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
      - opcua: { verbs: [browse], browse_paths: [Objects/Boiler] }
      - opcua: { verbs: [read], nodes: ["${LEVEL}"] }
`);
  listener = await opcuaAdapter.start(t.config.listeners[0]!, forgingCore(t.core));
  const gateway = opcuaListenerInternals(listener)!.gateway;
  await until(() => gateway.locate(START_PUMP) !== undefined, 'the plant mirrored', 20_000);
  ({ session, close: closeClient } = await connect(opcuaListenerInternals(listener)!.endpointUrl, { identity: vendorApp, user: anna }));
  // A genuine allow goes through: the link is up and the test below can fail.
  await until(async () => (await session.read({ nodeId: LEVEL, attributeId: AttributeIds.Value })).statusCode.isGood(), 'a granted read answered by the plant');
});

after(async () => {
  await closeClient?.();
  await listener?.close();
  await t?.stop();
  await plant?.stop();
  tmp?.cleanup();
});

it('a forged Authorization reaches nothing upstream: writes, calls, reads, monitored items and history reads', async () => {
  const hits = { ...plant.hits };
  const setpoint = plant.setpoint();

  const [write] = await session.write([{ nodeId: SETPOINT, attributeId: AttributeIds.Value, value: { value: { dataType: DataType.Double, value: setpoint + 1 } } }]);
  assert.equal(write?.name, 'BadInternalError');
  const [call] = await session.call([{ objectId: BOILER, methodId: START_PUMP, inputArguments: [] }]);
  assert.equal(call?.statusCode.name, 'BadInternalError');
  const read = await session.read({ nodeId: FUEL, attributeId: AttributeIds.Value });
  assert.equal(read.statusCode.name, 'BadInternalError');
  const history = await session.historyRead(new HistoryReadRequest({
    historyReadDetails: new ReadRawModifiedDetails({ startTime: new Date(Date.now() - 60_000), endTime: new Date(), numValuesPerNode: 10 }),
    timestampsToReturn: TimestampsToReturn.Both,
    nodesToRead: [{ nodeId: FUEL }],
  }));
  assert.equal(history.results?.[0]?.statusCode.name, 'BadInternalError');
  const sub = await session.createSubscription2({ requestedPublishingInterval: 50, requestedMaxKeepAliveCount: 10, requestedLifetimeCount: 100, publishingEnabled: true });
  const item = ClientMonitoredItem.create(sub, { nodeId: FUEL, attributeId: AttributeIds.Value }, { samplingInterval: 0 }, TimestampsToReturn.Both);
  const monitored = await new Promise<string>((resolve) => {
    item.on('err', (msg: string) => resolve(msg));
    item.on('initialized', () => resolve('initialized'));
  });
  assert.match(monitored, /BadInternalError/);

  // The plant's side: nothing written, called or sampled (a monitored item there would have read the
  // valve before the gateway answered, waiting for its first value).
  assert.deepEqual(plant.hits, hits, 'nothing reached the plant');
  assert.equal(plant.setpoint(), setpoint);
  assert.equal(opcuaListenerInternals(listener)!.gateway.upstreams.get('boiler-1')!.monitoredItemCount, 0);

  // The journal holds the core's real decisions, and for the write and the call that they were not sent.
  await t.core.recorded();
  const events = t.events();
  for (const verb of ['write', 'call', 'read', 'history', 'subscribe']) {
    assert.ok(events.some((e) => e.event === 'action.denied' && (e.action as { verb?: string } | undefined)?.verb === verb), `the ${verb} is journaled as denied`);
  }
  const outcomes = events.filter((e) => e.event === 'action.outcome').map((e) => e.outcome as Record<string, unknown>);
  assert.deepEqual(outcomes.map((o) => [o.status, o.forwarded, o.error]).sort(), [['BadInternalError', false, 'PS_INTERNAL'], ['BadInternalError', false, 'PS_INTERNAL']]);
  await sub.terminate();
});
