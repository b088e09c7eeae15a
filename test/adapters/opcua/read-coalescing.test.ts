// Reads of the same plant nodes by different sessions in one turn of the event loop go upstream as one
// read (issue 17): the plant counts what reaches it. Each session's items are still allowed or refused
// for it alone, with its own Authorization, and each gets its own DataValues.
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { AttributeIds, type ClientSession } from 'node-opcua';
import { isPenstockError } from '../../../src/common/errors.ts';
import type { RunningListener } from '../../../src/adapters/types.ts';
import { opcuaAdapter, opcuaListenerInternals } from '../../../src/adapters/opcua/adapter.ts';
import type { OpcuaGateway } from '../../../src/adapters/opcua/gateway.ts';
import { openTestSession, startTestCore, type TestCore } from '../../core-harness.ts';
import { ANNA as anna, BOB as bob, connect, freePort, makeIdentity, twoVendorSite, tempDir, until } from './fixtures/harness.ts';
import { startPlant, type Plant } from './fixtures/plant.ts';

const NS = 'ns=1;s=boiler-1';
const LEVEL = `${NS}/Boiler/Drum/Level`;
const FUEL = `${NS}/Boiler/Burner/FuelValve`;

let tmp: { dir: string; cleanup: () => void };
let plant: Plant;
let t: TestCore;
let listener: RunningListener;
let gateway: OpcuaGateway;
const clients: { session: ClientSession; close: () => Promise<void> }[] = [];

before(async () => {
  tmp = tempDir('penstock-opcua-coalesce-');
  const [plantPort, gwPort] = [await freePort(), await freePort()];
  const [p, app] = await Promise.all([startPlant(plantPort, join(tmp.dir, 'plant')), makeIdentity(tmp.dir, 'vendor-laptop')]);
  plant = p;
  t = await startTestCore(tmp.dir, twoVendorSite(tmp.dir, gwPort, app, plant, `
sessions: { actions_per_second: 100000 }
grants:
  - { id: g-anna, principal: vendor-anna, targets: [boiler-1], task: { ticket: WO-1 }, rules: [ { opcua: { verbs: [read], nodes: ["${LEVEL}", "${FUEL}"] } } ] }
  - { id: g-bob, principal: vendor-bob, targets: [boiler-1], task: { ticket: WO-2 }, rules: [ { opcua: { verbs: [read], nodes: ["${LEVEL}"] } } ] }
`));
  listener = await opcuaAdapter.start(t.config.listeners[0]!, t.core);
  gateway = opcuaListenerInternals(listener)!.gateway;
  await until(() => gateway.locate(FUEL) !== undefined && gateway.upstreams.get('boiler-1')!.up, 'the plant mirrored and the link up', 20_000);
  const endpoint = opcuaListenerInternals(listener)!.endpointUrl;
  clients.push(await connect(endpoint, { identity: app, user: anna }), await connect(endpoint, { identity: app, user: bob }));
});

after(async () => {
  for (const c of clients) await c.close();
  await listener?.close();
  await t?.stop();
  await plant?.stop();
  tmp?.cleanup();
});

