// `npm run demo`: the built-in demo site. Starts two simulated inverters (Modbus/TCP) and a simulated
// boiler (OPC UA) on loopback, makes the demo OPC UA client's certificate and the vault, writes the demo
// config into a folder of its own, runs the real daemon on it, and prints what to try.
// Ctrl-C stops everything.
//
// Environment: PENSTOCK_DEMO_DIR (the folder; default one per user under the temp folder),
// PENSTOCK_DEMO_PORTS (five loopback ports "MODBUS,INVERTER1,DER1,BOILER,OPCUA": the Modbus front door,
// the two simulated inverters, the simulated boiler, the OPC UA front door; default
// 1502,15020,15021,14840,4840), PENSTOCK_LOG_LEVEL (the daemon's, default warn).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument, isMap, isSeq, type Document } from 'yaml';
import { loadFirmwareProfile } from '../src/config/profiles.ts';
import { adminRequest } from '../src/admin/client.ts';
import { Vault } from '../src/vault/vault.ts';
import { hashOpcuaPassword } from '../src/adapters/opcua/identity.ts';
import { startSimulatedPlc } from './demo/plc-sim.ts';
import { startPlant, type PlantReach } from './demo/boiler-plant.ts';
import {
  DEMO_OPCUA_LISTENER,
  DEMO_OPCUA_TARGET,
  DEMO_OPCUA_USER,
  demoClientFiles,
  demoDir,
  ensureDemoClientCertificate,
  gatewayCertificateFile,
  trustGatewayCertificate,
} from './demo/opcua-demo.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = demoDir();
const ports = demoPorts(process.env.PENSTOCK_DEMO_PORTS ?? '1502,15020,15021,14840,4840');
mkdirSync(dir, { recursive: true, mode: 0o700 });
const configFile = join(dir, 'penstock.yaml');
const socket = join(dir, 'run', 'admin.sock');

function demoPorts(spec: string): { modbus: number; inverter1: number; der1: number; boiler: number; opcua: number } {
  const list = spec.split(',').map((s) => Number(s.trim()));
  if (list.length !== 5 || !list.every((p) => Number.isInteger(p) && p > 0 && p < 65536)) {
    console.error(`demo: PENSTOCK_DEMO_PORTS must be five ports "MODBUS,INVERTER1,DER1,BOILER,OPCUA", got "${spec}"`);
    process.exit(2);
  }
  const [modbus, inverter1, der1, boiler, opcua] = list as [number, number, number, number, number];
  return { modbus, inverter1, der1, boiler, opcua };
}

// ------------------------------------------------------------------ everything started, stopped in reverse

const stops: (() => Promise<void>)[] = [];
let stopping: Promise<never> | undefined;
function shutdown(code: number): Promise<never> {
  stopping ??= (async () => {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => console.error(`demo: while stopping: ${(err as Error).message}`));
    process.exit(code);
  })();
  return stopping;
}
process.once('SIGINT', () => void shutdown(0));
process.once('SIGTERM', () => void shutdown(0));

/** The demo config: site.yaml plus site-opcua.yaml (their lists joined), for this folder and these ports. */
function siteConfig(): string {
  const read = (name: string) => parseDocument(readFileSync(join(root, 'scripts/demo', name), 'utf8').replaceAll('@STATE@', dir));
  const doc = read('site.yaml');
  const opcua = read('site-opcua.yaml');
  if (!isMap(opcua.contents)) throw new Error('site-opcua.yaml is not a mapping');
  const top = doc.contents;
  if (!isMap(top)) throw new Error('site.yaml is not a mapping');
  for (const pair of opcua.contents.items) {
    const key = String((pair.key as { value: unknown }).value);
    const have = doc.get(key, true);
    if (isSeq(have) && isSeq(pair.value)) {
      // A comment above a list's first entry belongs to that entry once the lists are joined.
      const [first] = pair.value.items;
      if (pair.value.commentBefore && isMap(first)) first.commentBefore = pair.value.commentBefore;
      have.items.push(...pair.value.items);
    } else if (have === undefined) {
      // New sections (vault) go before the lists, where a reader looks for settings.
      const at = top.items.findIndex((p) => isSeq(p.value));
      top.items.splice(at < 0 ? top.items.length : at, 0, pair);
    } else throw new Error(`site-opcua.yaml: ${key} is also in site.yaml and is not a list`);
  }
  setEntry(doc, 'listeners', 'modbus-demo', 'port', ports.modbus);
  setEntry(doc, 'targets', 'inverter-1', 'port', ports.inverter1);
  setEntry(doc, 'targets', 'der-1', 'port', ports.der1);
  setEntry(doc, 'targets', DEMO_OPCUA_TARGET, 'endpoint', `opc.tcp://127.0.0.1:${ports.boiler}`);
  setEntry(doc, 'listeners', DEMO_OPCUA_LISTENER, 'port', ports.opcua);
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}

