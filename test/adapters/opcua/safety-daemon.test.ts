// Issue 12, defects 1 and 2, against the daemon as shipped: dist/main.js with systemd/penstock.service's
// V8 flags (--max-old-space-size=128) and malloc settings, real journal, admin socket, OPC UA front
// door, in front of a node-opcua plant holding an Int32 array. An allowed write of 2,000,000 Int32
// (8 MB) ended that daemon with "JavaScript heap out of memory"; four unauthenticated connections
// asking for 128 MiB messages took it from 392 to ~730 MiB RSS. Needs `npm run build`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AttributeIds, DataType, MessageSecurityMode, OPCUAServer, SecurityPolicy, VariantArrayType } from 'node-opcua';
import { hashOpcuaPassword } from '../../../src/adapters/opcua/identity.ts';
import { shippedDaemon } from '../../../scripts/shipped-daemon.ts';
import { ROOT, startDaemon, type DaemonProcess } from '../../e2e/daemon-harness.ts';
import { ANNA as anna, connect, freePort, makeIdentity, makeVault, tempDir, until, type ClientIdentity } from './fixtures/harness.ts';
import { intermediateChunk, openNoneChannel, readFrame } from './fixtures/raw.ts';

const MiB = 1024 * 1024;
const ELEMENTS = 2_000_000;
const BIG = 'ns=1;s=line-1/Big';

let tmp: { dir: string; cleanup: () => void };
let plant: OPCUAServer;
let daemon: DaemonProcess;
let gwPort: number;
let vendorApp: ClientIdentity;
let initialSha256: string;

/** Resident and peak memory of a process, MiB (/proc/PID/status). */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1]) / 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

interface JournalEvent {
  event?: string;
  action?: { verb?: string; opcua?: { node_id?: string } };
  detail?: Record<string, unknown>;
  outcome?: Record<string, unknown>;
}

/** The array the plant holds now (read in its own address space). */
function plantArray(): Int32Array {
  return (plant.engine.addressSpace!.findNode('ns=1;s=Big') as unknown as { readValue(): { value: { value: Int32Array } } }).readValue().value.value;
}

async function journalTail(n: number): Promise<JournalEvent[]> {
  const r = await daemon.json<{ events: { seq: number; event: JournalEvent }[] }>(['journal', 'tail', '-n', String(n)]);
  return r.events.map((e) => e.event);
}

before(async () => {
  const shipped = shippedDaemon(ROOT);
  if (!existsSync(shipped.main)) throw new Error(`${shipped.main} is missing: run npm run build first`);
  tmp = tempDir('penstock-opcua-safety-daemon-');
  const plantPort = await freePort();
  gwPort = await freePort();
  // A line controller with a recipe table: an Int32 array of 2,000,000 the vendor may rewrite whole.
  plant = new OPCUAServer({ port: plantPort, host: '127.0.0.1', hostname: '127.0.0.1', allowAnonymous: true, isAuditing: false, securityModes: [MessageSecurityMode.None], securityPolicies: [SecurityPolicy.None] });
  await plant.initialize();
  const ns = plant.engine.addressSpace!.getOwnNamespace();
  const initial = Int32Array.from({ length: ELEMENTS }, (_, i) => i);
  initialSha256 = createHash('sha256').update(Buffer.from(initial.buffer)).digest('hex');
  ns.addVariable({
    organizedBy: plant.engine.addressSpace!.rootFolder.objects, browseName: 'Big', nodeId: 's=Big', dataType: 'Int32', valueRank: 1, arrayDimensions: [0],
    accessLevel: 'CurrentRead | CurrentWrite', userAccessLevel: 'CurrentRead | CurrentWrite',
    value: { dataType: DataType.Int32, arrayType: VariantArrayType.Array, value: initial },
  });
  await plant.start();
  vendorApp = await makeIdentity(tmp.dir, 'vendor-laptop');
  const vault = makeVault(tmp.dir, { 'anna-opcua': hashOpcuaPassword(anna.password) });
  daemon = await startDaemon(tmp.dir, `
appliance: { id: gw-shipped, site: test-site, zone: plant, state_dir: ${tmp.dir}/state, runtime_dir: ${tmp.dir}/run }
journal: { path: ${tmp.dir}/journal, map_size_mib: 256 }
vault: { file: ${vault.file}, key_file: ${vault.keyFile} }
sessions: { actions_per_second: 100000 }
listeners:
  - id: opcua-main
    protocol: opcua
    host: 127.0.0.1
    port: ${gwPort}
    targets: [line-1]
    allow_security_none: true
    trusted_clients: [${vendorApp.certFile}]
principals:
  - id: vendor-anna
    kind: vendor
    owner: Linebuilders GmbH
    purpose: recipe download
    credentials: { opcua_user: { username: anna, password: "vault:anna-opcua" } }
targets:
  - id: line-1
    protocol: opcua
    zone: plant
    endpoint: opc.tcp://127.0.0.1:${plantPort}
    security_mode: None
    timeout_ms: 60000
grants:
  - id: g-anna
    principal: vendor-anna
    targets: [line-1]
    task: { ticket: WO-2002 }
    rules:
      - opcua: { verbs: [browse, read, write], nodes: ["${BIG}"] }
`, { main: [...shipped.flags, shipped.main], env: shipped.env });
});

