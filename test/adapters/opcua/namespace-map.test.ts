// The namespace table between a plant and the gateway (src/adapters/opcua/namespaces.ts), on node-opcua's
// own address space and types: indexes published by URI and renumbered both ways in every value shape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AddressSpace,
  Argument,
  AttributeIds,
  BinaryStream,
  DataType,
  ExpandedNodeId,
  NodeId,
  NodeIdType,
  QualifiedName,
  Variant,
  VariantArrayType,
  WriteValue,
} from 'node-opcua';
import { OpaqueStructure } from 'node-opcua-extension-object';
import { CarriedStructure, NamespaceMap, Untranslatable } from '../../../src/adapters/opcua/namespaces.ts';

const UA = 'http://opcfoundation.org/UA/';
const PLANT = [UA, 'urn:plant:own', 'urn:plant:a', 'urn:plant:b'];

function gatewayTable(): AddressSpace {
  const as = AddressSpace.create();
  as.registerNamespace('urn:penstock:gateway'); // the gateway's own namespace, index 1
  return as;
}

const nid = (ns: number, v: string | number) => new NodeId(typeof v === 'number' ? NodeIdType.NUMERIC : NodeIdType.STRING, v, ns);

test('plant URIs are published once, by URI, after the gateway’s own namespace', () => {
  const as = gatewayTable();
  const registered: number[] = [];
  const map = new NamespaceMap(PLANT, as, { onRegistered: (i) => registered.push(i) });
  assert.deepEqual(registered, [2, 3, 4]);
  assert.deepEqual(as.getNamespaceArray().map((n) => n.namespaceUri), ['http://opcfoundation.org/UA/', 'urn:penstock:gateway', ...PLANT.slice(1)]);
  assert.deepEqual([0, 1, 2, 3].map((i) => map.gatewayIndex(i)), [0, 2, 3, 4]);
  // Another plant (or the same one after a restart) with the URIs in another order: same gateway indexes.
  const again = new NamespaceMap([UA, 'urn:plant:b', 'urn:plant:own'], as, { onRegistered: (i) => registered.push(i) });
  assert.deepEqual(registered, [2, 3, 4], 'nothing registered twice');
  assert.deepEqual([1, 2].map((i) => again.gatewayIndex(i)), [4, 2]);
  assert.equal(again.plantIndex(4), 1);
  assert.equal(again.plantIndex(3), undefined, 'urn:plant:a is not in this plant');
});

test('node ids, expanded node ids and qualified names are renumbered in values, arrays and structures', () => {
  const map = new NamespaceMap(PLANT, gatewayTable());
  const up = map.variantToGateway(new Variant({ dataType: DataType.NodeId, value: nid(2, 'Cell.Dup') }));
  assert.equal((up.value as NodeId).toString(), 'ns=3;s=Cell.Dup');
  const names = map.variantToGateway(new Variant({ dataType: DataType.QualifiedName, arrayType: VariantArrayType.Array, value: [new QualifiedName({ name: 'W', namespaceIndex: 3 }), new QualifiedName({ name: 'Z', namespaceIndex: 0 })] }));
  assert.deepEqual((names.value as QualifiedName[]).map((q) => q.toString()), ['4:W', 'Z']);
  const byUri = new ExpandedNodeId(NodeIdType.NUMERIC, 7, 0, 'urn:plant:a');
  assert.equal(map.variantToGateway(new Variant({ dataType: DataType.ExpandedNodeId, value: byUri })).value, byUri, 'a namespace URI needs no index');
  const expanded = map.variantToGateway(new Variant({ dataType: DataType.ExpandedNodeId, value: new ExpandedNodeId(NodeIdType.NUMERIC, 7, 3) })).value as ExpandedNodeId;
  assert.equal(expanded.namespace, 4);
  // A standard structure with a NodeId field (a method argument's data type): renumbered in a copy.
  const arg = new Argument({ name: 'at', dataType: nid(3, 3001), valueRank: -1 });
  const [moved] = map.valueToGateway([arg]);
  assert.ok(moved instanceof Argument);
  assert.equal(moved.dataType.toString(), 'ns=4;i=3001');
  assert.equal(arg.dataType.toString(), 'ns=3;i=3001', 'the plant leg’s value is left as it was (watchers share it)');
  // Numbers pass untouched, and fast: the same Variant comes back.
  const doubles = new Variant({ dataType: DataType.Double, arrayType: VariantArrayType.Array, value: new Float64Array(1000) });
  assert.equal(map.variantToGateway(doubles), doubles);
});

