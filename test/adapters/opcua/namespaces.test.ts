// End to end through the OPC UA gateway to a plant whose nodes live in two namespaces besides its own,
// with a custom structure type (fixtures/plant-ns.ts): namespace indexes translated both ways (checked by
// resolving every index through the gateway's NamespaceArray and comparing URIs with the plant's), a
// batch with items the plant cannot decode, Int64 bounds, the plant's Server object kept out of the
// mirror, and UserAccessLevel / UserExecutable from the principal's grants.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  AttributeIds,
  BrowseDirection,
  DataType,
  NodeId,
  NodeIdType,
  OPCUAClient,
  MessageSecurityMode,
  SecurityPolicy,
  Variant,
  VariantArrayType,
  makeBrowsePath,
  TimestampsToReturn,
  type ClientSession,
  type DataValue,
  type QualifiedName,
} from 'node-opcua';
import { OpaqueStructure } from 'node-opcua-extension-object';
import { hashOpcuaPassword } from '../../../src/adapters/opcua/identity.ts';
import { opcuaListenerInternals } from '../../../src/adapters/opcua/adapter.ts';
import { ANNA as anna, connect, freePort, makeIdentity, makeVault, startGateway, tempDir, until, type ClientIdentity, type Gateway } from './fixtures/harness.ts';
import { NS_A, NS_B, startNsPlant, type NsPlant } from './fixtures/plant-ns.ts';

const CELL = 'ns=1;s=cell-1/Cell';

/** A raw structure body a client sends as it is (node-opcua's own OpaqueStructure does not survive its copies). */
class RawStructure extends OpaqueStructure {
  constructor(nodeIdOrCopy: NodeId | OpaqueStructure, buffer?: Buffer) {
    if (nodeIdOrCopy instanceof OpaqueStructure) super(nodeIdOrCopy.nodeId, nodeIdOrCopy.buffer);
    else super(nodeIdOrCopy, buffer!);
  }
}
const id = (path: string) => `${CELL}/${path}`;

let tmp: { dir: string; cleanup: () => void };
let plant: NsPlant;
let gw: Gateway;
let endpoint: string;
let vendorApp: ClientIdentity;
let session: ClientSession;
let closeClient: () => Promise<void>;
/** The gateway's NamespaceArray, as a client reads it. */
let table: string[];

const uriOf = (index: number) => table[index];
const gatewayIndex = (uri: string) => {
  const i = table.indexOf(uri);
  assert.ok(i > 0, `${uri} is published in the gateway's NamespaceArray`);
  return i;
};
const mirror = () => opcuaListenerInternals(gw.listeners.get('opcua-ns')!)!.gateway.mirrors.get('cell-1')!;

before(async () => {
  tmp = tempDir('penstock-opcua-ns-');
  const [plantPort, gwPort] = [await freePort(), await freePort()];
  [plant, vendorApp] = await Promise.all([startNsPlant(plantPort, join(tmp.dir, 'plant')), makeIdentity(tmp.dir, 'vendor-laptop')]);
  const vault = makeVault(tmp.dir, { 'anna-opcua': hashOpcuaPassword(anna.password) });
  gw = await startGateway(tmp.dir, `
appliance: { id: gw-ns, site: test-site, zone: plant, state_dir: ${tmp.dir}/state, runtime_dir: ${tmp.dir}/run }
journal: { path: ${tmp.dir}/journal }
vault: { file: ${vault.file}, key_file: ${vault.keyFile} }
sessions: { actions_per_second: 100000 }
listeners:
  - id: opcua-ns
    protocol: opcua
    host: 127.0.0.1
    port: ${gwPort}
    targets: [cell-1]
    trusted_clients: [${vendorApp.certFile}]
principals:
  - id: vendor-anna
    kind: vendor
    owner: Cellworks
    purpose: cell commissioning
    credentials: { opcua_user: { username: anna, password: "vault:anna-opcua" } }
targets:
  - id: cell-1
    protocol: opcua
    zone: plant
    endpoint: ${plant.endpoint}
    server_certificate: ${plant.certFile}
grants:
  - id: g-anna
    principal: vendor-anna
    targets: [cell-1]
    task: { ticket: WO-2002 }
    rules:
      - opcua: { verbs: [browse, read, subscribe], browse_paths: [Objects/Cell] }
      - opcua: { verbs: [write], nodes: ["${id('Setpoint')}"], min: 0, max: 100 }
      - opcua: { verbs: [write], nodes: ["${id('Counter')}"], min: 0, max: 1e15 }
      - opcua: { verbs: [write], nodes: ["${id('Position')}", "${id('TypeRef')}"] }
      - opcua: { verbs: [call], nodes: ["${id('Locate')}"] }
`);
  endpoint = opcuaListenerInternals(gw.listeners.get('opcua-ns')!)!.endpointUrl;
  await until(() => mirror().syncedAt > 0 && mirror().nodes.has(id('Locate')), 'the cell mirrored', 30_000);
  const c = await connect(endpoint, { identity: vendorApp, user: anna });
  session = c.session;
  closeClient = c.close;
  table = (await session.read({ nodeId: 'i=2255', attributeId: AttributeIds.Value })).value.value as string[];
});