after(async () => {
  await daemon?.stop();
  await plant?.shutdown(0);
  tmp?.cleanup();
});

describe('the daemon as shipped (128 MiB V8 heap)', () => {
  it('survives an allowed write of 2,000,000 Int32, and journals its evidence as size and SHA-256', async () => {
    const c = await connect(`opc.tcp://127.0.0.1:${gwPort}`, { identity: vendorApp, user: anna });
    try {
      await until(async () => (await c.session.read({ nodeId: BIG, attributeId: AttributeIds.Value })).statusCode.name === 'Good' || undefined, 'the plant mirrored', 30_000);
      const value = new Int32Array(ELEMENTS);
      for (let i = 0; i < ELEMENTS; i++) value[i] = (i * 2654435761) | 0;
      const [status] = await c.session.write([{ nodeId: BIG, attributeId: AttributeIds.Value, value: { value: { dataType: DataType.Int32, arrayType: VariantArrayType.Array, value } } }]).catch((err: Error) => {
        throw new Error(`the write failed on the wire (${err.message}); daemon exit code ${daemon.child.exitCode}, stderr: ${daemon.stderr().slice(-600)}`);
      });
      assert.ok(['Good', 'BadRequestTooLarge', 'BadEncodingLimitsExceeded'].includes(status!.name), `written or refused cleanly: ${status!.name}`);
      assert.equal(daemon.child.exitCode, null, `the daemon is up: ${daemon.stderr()}`);
      assert.doesNotMatch(daemon.stderr(), /heap out of memory/);
      assert.equal((await daemon.ctl(['status'])).code, 0, 'the admin socket answers');
      const sha256 = createHash('sha256').update(Buffer.from(value.buffer, value.byteOffset, value.byteLength)).digest('hex');
      const events = await journalTail(50);
      if (status!.name === 'Good') {
        const plantValue = plantArray();
        assert.equal(plantValue.length, ELEMENTS, 'the plant holds the array written');
        assert.equal(plantValue[ELEMENTS - 1], value[ELEMENTS - 1]);
        const allowed = events.find((e) => e.event === 'action.allowed' && e.action?.verb === 'write' && e.action.opcua?.node_id === BIG);
        assert.ok(allowed, 'the write journaled before it was forwarded');
        assert.deepEqual((allowed.detail?.new_values as unknown[] | undefined)?.[0], { type: 'Int32', dimensions: [ELEMENTS], bytes: 4 * ELEMENTS, sha256, excerpt: Array.from(value.subarray(0, 16)) });
        assert.deepEqual((allowed.detail?.old_values as unknown[] | undefined)?.[0], { type: 'Int32', dimensions: [ELEMENTS], bytes: 4 * ELEMENTS, sha256: initialSha256, excerpt: Array.from({ length: 16 }, (_, i) => i) });
        const outcome = events.find((e) => e.event === 'action.outcome' && e.action?.opcua?.node_id === BIG);
        assert.equal(outcome?.outcome?.status, 'Good');
      } else {
        const refusal = events.find((e) => e.event === 'action.malformed' && e.detail?.node_id === BIG);
        assert.equal(refusal?.detail?.bytes, 4 * ELEMENTS, 'the refusal journaled with the size refused');
      }
      // Still serving.
      const dv = await c.session.read({ nodeId: BIG, attributeId: AttributeIds.Value });
      assert.equal(dv.statusCode.name, 'Good');
    } finally {
      await c.close();
    }
  });

  it('refuses, before any work, a write whose value would not fit the heap: BadRequestTooLarge, journaled, the plant untouched', async () => {
    const c = await connect(`opc.tcp://127.0.0.1:${gwPort}`, { identity: vendorApp, user: anna });
    try {
      const held = plantArray();
      const heldLength = held.length;
      const heldLast = held[heldLength - 1];
      // 14 MB: under the 16 MiB message the front door agrees to, over the 11 MiB a request may carry.
      const value = new Int32Array(3_500_000).fill(7);
      const [status] = await c.session.write([{ nodeId: BIG, attributeId: AttributeIds.Value, value: { value: { dataType: DataType.Int32, arrayType: VariantArrayType.Array, value } } }]);
      assert.equal(status!.name, 'BadRequestTooLarge');
      assert.equal(plantArray().length, heldLength, 'the plant never saw the write');
      assert.equal(plantArray()[heldLength - 1], heldLast);
      const events = await journalTail(20);
      const refusal = events.find((e) => e.event === 'action.malformed' && e.detail?.node_id === BIG);
      assert.equal(refusal?.detail?.bytes, value.byteLength, 'journaled with the size refused');
      assert.equal(refusal?.detail?.status, 'BadRequestTooLarge');
      assert.ok(!events.some((e) => e.event === 'action.allowed' && e.action?.opcua?.node_id === BIG && ((e.detail?.new_values as { bytes?: number }[] | undefined)?.[0])?.bytes === value.byteLength), 'never decided on, never forwarded');
      assert.equal(daemon.child.exitCode, null);
      assert.equal((await c.session.read({ nodeId: BIG, attributeId: AttributeIds.Value })).statusCode.name, 'Good');
    } finally {
      await c.close();
    }
  });

  it('four unauthenticated connections asking for 128 MiB messages and sending 40 MiB each leave RSS bounded', async () => {
    const pid = daemon.child.pid!;
    const url = `opc.tcp://127.0.0.1:${gwPort}`;
    const base = memoryOf(pid);
    // This test's own peak (VmHWM still holds the large write's): RSS sampled while the chunks go in.
    let peak = base.rss;
    const sampler = setInterval(() => (peak = Math.max(peak, memoryOf(pid).rss)), 25);
    const channels = await Promise.all(Array.from({ length: 4 }, () => openNoneChannel(gwPort, url, { maxMessageSize: 128 * MiB, maxChunkCount: 9000 })));
    // One message that never ends, in 64 KiB chunks, on each channel: 40 MiB each unless the gateway stops it.
    const answers = channels.map((ch) => readFrame(ch.socket, 10_000).catch((e: Error) => e.message));
    const closed = channels.map((ch) => new Promise<void>((resolve) => ch.socket.once('close', () => resolve())));
    const sent = await Promise.all(channels.map(async (ch) => {
      let bytes = 0;
      for (let k = 0; k < 640 && !ch.socket.destroyed && ch.socket.writable; k++) {
        const c = intermediateChunk(ch.ids, 2 + k, 65536 - 24);
        bytes += c.length;
        if (!ch.socket.write(c)) await new Promise((resolve) => ch.socket.once('drain', resolve).once('close', resolve));
      }
      return bytes;
    }));
    const frames = await Promise.all(answers);
    console.log(JSON.stringify({ sent_mib: sent.map((b) => Math.round(b / MiB)), answers: frames.map((f) => (typeof f === 'string' ? f : f.subarray(0, 4).toString('latin1'))) }));
    // The gateway stops each message at the size it negotiated (16 MiB) and closes the connection.
    const allClosed = await Promise.race([Promise.all(closed).then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), 10_000))]);
    channels.forEach((ch) => ch.socket.destroy());
    // What stays: RSS a second after the connections are gone (a measurement delay, nothing to await).
    await new Promise((resolve) => setTimeout(resolve, 1000));
    clearInterval(sampler);
    const now = memoryOf(pid);
    console.log(JSON.stringify({ rss_before_mib: Math.round(base.rss), peak_mib: Math.round(peak), rss_after_mib: Math.round(now.rss) }));
    assert.ok(allClosed, 'the gateway closed every connection');
    // Not asserted: what the client managed to write. Between it and what the gateway read sit the two
    // kernels' buffers (the gateway's receive buffer autotunes up to tcp_rmem's maximum, 32 MiB on these
    // machines), and under load the whole 40 MiB was seen written while the gateway answered ERR. What
    // the gateway holds is the far side: its RSS below, bounded by four 16 MiB messages and slack.
    assert.ok(peak - base.rss < 4 * 16 + 48, `RSS peaked ${Math.round(peak - base.rss)} MiB above ${Math.round(base.rss)}`);
    assert.ok(now.rss - base.rss < 96, `RSS grew ${Math.round(now.rss - base.rss)} MiB and stayed (from ${Math.round(base.rss)})`);
    assert.equal(daemon.child.exitCode, null);
  });
});
