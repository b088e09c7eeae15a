// Issue 16 end to end: the real daemon pushes its evidence over a link the test cuts, to a real
// nats-server with JetStream; the real `penstock-collector` (the bin, a child process) verifies it into a
// real PostgreSQL. Vendors write PLC registers through the Modbus front door the whole time. While the
// link is blackholed for a burst of thousands of events, the daemon and the collector are each SIGKILLed
// at a random moment and started again. Once the link is back: PostgreSQL holds every event of the
// daemon's journal exactly once, byte for byte, verified against the signed checkpoints, and every write
// a vendor had acknowledged is among them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import pg from 'pg';
import { systemClock } from '../../src/common/clock.ts';
import { LmdbJournal } from '../../src/journal/journal.ts';
import { equalBytes, leafHash, TreeBuilder } from '../../src/journal/merkle.ts';
import { Plc, freePort } from '../adapters/modbus/fixtures/harness.ts';
import { startRelay, type Relay } from '../peers/link-relay.ts';
import { startNats, type NatsCluster } from '../peers/nats-server.ts';
import { startPostgres, type Postgres } from '../peers/postgres.ts';
import { ROOT, startDaemon, tempDir, until, type DaemonProcess } from './daemon-harness.ts';
import { modbusDoorYaml } from './modbus-site.ts';

const BURST = Number(process.env.PENSTOCK_TEST_FLEET_BURST ?? 2500); // writes during the outage (2 events each)
const APPLIANCE = 'gw-fleet-e2e';
const tmp = tempDir('penstock-e2e-fleet-');
let plc: Plc | undefined;
let daemon: DaemonProcess | undefined;
let collector: ChildProcess | undefined;
let nats: NatsCluster | undefined;
let link: Relay | undefined;
let postgres: Postgres | undefined;
let db: pg.Client | undefined;

after(async () => {
  collector?.kill('SIGKILL');
  await daemon?.kill();
  await plc?.stop();
  await db?.end().catch(() => {});
  await link?.close();
  await nats?.stop();
  await postgres?.stop();
  tmp.cleanup();
});

function startCollector(configFile: string): { child: ChildProcess; log: () => string } {
  const child = spawn(join(ROOT, 'bin/penstock-collector'), ['run', '--config', configFile], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PENSTOCK_LOG_LEVEL: 'warn' } });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
  return { child, log: () => log };
}

