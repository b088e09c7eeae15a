// `npm run demo`: the built-in demo site. Starts two simulated inverters (Modbus/TCP), a simulated
// boiler (OPC UA) and, where OpenSSH's sshd is installed, an unprivileged sshd as an SSH target, all on
// loopback; makes the demo OPC UA client's certificate, the SSH keys, the vault and what the MCP door for
// AI agents needs (its TLS certificate, the demo identity provider's keys, a 10-minute agent token),
// writes the demo config into a folder of its own, runs the real daemon on it, and prints what to try.
// Ctrl-C stops everything.
//
// Environment: PENSTOCK_DEMO_DIR (the folder; default one per user under the temp folder),
// PENSTOCK_DEMO_PORTS (loopback ports "MODBUS,INVERTER1,DER1,BOILER,OPCUA[,SSH,SSHTARGET[,MCP]]": the
// Modbus front door, the two simulated inverters, the simulated boiler, the OPC UA front door, the SSH
// front door, the target sshd and the MCP front door; default 1502,15020,15021,14840,4840,2222,12222,8443;
// the ports not given keep their defaults), PENSTOCK_DEMO_SSHD (the sshd to run; default /usr/sbin/sshd;
// `none` leaves the SSH target out), PENSTOCK_INSPECTOR_CLI (the MCP Inspector's CLI the printed agent
// command runs; default node_modules/.bin/mcp-inspector-cli), PENSTOCK_LOG_LEVEL (the daemon's, default warn).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument, isMap, isSeq, type Document, type YAMLMap } from 'yaml';
import { loadFirmwareProfile } from '../src/config/profiles.ts';
import { adminRequest } from '../src/admin/client.ts';
import { Vault } from '../src/vault/vault.ts';
import { hashOpcuaPassword } from '../src/adapters/opcua/identity.ts';
import { protocolModule } from '../src/adapters/registry.ts';
import { startSimulatedPlc } from './demo/plc-sim.ts';
import { startPlant, type PlantReach } from './demo/boiler-plant.ts';
import {
  DEMO_SSH_HOST,
  DEMO_SSH_LISTENER,
  DEMO_SSH_PRINCIPAL,
  DEMO_SSH_TARGET,
  findSshd,
  prepareDemoSsh,
  startDemoSshd,
  writeDemoClientConfig,
  type DemoSshFiles,
} from './demo/ssh-demo.ts';
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
import { DEMO_AGENT, DEMO_MCP_LISTENER, DEMO_MCP_PORT, demoResource, findInspectorCli, inspectorCommand, prepareDemoMcp, type DemoMcpFiles } from './demo/mcp-demo.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = demoDir();
const ports = demoPorts(process.env.PENSTOCK_DEMO_PORTS ?? `1502,15020,15021,14840,4840,2222,12222,${DEMO_MCP_PORT}`);
mkdirSync(dir, { recursive: true, mode: 0o700 });
const configFile = join(dir, 'penstock.yaml');
const socket = join(dir, 'run', 'admin.sock');

