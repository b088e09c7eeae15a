// What an open session costs the front door besides its channel (issue 17: RSS with 20 sessions): no
// nodes in the address space. node-opcua publishes every session (~110 nodes) and every subscription
// (~64) under Server/ServerDiagnostics, which with 20 sessions was ~24 MiB of heap, and let any
// principal browse the others' sessions and read their subscriptions. The gateway removes both.
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { AttributeIds, BrowseDirection, NodeId, NodeIdType, ObjectIds, TimestampsToReturn, VariableIds, type ClientSession } from 'node-opcua';
import { opcuaListenerInternals } from '../../../src/adapters/opcua/adapter.ts';
import { ANNA as anna, BOB as bob, connect, freePort, makeIdentity, twoVendorSite, startGateway, tempDir, until, type ClientIdentity, type Gateway } from './fixtures/harness.ts';
import { startPlant, type Plant } from './fixtures/plant.ts';

const LEVEL = 'ns=1;s=boiler-1/Boiler/Drum/Level';

let tmp: { dir: string; cleanup: () => void };
let plant: Plant;
let gw: Gateway;
let app: ClientIdentity;
let endpoint: string;
const clients: { session: ClientSession; close: () => Promise<void> }[] = [];

/** Nodes in the front door's address space, all namespaces. */
function addressSpaceSize(): number {
  const server = opcuaListenerInternals(gw.listeners.get('opcua-main')!)!.server as unknown as { engine: { addressSpace: { getNamespaceArray(): { _nodeid_index: Map<string, unknown> }[] } } };
  return server.engine.addressSpace.getNamespaceArray().reduce((n, ns) => n + ns._nodeid_index.size, 0);
}

before(async () => {
  tmp = tempDir('penstock-opcua-footprint-');
  const [plantPort, gwPort] = [await freePort(), await freePort()];
  [plant, app] = await Promise.all([startPlant(plantPort, join(tmp.dir, 'plant')), makeIdentity(tmp.dir, 'vendor-laptop')]);
  gw = await startGateway(tmp.dir, twoVendorSite(tmp.dir, gwPort, app, plant, `
grants:
  - { id: g-anna, principal: vendor-anna, targets: [boiler-1], task: { ticket: WO-1 }, rules: [ { opcua: { verbs: [read, subscribe], nodes: ["${LEVEL}"] } } ] }
`));
  const internals = opcuaListenerInternals(gw.listeners.get('opcua-main')!)!;
  endpoint = internals.endpointUrl;
  await until(() => internals.gateway.mirrors.get('boiler-1')!.syncedAt > 0 && internals.gateway.upstreams.get('boiler-1')!.up, 'the plant mirrored and the link up', 20_000);
});

after(async () => {
  for (const c of clients) await c.close();
  await gw?.stop();
  await plant?.stop();
  tmp?.cleanup();
});

it('sessions and their subscriptions add no node to the address space, and no principal sees another\'s', async () => {
  const before = addressSpaceSize();
  const annas: ClientSession[] = [];
  for (let i = 0; i < 3; i++) {
    const c = await connect(endpoint, { identity: app, user: anna });
    clients.push(c);
    annas.push(c.session);
    const sub = await c.session.createSubscription2({ requestedPublishingInterval: 100, requestedMaxKeepAliveCount: 10, requestedLifetimeCount: 100, publishingEnabled: true });
    const item = await sub.monitor({ nodeId: LEVEL, attributeId: AttributeIds.Value }, { samplingInterval: 0, queueSize: 1 }, TimestampsToReturn.Both);
    await new Promise<void>((resolve) => item.once('changed', () => resolve()));
  }
  assert.equal(addressSpaceSize(), before, 'three sessions, each with a subscription, left the address space as it was');

  // Bob (no grant) finds nothing of Anna's sessions or subscriptions under the server object.
  const b = await connect(endpoint, { identity: app, user: bob });
  clients.push(b);
  const ns0 = (id: number) => new NodeId(NodeIdType.NUMERIC, id, 0);
  const subscriptions = await b.session.read({ nodeId: ns0(VariableIds.Server_ServerDiagnostics_SubscriptionDiagnosticsArray), attributeId: AttributeIds.Value });
  assert.equal(subscriptions.statusCode.name, 'BadNodeIdUnknown');
  const summary = await b.session.browse({ nodeId: ns0(ObjectIds.Server_ServerDiagnostics_SessionsDiagnosticsSummary), browseDirection: BrowseDirection.Forward });
  assert.equal(summary.statusCode.name, 'BadNodeIdUnknown');
  const diagnostics = await b.session.browse({ nodeId: ns0(ObjectIds.Server_ServerDiagnostics), browseDirection: BrowseDirection.Forward });
  assert.equal(diagnostics.statusCode.name, 'Good');
  const names = (diagnostics.references ?? []).map((r) => r.browseName.name);
  assert.ok(!names.includes('SessionsDiagnosticsSummary') && !names.includes('SubscriptionDiagnosticsArray'), `ServerDiagnostics shows ${names.join(', ')}`);
  // The sessions still work as before: Anna's subscriptions deliver, her reads are answered.
  const [dv] = await annas[0]!.read([{ nodeId: LEVEL, attributeId: AttributeIds.Value }]);
  assert.equal(dv!.statusCode.name, 'Good');
});