function setEntry(doc: Document, list: string, id: string, key: string, value: number | string): void {
  const seq = doc.get(list, true);
  const item = isSeq(seq) ? seq.items.find((i) => isMap(i) && i.get('id') === id) : undefined;
  if (!isMap(item)) throw new Error(`demo config: no ${list} entry ${id}`);
  item.set(key, value);
}

/** The vault (made on first run) with the demo user's password hash: the config's `vault:` points here. */
function writeVault(): void {
  const keyFile = join(dir, 'vault.key');
  if (!existsSync(keyFile)) Vault.createKeyFile(keyFile);
  Vault.open(join(dir, 'vault.json'), keyFile).set(DEMO_OPCUA_USER.vaultEntry, hashOpcuaPassword(DEMO_OPCUA_USER.password));
}

function describeReach(r: PlantReach): string {
  return r.kind === 'write' ? `write reached the boiler: ${r.path} <- ${String(r.value)}` : `call reached the boiler: ${r.path}(${r.args.map((a) => JSON.stringify(a)).join(', ')})`;
}

/** Wait until the OPC UA front door has mirrored the boiler (before that, its nodes are unknown there). */
async function waitMirrored(daemon: ReturnType<typeof spawn>): Promise<void> {
  for (let i = 0; i < 150; i++) {
    if (daemon.exitCode !== null) throw new Error(`the daemon exited with code ${daemon.exitCode}`);
    const status = (await adminRequest(socket, 'status', {}, { timeoutMs: 1000 }).catch(() => undefined)) as { listeners?: { id: string; targets?: { id: string; mirrored_at: string | null }[] }[] } | undefined;
    const boiler = status?.listeners?.find((l) => l.id === DEMO_OPCUA_LISTENER)?.targets?.find((t) => t.id === DEMO_OPCUA_TARGET);
    if (boiler?.mirrored_at) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  console.error(`demo: the OPC UA front door has not mirrored ${DEMO_OPCUA_TARGET} yet; its nodes appear once it has`);
}

async function waitReady(daemon: ReturnType<typeof spawn>): Promise<void> {
  for (let i = 0; i < 150; i++) {
    if (daemon.exitCode !== null) throw new Error(`the daemon exited with code ${daemon.exitCode}`);
    try {
      await adminRequest(socket, 'status', {}, { timeoutMs: 1000 });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error('the daemon did not become ready');
}

try {
  for (const [name, port] of [['fronius-symo-intsf', ports.inverter1], ['sunspec-der-1547', ports.der1]] as const) {
    const plc = await startSimulatedPlc(loadFirmwareProfile(name), port, (address, values) => {
      console.log(`[plc ${name}] write reached the PLC: address ${address} <- ${values.join(', ')}`);
    });
    stops.push(() => plc.close());
  }

  const boiler = await startPlant(ports.boiler, join(dir, 'boiler'), { onReach: (r) => console.log(`[boiler] ${describeReach(r)}`) });
  stops.push(() => boiler.stop());
  // The drum level wanders a little, so a subscription has something to show.
  const drift = setInterval(() => boiler.setLevel(Math.round(Math.min(55, Math.max(35, boiler.level() + (Math.random() - 0.5) * 1.5)) * 10) / 10), 2000);
  stops.push(async () => clearInterval(drift));

  const client = await ensureDemoClientCertificate(dir);
  writeVault();
  writeFileSync(configFile, siteConfig());

  const daemon = spawn(process.execPath, [join(root, 'src/main.ts'), '--config', configFile], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, PENSTOCK_LOG_LEVEL: process.env.PENSTOCK_LOG_LEVEL ?? 'warn' },
  });
  stops.push(async () => {
    if (daemon.exitCode !== null || daemon.signalCode !== null) return;
    const exited = new Promise((r) => daemon.once('exit', r));
    daemon.kill('SIGTERM');
    await exited;
  });
  await waitReady(daemon);
  await waitMirrored(daemon);

  // The client trusts the gateway's certificate (made by the daemon at its first start), and nothing else.
  const gatewayCert = gatewayCertificateFile(join(dir, 'state', 'opcua', DEMO_OPCUA_LISTENER));
  if (!gatewayCert) throw new Error('the OPC UA front door made no server certificate');
  await trustGatewayCertificate(dir, gatewayCert);
  const endpoint = `opc.tcp://127.0.0.1:${ports.opcua}`;
  writeFileSync(client.connectionFile, `${JSON.stringify({ endpoint, target: DEMO_OPCUA_TARGET })}\n`);

  printInstructions(endpoint);
} catch (err) {
  console.error(`demo: ${(err as Error).message}`);
  await shutdown(1);
}

/** Commands with their comments lined up. */
function rows(list: [string, string?][]): string {
  const width = Math.max(...list.map(([cmd, note]) => (note ? cmd.length : 0)));
  return list.map(([cmd, note]) => `  ${note ? `${cmd.padEnd(width)}   # ${note}` : cmd}`).join('\n');
}

function printInstructions(endpoint: string): void {
  const ctl = `bin/penstockctl --socket ${socket}`;
  const ua = `node_modules/.bin/node scripts/demo/opcua-client.ts${process.env.PENSTOCK_DEMO_DIR ? ` --dir ${dir}` : ''}`;
  const mb = (args: string) => `mbpoll -m tcp -p ${ports.modbus} ${args}`;
  const user = DEMO_OPCUA_USER;
  console.log(`
Penstock demo site is running (state in ${dir}, config ${configFile}).
  Simulated inverters:  inverter-1 on 127.0.0.1:${ports.inverter1}, der-1 on 127.0.0.1:${ports.der1} (direct; the vendor does not use these)
  Simulated boiler:     boiler-1, OPC UA on opc.tcp://127.0.0.1:${ports.boiler} (direct; the vendor does not use it)
  Vendor front doors:   Modbus/TCP on 127.0.0.1:${ports.modbus}, unit 1 = inverter-1, unit 2 = der-1, you are principal acme-tech
                        OPC UA on ${endpoint}, SignAndEncrypt (Basic256Sha256), boiler-1 under Objects/boiler-1:
                        user ${user.username}, password ${user.password} (a demo password; the vault holds only its hash),
                        client certificate ${demoClientFiles(dir).certFile} (the one trusted_clients lists)

Try, in another terminal, from the repository. Modbus (mbpoll: apt-get install mbpoll; its -r is 1-based, so -r 40070 is address 40069):
${rows([
    [mb('-a 1 -r 40070 -c 17 -1 127.0.0.1'), 'read the inverter model (W at 40084): allowed'],
    [mb('-a 1 -r 40233 -1 127.0.0.1 5000'), 'set WMaxLimPct to 50 % (raw x 10^WMaxLimPct_SF, which the gateway reads: -2): allowed, journaled first'],
    [mb('-a 1 -r 40233 -1 127.0.0.1 9500'), "95 %, above the grant's 80: illegal data value"],
    [mb('-a 1 -r 40001 -1 127.0.0.1 7'), 'not granted: illegal data address'],
    [mb('-a 1 -r 40232 -1 -o 10 127.0.0.1 0'), 'Conn: waits (10 s) for a person to approve'],
  ])}

OPC UA (Debian packages no OPC UA client; this small node-opcua one connects as ${user.username}; paths are below Objects/boiler-1):
${rows([
    [`${ua} browse`, 'only what the grant shows'],
    [`${ua} read Boiler/Drum/Level Boiler/Drum/Pressure`, 'allowed'],
    [`${ua} watch Boiler/Drum/Level`, 'subscribed: the level drifts (Ctrl-C stops)'],
    [`${ua} write Boiler/Setpoint 60`, 'allowed, journaled first'],
    [`${ua} write Boiler/Setpoint 95`, "above the grant's bound: BadOutOfRange"],
    [`${ua} write Boiler/Burner/FuelValve 100`, 'not granted: BadUserAccessDenied'],
    [`${ua} call Boiler/ResetTrip "level back to normal"`, 'waits for a person to approve'],
    [`${ua} --password wrong read Boiler/Drum/Level`, 'login refused, journaled'],
  ])}

Plant staff (policy check is a dry run that says which grant and rule decide, and why not):
${rows([
    [`${ctl} approvals list`],
    [`${ctl} approvals approve ID`],
    [`${ctl} status`],
    [`${ctl} sessions list`],
    [`${ctl} grants list`],
    [`${ctl} policy check acme-tech inverter-1 modbus write holding_register 40232 --values 95`],
    [`${ctl} policy check boiler-tech boiler-1 opcua write 'ns=1;s=boiler-1/Boiler/Setpoint' --browse-path Objects/Boiler/Setpoint --value 95`],
    [`${ctl} journal tail`],
    [`${ctl} journal verify`],
  ])}
Ctrl-C stops the demo.`);
}