async function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** One Modbus/TCP connection writing single registers (FC 6), one request at a time. */
class ModbusWriter {
  readonly #socket: Socket;
  #tid = 0;
  #waiting: { resolve: () => void; reject: (e: Error) => void } | undefined;
  #buffer = Buffer.alloc(0);

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (d: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, d]);
      if (this.#buffer.length < 9) return;
      const length = 6 + this.#buffer.readUInt16BE(4);
      if (this.#buffer.length < length) return;
      const frame = this.#buffer.subarray(0, length);
      this.#buffer = this.#buffer.subarray(length);
      const w = this.#waiting;
      this.#waiting = undefined;
      if (frame[7] === 6) w?.resolve();
      else w?.reject(new Error(`exception ${frame[8]}`));
    });
    const fail = () => {
      this.#waiting?.reject(new Error('connection lost'));
      this.#waiting = undefined;
    };
    socket.on('close', fail).on('error', fail);
  }

  static open(port: number): Promise<ModbusWriter> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(new ModbusWriter(s)));
      s.once('error', reject);
    });
  }

  write(address: number, value: number): Promise<void> {
    const tid = (this.#tid = (this.#tid + 1) & 0xffff);
    const frame = Buffer.alloc(12);
    frame.writeUInt16BE(tid, 0);
    frame.writeUInt16BE(6, 4);
    frame[6] = 1;
    frame[7] = 6;
    frame.writeUInt16BE(address, 8);
    frame.writeUInt16BE(value, 10);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer')), 5000);
      this.#waiting = {
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
      this.#socket.write(frame);
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}

/** A vendor writing holding registers through the front door: each acknowledged write is recorded. */
class Vendor {
  readonly acknowledged: { address: number; value: number }[] = [];
  readonly port: number;
  #next = 1;
  #stop = false;
  #done: Promise<void> | undefined;

  constructor(port: number) {
    this.port = port;
  }

  run(count: number): Promise<void> {
    this.#stop = false;
    this.#done = (async () => {
      let client: ModbusWriter | undefined;
      let written = 0;
      while (!this.#stop && written < count) {
        try {
          client ??= await ModbusWriter.open(this.port);
          const value = this.#next++ % 60000;
          const address = value % 100;
          await client.write(address, value);
          this.acknowledged.push({ address, value });
          written++;
        } catch {
          // The daemon was killed under us: reconnect once it is back.
          client?.close();
          client = undefined;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      client?.close();
    })();
    return this.#done;
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }
}

test(`a burst of ${BURST} writes during a link outage, daemon and collector SIGKILLed: every event in PostgreSQL exactly once`, async () => {
  const plcPort = await freePort();
  const modbusPort = await freePort();
  plc = await Plc.start('tcp', plcPort);
  nats = await startNats();
  link = await startRelay(nats.nodes[0]!.port);
  postgres = await startPostgres();
  const dbUrl = await postgres.createDatabase('fleet');
  db = new pg.Client({ connectionString: dbUrl });
  await db.connect();

  const yaml = `appliance: { id: ${APPLIANCE}, site: Test, zone: dmz, state_dir: ${tmp.dir}/state, runtime_dir: ${tmp.dir}/run }
journal: { path: ${tmp.dir}/journal, checkpoint_every: 500, checkpoint_seconds: 2, retention: { max_mib: 1, acknowledged_by: [push] } }
push: { servers: ["${link.url}"], batch_events: 200, checkpoint_seconds: 1 }
${modbusDoorYaml(modbusPort, plcPort)}grants:
  - { id: g-rw, principal: vendor-1, targets: [plc-1], task: { ticket: WO-16 }, rules: [{ modbus: { access: readwrite, tables: [holding_register], addresses: ["0-99"] } }] }
`;
  daemon = await startDaemon(tmp.dir, yaml);
  const vkey = (await daemon.json<{ vkey: string }>(['journal', 'status'])).vkey;

  const collectorFile = join(tmp.dir, 'collector.yaml');
  writeFileSync(join(tmp.dir, 'pg-url'), `${dbUrl}\n`, { mode: 0o600 });
  writeFileSync(collectorFile, `collector: { id: central-1 }
nats: { servers: ["${nats.urls[0]}"] }
stream: { create: true, replicas: 1 }
postgres: { url_file: ${join(tmp.dir, 'pg-url')} }
appliances:
  - { id: ${APPLIANCE}, vkey: "${vkey}" }
`);
  let c = startCollector(collectorFile);
  collector = c.child;

  const verifiedUpTo = async (): Promise<number> => {
    try {
      const r = await db!.query<{ next_seq: string }>('SELECT next_seq FROM appliances WHERE appliance = $1', [APPLIANCE]);
      return r.rows[0] ? Number(r.rows[0].next_seq) : 0;
    } catch {
      return 0; // the collector has not made its tables yet
    }
  };

  // Link up: the first writes arrive and are verified.
  const vendor = new Vendor(modbusPort);
  await vendor.run(200);
  await until(async () => (await verifiedUpTo()) >= 400, `the collector verifying the first 400 events (${c.log()})`, 60_000);

  // Link blackholed: a burst, with the daemon and the collector each SIGKILLed at a random moment of it.
  link.set('blackhole');
  const killDaemonAt = Math.floor(BURST * (0.2 + 0.6 * Math.random()));
  const killCollectorAt = Math.floor(BURST * (0.2 + 0.6 * Math.random()));
  const burst = vendor.run(BURST);
  const start = vendor.acknowledged.length;
  let daemonKilled = false;
  let collectorKilled = false;
  while (!daemonKilled || !collectorKilled) {
    const done = vendor.acknowledged.length - start;
    if (!daemonKilled && done >= killDaemonAt) {
      await daemon.kill();
      daemon = await startDaemon(tmp.dir, yaml);
      daemonKilled = true;
    }
    if (!collectorKilled && done >= killCollectorAt) {
      await killed(c.child);
      c = startCollector(collectorFile);
      collector = c.child;
      collectorKilled = true;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await burst;
  const status = await daemon.json<{ push?: { lag_events: number } }>(['status']);
  assert.ok((status.push?.lag_events ?? 0) > BURST, `the push lags by the burst while the link is cut: ${JSON.stringify(status.push)}`);

  // Link back: everything arrives. The journal's size is read after the writes stop (the daemon keeps
  // journaling its own events, each of which must arrive too: wait until a signed checkpoint covers it).
  link.set('pass');
  await vendor.stop();
  const journalSize = (await daemon.json<{ size: number }>(['journal', 'status'])).size;
  await until(async () => (await verifiedUpTo()) >= journalSize, `the collector verifying ${journalSize} events (${c.log()})`, 120_000);
  // Retention (max_mib: 1, counting the push, run once a minute) prunes what JetStream acknowledged.
  await until(async () => (await daemon!.json<{ first_retained: number }>(['journal', 'status'])).first_retained > 0, 'retention pruning acknowledged events', 90_000);
  await daemon.stop();
  await killed(c.child);

  // PostgreSQL against the journal itself, byte for byte, every seq once.
  const journal = await LmdbJournal.open({
    path: join(tmp.dir, 'journal'), mapSizeMiB: 1024, appliance: APPLIANCE,
    signingKeyPem: readFileSync(join(tmp.dir, 'state', 'keys', 'appliance-ed25519.pem'), 'utf8'),
    clock: systemClock, checkpointEvery: 500, checkpointSeconds: 3600,
  });
  const size = journal.size();
  const stored = await db.query<{ seq: string; body: string }>('SELECT seq, body FROM events WHERE appliance = $1 ORDER BY seq', [APPLIANCE]);
  const verified = await verifiedUpTo();
  assert.equal(stored.rows.length, verified, 'exactly the verified events, each once (seq is the key)');
  assert.ok(verified >= journalSize);
  const first = journal.firstRetained();
  assert.ok(first > 0, 'retention counted the push: acknowledged events were pruned from the gateway');
  // The bodies still on the gateway, byte for byte; all of them, pruned or not, by the Merkle root the
  // gateway's tree (kept forever) has at that size.
  const tree = new TreeBuilder();
  for (const [i, row] of stored.rows.entries()) {
    assert.equal(Number(row.seq), i, `seq ${i} present once`);
    if (i >= first && i < size) assert.equal(row.body, journal.readEvents(i, 1)[0]!.bytes, `event ${i} byte for byte`);
    tree.push(leafHash(Buffer.from(row.body, 'utf8')));
  }
  assert.ok(equalBytes(tree.root(), journal.rootAt(verified)), 'PostgreSQL\'s events make the journal\'s own root');
  await journal.close();

  // Every write a vendor saw acknowledged is in the evidence, with its value.
  const written = new Set(
    stored.rows
      .map((r) => JSON.parse(r.body) as { event: string; action?: { modbus?: { address: number; values?: number[] } } })
      .filter((e) => e.event === 'action.allowed' && e.action?.modbus?.values)
      .map((e) => `${e.action!.modbus!.address}=${e.action!.modbus!.values![0]}`),
  );
  const missing = vendor.acknowledged.filter((w) => !written.has(`${w.address}=${w.value}`));
  assert.deepEqual(missing.slice(0, 5), [], `${missing.length} acknowledged writes have no event in PostgreSQL`);
});