function demoPorts(spec: string): { modbus: number; inverter1: number; der1: number; boiler: number; opcua: number; ssh: number; sshTarget: number; mcp: number } {
  const list = spec.split(',').map((s) => Number(s.trim()));
  if (![5, 7, 8].includes(list.length) || !list.every((p) => Number.isInteger(p) && p > 0 && p < 65536)) {
    console.error(`demo: PENSTOCK_DEMO_PORTS must be five, seven or eight ports "MODBUS,INVERTER1,DER1,BOILER,OPCUA[,SSH,SSHTARGET[,MCP]]", got "${spec}"`);
    process.exit(2);
  }
  const [modbus, inverter1, der1, boiler, opcua, ssh = 2222, sshTarget = 12222, mcp = DEMO_MCP_PORT] = list as [number, number, number, number, number, number?, number?, number?];
  return { modbus, inverter1, der1, boiler, opcua, ssh, sshTarget, mcp };
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

/** The demo config: site.yaml plus site-opcua.yaml and, with an SSH target, site-ssh.yaml, with the MCP door site-mcp.yaml (their lists joined), for this folder and these ports. */
function siteConfig(ssh: DemoSshFiles | undefined, mcp: DemoMcpFiles | undefined): string {
  const read = (name: string) => parseDocument(readFileSync(join(root, 'scripts/demo', name), 'utf8').replaceAll('@STATE@', dir));
  const doc = read('site.yaml');
  const top = doc.contents;
  if (!isMap(top)) throw new Error('site.yaml is not a mapping');
  for (const name of ['site-opcua.yaml', ...(ssh ? ['site-ssh.yaml'] : []), ...(mcp ? ['site-mcp.yaml'] : [])]) joinSite(doc, top, name, read(name));
  setEntry(doc, 'listeners', 'modbus-demo', 'port', ports.modbus);
  setEntry(doc, 'targets', 'inverter-1', 'port', ports.inverter1);
  setEntry(doc, 'targets', 'der-1', 'port', ports.der1);
  setEntry(doc, 'targets', DEMO_OPCUA_TARGET, 'endpoint', `opc.tcp://127.0.0.1:${ports.boiler}`);
  setEntry(doc, 'listeners', DEMO_OPCUA_LISTENER, 'port', ports.opcua);
  if (ssh) {
    setEntry(doc, 'listeners', DEMO_SSH_LISTENER, 'port', ports.ssh);
    setEntry(doc, 'principals', DEMO_SSH_PRINCIPAL, 'credentials', { ssh_keys: [ssh.vendorPub] });
    setEntry(doc, 'targets', DEMO_SSH_TARGET, 'port', ports.sshTarget);
    setEntry(doc, 'targets', DEMO_SSH_TARGET, 'username', ssh.user);
    setEntry(doc, 'targets', DEMO_SSH_TARGET, 'host_keys', [`[127.0.0.1]:${ports.sshTarget} ${ssh.targetHostPub}`]);
  }
  if (mcp) {
    setEntry(doc, 'listeners', DEMO_MCP_LISTENER, 'port', ports.mcp);
    setEntry(doc, 'listeners', DEMO_MCP_LISTENER, 'resource', demoResource(ports.mcp));
  }
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}

/** Join one more site file's lists into the config (`top` is doc's root map). */
function joinSite(doc: Document, top: YAMLMap, name: string, more: Document): void {
  if (!isMap(more.contents)) throw new Error(`${name} is not a mapping`);
  for (const pair of more.contents.items) {
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
    } else throw new Error(`${name}: ${key} is also in site.yaml and is not a list`);
  }
}

function setEntry(doc: Document, list: string, id: string, key: string, value: unknown): void {
  const seq = doc.get(list, true);
  const item = isSeq(seq) ? seq.items.find((i) => isMap(i) && i.get('id') === id) : undefined;
  if (!isMap(item)) throw new Error(`demo config: no ${list} entry ${id}`);
  item.set(key, typeof value === 'object' ? doc.createNode(value, { flow: true }) : value);
}

/**
 * The vault (made on first run) with the demo user's password hash and, with an SSH target, the
 * gateway's login key for it: the config's `vault:` points here.
 */
function writeVault(ssh: DemoSshFiles | undefined): void {
  const keyFile = join(dir, 'vault.key');
  if (!existsSync(keyFile)) Vault.createKeyFile(keyFile);
  const vault = Vault.open(join(dir, 'vault.json'), keyFile);
  vault.set(DEMO_OPCUA_USER.vaultEntry, hashOpcuaPassword(DEMO_OPCUA_USER.password));
  if (ssh) vault.set('rtu-demo-ssh', readFileSync(ssh.gatewayLoginKey, 'utf8'));
}

/** The SSH target where sshd is installed and starts; otherwise says why not, and the demo runs without it. */
async function startSshTarget(): Promise<DemoSshFiles | undefined> {
  const sshd = findSshd();
  if (!sshd) {
    console.log('demo: no OpenSSH sshd (apt-get install openssh-server, or PENSTOCK_DEMO_SSHD=PATH): no SSH target; the rest of the demo runs without it');
    return undefined;
  }
  try {
    const files = prepareDemoSsh(dir);
    const target = await startDemoSshd(sshd, files, ports.sshTarget);
    stops.push(() => target.stop());
    return files;
  } catch (err) {
    console.log(`demo: the SSH target did not start (${(err as Error).message}); the rest of the demo runs without it`);
    return undefined;
  }
}

/** The MCP door's files and the agent's token; without openssl, says why not, and the demo runs without the door. */
async function prepareMcp(): Promise<{ files: DemoMcpFiles; tokenExpires: Date } | undefined> {
  try {
    return await prepareDemoMcp(dir, ports.mcp);
  } catch (err) {
    console.log(`demo: the MCP door for AI agents is left out (${(err as Error).message.split('\n')[0]}; it needs openssl); the rest of the demo runs without it`);
    return undefined;
  }
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

  const ssh = await startSshTarget();
  const client = await ensureDemoClientCertificate(dir);
  const mcp = await prepareMcp();
  writeVault(ssh);
  writeFileSync(configFile, siteConfig(ssh, mcp?.files));
  if (ssh) writeDemoClientConfig(ssh, ports.ssh);

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

  printInstructions(endpoint, ssh, mcp);
} catch (err) {
  console.error(`demo: ${(err as Error).message}`);
  await shutdown(1);
}