it('sessions reading the same node in one turn, or while its read is on its way: one read reaches the plant for them, each gets its own value object', async () => {
  const upstream = gateway.upstreams.get('boiler-1')!;
  const fuel = gateway.locate(FUEL)!;
  const [s1, s2] = [openTestSession(t.core, 'vendor-anna', 'boiler-1'), openTestSession(t.core, 'vendor-anna', 'boiler-1')];
  const a1 = (await t.core.authorize(s1, gateway.readValueAction(fuel.node))).authorization!;
  const a2 = (await t.core.authorize(s2, gateway.readValueAction(fuel.node))).authorization!;
  assert.ok(a1 && a2);
  const id = { nodeId: fuel.node.upstreamId, attributeId: AttributeIds.Value };
  // What one read of the valve counts on the plant (node-opcua may ask its getter more than once).
  let hits = plant.hits.fuelValveReads;
  await upstream.read(s1.id, [id], [a1]);
  const perRead = plant.hits.fuelValveReads - hits;
  assert.ok(perRead >= 1);
  [hits] = [plant.hits.fuelValveReads];
  const reads = upstream.stats.reads;
  // Same turn: both join one upstream read. A third read carrying another session's Authorization is
  // refused on its own (nothing sent for it) and does not disturb the two.
  const p1 = upstream.read(s1.id, [id], [a1]);
  const p2 = upstream.read(s2.id, [{ ...id }, { ...id }], [a2, a2]);
  const forged = upstream.read(s2.id, [id], [a1]);
  await assert.rejects(forged, (err) => isPenstockError(err) && err.code === 'PS_INTERNAL');
  const [[d1], [d2, d3]] = await Promise.all([p1, p2]);
  assert.equal(plant.hits.fuelValveReads, hits + perRead, 'the node was read once on the plant for both sessions');
  assert.equal(upstream.stats.reads, reads + 1, 'one upstream request');
  for (const d of [d1, d2, d3]) assert.equal(d!.statusCode.name, 'Good');
  assert.equal(d2!.value.value, d1!.value.value);
  assert.equal(d3!.value.value, d1!.value.value);
  assert.ok(d1 !== d2 && d2 !== d3 && d1 !== d3, 'each reader has its own DataValue');
  d1!.value.value = -1;
  assert.notEqual(d2!.value.value, -1, 'what one reader does to its value does not reach another');

  // Reads one after the other are not joined: a value read before a request arrived is never its answer.
  await upstream.read(s1.id, [id], [a1]);
  await upstream.read(s2.id, [id], [a2]);
  assert.equal(plant.hits.fuelValveReads, hits + 3 * perRead);

  // Reads of a node whose read is on its way wait for it and then go together. The plant runs in this
  // process: it cannot see the request before the loop's next poll, and its answer cannot arrive here
  // before the poll after that, so the first read is still on its way one turn after it was sent.
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  const r0 = upstream.stats.reads;
  const first = upstream.read(s1.id, [id], [a1]);
  await turn(); // the first read has gone
  const second = upstream.read(s2.id, [id], [a2]);
  await turn();
  const third = upstream.read(s1.id, [id], [a1]);
  const answers = await Promise.all([first, second, third]);
  assert.equal(upstream.stats.reads, r0 + 2, 'the second and third read went upstream together, after the first came back');
  assert.equal(plant.hits.fuelValveReads, hits + 5 * perRead);
  for (const [d] of answers) assert.equal(d!.statusCode.name, 'Good');
  // Different nodes are joined only up to the size of the largest request: two single reads of
  // different nodes stay two requests of one node each.
  const level = gateway.locate(LEVEL)!;
  const l1 = (await t.core.authorize(s1, gateway.readValueAction(level.node))).authorization!;
  const before = upstream.stats.reads;
  await Promise.all([upstream.read(s1.id, [id], [a1]), upstream.read(s1.id, [{ nodeId: level.node.upstreamId, attributeId: AttributeIds.Value }], [l1])]);
  assert.equal(upstream.stats.reads, before + 2);
});

it('through the front door, concurrent reads of two principals: each item allowed or refused for its own session', async () => {
  const [annaS, bobS] = clients.map((c) => c.session) as [ClientSession, ClientSession];
  const items = [{ nodeId: LEVEL, attributeId: AttributeIds.Value }, { nodeId: FUEL, attributeId: AttributeIds.Value }];
  const perRead = await (async () => {
    const before = plant.hits.fuelValveReads;
    await annaS.read(items);
    return plant.hits.fuelValveReads - before;
  })();
  const hits = plant.hits.fuelValveReads;
  const rounds = 10;
  for (let i = 0; i < rounds; i++) {
    const [a, b] = await Promise.all([annaS.read(items), bobS.read(items)]);
    assert.deepEqual(a.map((d) => d.statusCode.name), ['Good', 'Good']);
    assert.deepEqual(b.map((d) => d.statusCode.name), ['Good', 'BadUserAccessDenied']);
  }
  // Bob's refused items never reached the plant: at most one valve read per round (Anna's).
  assert.ok(plant.hits.fuelValveReads - hits <= rounds * perRead, `${plant.hits.fuelValveReads - hits} valve reads for ${rounds} rounds`);
  assert.ok(plant.hits.fuelValveReads - hits >= 1);
  // Each session's reads are its own evidence: both front-door sessions have their read aggregate.
  const ids = ['vendor-anna', 'vendor-bob'].map((p) => t.core.sessions.list().find((s) => s.principal.id === p && s.protocol === 'opcua')!.id);
  await t.core.drain();
  await t.core.recorded();
  const aggregated = new Set(t.events().filter((e) => e.event === 'reads.aggregate').map((e) => (e as { session?: string }).session));
  for (const id of ids) assert.ok(aggregated.has(id), `a read aggregate for session ${id}`);
});