after(async () => {
  await closeClient?.();
  await gw?.stop();
  await plant?.stop();
  tmp?.cleanup();
});

function resolved(q: QualifiedName): string {
  return `${uriOf(q.namespaceIndex)}|${q.name}`;
}

describe('OPC UA gateway: plant namespaces', () => {
  it("publishes the plant's namespace URIs, at other indexes than the plant's", () => {
    for (const uri of [NS_A, NS_B, plant.uri(1)]) gatewayIndex(uri);
    assert.notEqual(gatewayIndex(NS_A), plant.server.engine.addressSpace!.getNamespaceIndex(NS_A), 'the fixture makes the indexes differ');
    assert.notEqual(gatewayIndex(NS_B), plant.server.engine.addressSpace!.getNamespaceIndex(NS_B));
  });

  it('browse names keep their namespaces: the two Dup nodes stay distinct', async () => {
    const r = await session.browse({ nodeId: CELL, browseDirection: BrowseDirection.Forward, referenceTypeId: 'HierarchicalReferences', includeSubtypes: true, resultMask: 63 });
    const dups = (r.references ?? []).filter((ref) => ref.browseName.name === 'Dup');
    assert.equal(dups.length, 2);
    assert.deepEqual(dups.map((d) => resolved(d.browseName)).sort(), [`${NS_A}|Dup`, `${NS_B}|Dup`]);
    assert.notEqual(dups[0]!.nodeId.toString(), dups[1]!.nodeId.toString());
    const values = await session.read(dups.map((d) => ({ nodeId: d.nodeId, attributeId: AttributeIds.Value })));
    assert.deepEqual(values.map((v) => v.value.value).sort(), [1, 2], 'each Dup reads its own plant node');
    // The browse name attribute says the same, and TranslateBrowsePaths finds a node by it.
    const names = await session.read(dups.map((d) => ({ nodeId: d.nodeId, attributeId: AttributeIds.BrowseName })));
    assert.deepEqual(names.map((n) => resolved(n.value.value as QualifiedName)).sort(), [`${NS_A}|Dup`, `${NS_B}|Dup`]);
    const cell = (await session.read({ nodeId: CELL, attributeId: AttributeIds.BrowseName })).value.value as QualifiedName;
    assert.equal(resolved(cell), `${NS_A}|Cell`);
    // A browse path names each Dup by its own namespace.
    const path = await session.translateBrowsePath(makeBrowsePath('ns=1;s=cell-1', `/${gatewayIndex(NS_A)}:Cell/${gatewayIndex(NS_B)}:Dup`));
    assert.equal(path.statusCode.name, 'Good');
    assert.equal((await session.read({ nodeId: path.targets![0]!.targetId, attributeId: AttributeIds.Value })).value.value, 2, "plant-b's Dup");
  });

  it('NodeId, ExpandedNodeId and QualifiedName values, data types and argument types resolve to the plant’s URIs', async () => {
    const [typeRef, tags, link, dataType, args] = await session.read([
      { nodeId: id('TypeRef'), attributeId: AttributeIds.Value },
      { nodeId: id('Tags'), attributeId: AttributeIds.Value },
      { nodeId: id('Link'), attributeId: AttributeIds.Value },
      { nodeId: id('Position'), attributeId: AttributeIds.DataType },
      { nodeId: id('Locate/InputArguments'), attributeId: AttributeIds.Value },
    ]);
    const ref = typeRef!.value.value as NodeId;
    assert.deepEqual([uriOf(ref.namespace), ref.value], [NS_B, 3001], 'the NodeId names Point in plant-b');
    assert.deepEqual((tags!.value.value as QualifiedName[]).map(resolved), [`${NS_B}|Widget`, `${NS_A}|Gadget`]);
    const l = link!.value.value as NodeId;
    assert.deepEqual([uriOf(l.namespace), l.value], [NS_B, 'Cell.Dup']);
    const dt = dataType!.value.value as NodeId;
    assert.deepEqual([uriOf(dt.namespace), dt.value], [NS_B, 3001], 'the custom-typed variable reports its type, not BaseDataType');
    const at = (args!.value.value as { name: string; dataType: NodeId }[]).find((a) => a.name === 'at')!;
    assert.deepEqual([uriOf(at.dataType.namespace), at.dataType.value], [NS_B, 3001], 'a method argument names its type in the gateway table');
    // The mirrored data type is browsable and names its encoding, as a client needs to decode.
    const pointType = new NodeId(NodeIdType.NUMERIC, 3001, gatewayIndex(NS_B));
    const name = (await session.read({ nodeId: pointType, attributeId: AttributeIds.BrowseName })).value.value as QualifiedName;
    assert.equal(resolved(name), `${NS_B}|Point`);
  });

  it('a Point decodes on the client; a Point and a NodeId written through the gateway arrive in the plant’s namespaces', async () => {
    const dv = await session.read({ nodeId: id('Position'), attributeId: AttributeIds.Value });
    assert.equal(dv.statusCode.name, 'Good');
    const p = dv.value.value as { x: number; y: number };
    assert.deepEqual({ x: p.x, y: p.y }, { x: 1.5, y: -2 }, 'decoded with the data type the gateway mirrors');
    const point = await session.constructExtensionObject(new NodeId(NodeIdType.NUMERIC, 3001, gatewayIndex(NS_B)), { x: 3, y: 4 });
    const statuses = await session.write([
      { nodeId: id('Position'), attributeId: AttributeIds.Value, value: { value: new Variant({ dataType: DataType.ExtensionObject, value: point }) } },
      { nodeId: id('TypeRef'), attributeId: AttributeIds.Value, value: { value: new Variant({ dataType: DataType.NodeId, value: new NodeId(NodeIdType.STRING, 'Cell.Dup', gatewayIndex(NS_A)) }) } },
    ]);
    assert.deepEqual(statuses.map((s) => s.name), ['Good', 'Good']);
    assert.deepEqual(plant.position(), { x: 3, y: 4 });
    assert.deepEqual(plant.typeRef(), { uri: NS_A, id: 'Cell.Dup' }, 'the NodeId names the plant-a node at the plant');
    // And reads back in the gateway's numbering.
    const back = (await session.read({ nodeId: id('TypeRef'), attributeId: AttributeIds.Value })).value.value as NodeId;
    assert.deepEqual([uriOf(back.namespace), back.value], [NS_A, 'Cell.Dup']);
  });

  it('subscriptions deliver structures and node ids in the gateway’s numbering', async () => {
    const sub = await session.createSubscription2({ requestedPublishingInterval: 50, requestedMaxKeepAliveCount: 10, requestedLifetimeCount: 100, publishingEnabled: true });
    const seen: { position?: { x: number; y: number }; typeRef?: NodeId } = {};
    const position = await sub.monitor({ nodeId: id('Position'), attributeId: AttributeIds.Value }, { samplingInterval: 0, queueSize: 10 }, TimestampsToReturn.Both);
    position.on('changed', (dv: DataValue) => {
      const p = dv.value.value as { x?: number; y?: number } | null;
      if (typeof p?.x === 'number' && typeof p.y === 'number') seen.position = { x: p.x, y: p.y };
    });
    const typeRef = await sub.monitor({ nodeId: id('TypeRef'), attributeId: AttributeIds.Value }, { samplingInterval: 0, queueSize: 10 }, TimestampsToReturn.Both);
    typeRef.on('changed', (dv: DataValue) => {
      if (dv.value.value instanceof NodeId) seen.typeRef = dv.value.value;
    });
    await until(() => seen.position && seen.typeRef, 'the first notifications');
    assert.deepEqual(seen.position, plant.position());
    const expected = plant.typeRef();
    assert.deepEqual([uriOf(seen.typeRef!.namespace), seen.typeRef!.value], [expected.uri, expected.id]);
    await sub.terminate();
  });

  it('a call carries NodeId and structure arguments into the plant’s namespaces and its QualifiedName back', async () => {
    const at = await session.constructExtensionObject(new NodeId(NodeIdType.NUMERIC, 3001, gatewayIndex(NS_B)), { x: 5, y: 6 });
    const before = plant.arrived.length;
    const [r] = await session.call([{
      objectId: CELL,
      methodId: id('Locate'),
      inputArguments: [
        new Variant({ dataType: DataType.NodeId, value: new NodeId(NodeIdType.STRING, 'Cell.Dup', gatewayIndex(NS_B)) }),
        new Variant({ dataType: DataType.ExtensionObject, value: at }),
      ],
    }]);
    assert.equal(r!.statusCode.name, 'Good');
    assert.deepEqual(plant.arrived.slice(before), [{ kind: 'call', node: `${NS_A}|Cell.Locate`, value: { target: `${NS_B}|Cell.Dup`, at: { x: 5, y: 6 } } }]);
    assert.equal(resolved(r!.outputArguments![0]!.value as QualifiedName), `${NS_B}|Dup`);
  });

  it('one undecodable item does not spoil the batch: each item has its own status, the allowed Setpoint is applied', async () => {
    const encoding = new NodeId(NodeIdType.NUMERIC, 3002, gatewayIndex(NS_B));
    const unknown = new NodeId(NodeIdType.NUMERIC, 9999, gatewayIndex(NS_B));
    const before = plant.arrived.length;
    const mark = gw.events().length;
    const statuses = await session.write([
      // A Point whose body is 3 bytes: the gateway cannot decode it as the plant's Point.
      { nodeId: id('Position'), attributeId: AttributeIds.Value, value: { value: new Variant({ dataType: DataType.ExtensionObject, value: new RawStructure(encoding, Buffer.from([1, 2, 3])) }) } },
      // A structure of an encoding nobody knows: forwarded as it is; the plant fails the whole request.
      { nodeId: id('Position'), attributeId: AttributeIds.Value, value: { value: new Variant({ dataType: DataType.ExtensionObject, value: new RawStructure(unknown, Buffer.alloc(16)) }) } },
      { nodeId: id('Setpoint'), attributeId: AttributeIds.Value, value: { value: new Variant({ dataType: DataType.Double, value: 44 }) } },
    ]);
    assert.deepEqual(statuses.map((s) => s.name), ['BadDecodingError', 'BadDecodingError', 'Good']);
    assert.equal(plant.setpoint(), 44, 'the allowed Setpoint was applied at the plant');
    assert.deepEqual(plant.arrived.slice(before), [{ kind: 'write', node: `${NS_A}|Cell.Setpoint`, value: 44 }], 'nothing else reached the plant');
    assert.deepEqual(plant.position(), { x: 3, y: 4 }, 'Position unchanged');
    const written = () => gw.events().slice(mark).filter((e) => e.event === 'action.outcome' && e.action?.verb === 'write');
    await until(() => written().length >= 3, 'the outcomes journaled');
    const outcomes = written().map((e) => e.outcome as Record<string, unknown>);
    assert.deepEqual(outcomes.map((o) => o.status).sort(), ['BadDecodingError', 'BadDecodingError', 'Good']);
    assert.ok(outcomes.some((o) => o.status === 'BadDecodingError' && o.forwarded === false), 'the undecodable Point was never forwarded');
    assert.ok(outcomes.some((o) => o.status === 'Good' && o.sent_alone === true && o.batch_failed === 'BadDecodingError'), 'the Setpoint went alone after the batch failed');
  });

  it('an Int64 write of 42 under a rule 0..1e15 is allowed and arrives; 2^53+1 is refused exactly', async () => {
    const int64 = (v: bigint) => new Variant({ dataType: DataType.Int64, arrayType: VariantArrayType.Scalar, value: [Number(BigInt.asUintN(32, v >> 32n)), Number(BigInt.asUintN(32, v))] });
    const [ok, big, negative] = await session.write([
      { nodeId: id('Counter'), attributeId: AttributeIds.Value, value: { value: int64(42n) } },
      { nodeId: id('Counter'), attributeId: AttributeIds.Value, value: { value: int64(2n ** 53n + 1n) } },
      { nodeId: id('Counter'), attributeId: AttributeIds.Value, value: { value: int64(-1n) } },
    ]);
    assert.deepEqual([ok!.name, big!.name, negative!.name], ['Good', 'BadOutOfRange', 'BadOutOfRange']);
    assert.equal(plant.counter(), 42n);
  });

  it("the plant's Server object is not mirrored, and the mirror's size holds while plant sessions come and go", async () => {
    const r = await session.browse({ nodeId: 'ns=1;s=cell-1', browseDirection: BrowseDirection.Forward, referenceTypeId: 'HierarchicalReferences', includeSubtypes: true, resultMask: 63 });
    assert.ok(!(r.references ?? []).some((ref) => ref.browseName.name === 'Server'), 'no Server under the target folder');
    const m = mirror();
    assert.ok(![...m.nodes.values()].some((n) => n.browsePath === 'Objects/Server' || n.browsePath.startsWith('Objects/Server/')));
    const count = m.nodes.size;
    const others: { client: OPCUAClient; session: ClientSession }[] = [];
    for (let i = 0; i < 3; i++) {
      const client = OPCUAClient.create({ endpointMustExist: false, securityMode: MessageSecurityMode.None, securityPolicy: SecurityPolicy.None, connectionStrategy: { maxRetry: 0 } });
      await client.connect(plant.endpoint);
      others.push({ client, session: await client.createSession() });
    }
    await m.sync();
    assert.equal(m.nodes.size, count, 'plant sessions opened: same mirror');
    for (const o of others) {
      await o.session.close();
      await o.client.disconnect();
    }
    await m.sync();
    assert.equal(m.nodes.size, count, 'plant sessions closed: same mirror');
  });

  it('UserAccessLevel and UserExecutable say what this principal may do; AccessLevel what the plant allows', async () => {
    const dvs = await session.read([
      { nodeId: id('Setpoint'), attributeId: AttributeIds.UserAccessLevel },
      { nodeId: id('Tags'), attributeId: AttributeIds.UserAccessLevel },
      { nodeId: id('Tags'), attributeId: AttributeIds.AccessLevel },
      { nodeId: id('Locate'), attributeId: AttributeIds.UserExecutable },
      { nodeId: id('Reset'), attributeId: AttributeIds.UserExecutable },
      { nodeId: id('Dup'), attributeId: AttributeIds.UserAccessLevel },
    ]);
    assert.ok(dvs.every((d) => d.statusCode.name === 'Good'), dvs.map((d) => d.statusCode.name).join());
    const [setpoint, tags, tagsPlant, locate, reset, dup] = dvs.map((d) => d.value.value as number | boolean);
    assert.equal((setpoint as number) & 0x03, 0x03, 'Setpoint: CurrentRead | CurrentWrite (a bounded write grant)');
    assert.equal(tagsPlant, 0x03, 'the plant lets Tags be written');
    assert.equal(tags, 0x01, 'this principal may only read Tags');
    assert.equal(dup, 0x01);
    assert.equal(locate, true, 'Locate may be called');
    assert.equal(reset, false, 'Reset is visible but not granted');
  });
});