/** Commands with their comments lined up. */
function rows(list: [string, string?][]): string {
  const width = Math.max(...list.map(([cmd, note]) => (note ? cmd.length : 0)));
  return list.map(([cmd, note]) => `  ${note ? `${cmd.padEnd(width)}   # ${note}` : cmd}`).join('\n');
}

function printInstructions(endpoint: string, ssh: DemoSshFiles | undefined, mcp: { files: DemoMcpFiles; tokenExpires: Date } | undefined): void {
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

${ssh ? sshInstructions(ssh) : 'SSH: no SSH target in this run (see above).\n'}
${mcp ? mcpInstructions(mcp.files, mcp.tokenExpires) : 'AI agents (MCP): no MCP door in this run (see above).\n'}
Plant staff (policy check is a dry run that says which grant and rule decide, and why not):
${rows([
    [`${ctl} approvals list`],
    [`${ctl} approvals approve ID`],
    [`${ctl} status`],
    [`${ctl} sessions list`],
    [`${ctl} grants list`],
    [`${ctl} policy check acme-tech inverter-1 modbus write holding_register 40232 --values 95`],
    [`${ctl} policy check boiler-tech boiler-1 opcua write 'ns=1;s=boiler-1/Boiler/Setpoint' --browse-path Objects/Boiler/Setpoint --value 95`],
    ...(ssh ? [[`${ctl} policy check ${DEMO_SSH_PRINCIPAL} ${DEMO_SSH_TARGET} ssh exec -- ls -la /`] as [string]] : []),
    [`${ctl} journal tail`],
    [`${ctl} journal verify`],
  ])}
Ctrl-C stops the demo.`);
}

function sshInstructions(ssh: DemoSshFiles): string {
  const at = `${DEMO_SSH_TARGET}@${DEMO_SSH_HOST}`;
  const sh = (cmd: string) => `ssh -F ${ssh.clientConfig} ${at} ${cmd}`;
  const ex = ssh.exchange;
  return `SSH (OpenSSH; you are principal ${DEMO_SSH_PRINCIPAL} with the key the demo made; the user name picks the target
${DEMO_SSH_TARGET}, an sshd on 127.0.0.1:${ports.sshTarget} that runs commands as ${ssh.user}; the SSH front door is 127.0.0.1:${ports.ssh}):
${rows([
    [sh("'uname -a'"), 'allowed: runs on the target, output passed through'],
    [sh(`'ls -l ${ex}'`), 'allowed: * is one operand'],
    [sh(`'ls -la ${ex}'`), 'refused: -la is an option no rule names'],
    [sh("'cat /etc/shadow'"), 'not granted: exit 126 and the reason'],
    [sh("'uname -a; id'"), 'shell metacharacters: refused'],
    [sh(`touch ${ex}/restart-requested`), 'waits for a person to approve (approvals list / approve ID)'],
    [`sftp -F ${ssh.clientConfig} ${at}`, `file transfer, only in ${ex}: put FILE ${ex}/ ; get ${ex}/FILE`],
    [`ssh -F ${ssh.clientConfig} ${DEMO_SSH_PRINCIPAL}@${DEMO_SSH_HOST}`, 'no target: lists your targets and grants'],
  ])}
`;
}

function mcpInstructions(f: DemoMcpFiles, tokenExpires: Date): string {
  const cli = findInspectorCli();
  const mint = `node_modules/.bin/node scripts/demo/mcp-demo.ts token${process.env.PENSTOCK_DEMO_DIR ? ` --dir ${dir}` : ''}${ports.mcp !== DEMO_MCP_PORT ? ` --port ${ports.mcp}` : ''}`;
  const run = cli
    ? `  ${inspectorCommand(cli, f, ports.mcp, 'my_access')}`
    : '  (the MCP Inspector CLI, devDependency @modelcontextprotocol/inspector-cli, is not installed: npm install, or PENSTOCK_INSPECTOR_CLI=PATH)';
  // The Modbus tools, where this build has them: the same command reads the inverter by point name.
  const read = cli && protocolModule('modbus')?.agentTools?.some((t) => t.name === 'modbus_read')
    ? `Then read the inverter's output power by its point name (allowed):\n  ${inspectorCommand(cli, f, ports.mcp, 'modbus_read', ['target=inverter-1', 'point=inverter.W'])}\n`
    : '';
  return `AI agents (MCP front door ${demoResource(ports.mcp)}; you are agent ${DEMO_AGENT}, acting for work order WO-4411, with a
bearer token from the demo identity provider in ${f.tokenFile} (mode 0600, valid until ${tokenExpires.toISOString()};
${mint} makes a new one). The gateway's CA is ${f.caCert}. A real MCP client, the MCP Inspector's CLI, asks what you may do:
${run}
${read}With --method tools/list it lists your tools; a write of the power limit waits for a person (approvals list / approve ID).
`;
}