test('toward the plant: back to its indexes; a gateway node named by its plant id; an unknown namespace refused', async () => {
  const map = new NamespaceMap(PLANT, gatewayTable(), { ownNode: (id) => (id.toString() === 'ns=1;s=cell-1/Cell/Dup' ? nid(2, 'Cell.Dup') : undefined) });
  const none = async () => undefined;
  const down = await map.variantToPlant(new Variant({ dataType: DataType.NodeId, arrayType: VariantArrayType.Array, value: [nid(4, 3001), nid(1, 'cell-1/Cell/Dup'), nid(0, 11)] }), none);
  assert.deepEqual((down.value as NodeId[]).map((n) => n.toString()), ['ns=3;i=3001', 'ns=2;s=Cell.Dup', 'ns=0;i=11']);
  await assert.rejects(map.variantToPlant(new Variant({ dataType: DataType.NodeId, value: nid(1, 'cell-1/Nowhere') }), none), (err: unknown) => err instanceof Untranslatable && err.status.name === 'BadNodeIdUnknown');
  await assert.rejects(map.variantToPlant(new Variant({ dataType: DataType.QualifiedName, value: new QualifiedName({ name: 'x', namespaceIndex: 9 }) }), none), Untranslatable);
  // A body of a type the plant does not know goes as it is, under the plant's encoding id.
  const opaque = await map.variantToPlant(new Variant({ dataType: DataType.ExtensionObject, value: new CarriedStructure(nid(4, 9999), Buffer.alloc(4)) }), none);
  assert.equal((opaque.value as OpaqueStructure).nodeId.toString(), 'ns=3;i=9999');
});

test('a carried structure survives node-opcua’s copies (its own OpaqueStructure does not)', () => {
  const roundTrip = (value: OpaqueStructure) => {
    const w = new WriteValue({ nodeId: 'ns=1;s=x', attributeId: AttributeIds.Value, value: { value: new Variant({ dataType: DataType.ExtensionObject, value }) } });
    const stream = new BinaryStream(w.binaryStoreSize());
    w.encode(stream);
    const back = new WriteValue();
    back.decode(new BinaryStream(stream.buffer));
    return back.value.value.value as OpaqueStructure | Record<string, never>;
  };
  const carried = roundTrip(new CarriedStructure(nid(4, 3002), Buffer.from([1, 2, 3, 4])));
  assert.ok(carried instanceof OpaqueStructure);
  assert.equal(carried.nodeId.toString(), 'ns=4;i=3002');
  assert.deepEqual([...carried.buffer], [1, 2, 3, 4]);
  assert.ok(!(roundTrip(new OpaqueStructure(nid(4, 3002), Buffer.from([1, 2, 3, 4]))) instanceof OpaqueStructure), 'why CarriedStructure exists');
});

test('a value nested beyond the limit is refused, not walked forever', () => {
  const map = new NamespaceMap(PLANT, gatewayTable());
  let v = new Variant({ dataType: DataType.NodeId, value: nid(2, 'deep') });
  for (let i = 0; i < 40; i++) v = new Variant({ dataType: DataType.Variant, value: v });
  assert.throws(() => map.variantToGateway(v), (err: unknown) => err instanceof Untranslatable && err.status.name === 'BadEncodingLimitsExceeded');
});
