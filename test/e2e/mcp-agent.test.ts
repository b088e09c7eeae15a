// An AI agent end to end, through the real daemon (src/main.ts, its admin socket and penstockctl), with
// the official SDK's MCP client over Streamable HTTP and TLS, in front of real devices: a pymodbus PLC, the
// node-opcua boiler plant and a real OpenSSH sshd. Everything is asserted where it matters: the PLC's
// request log, the plant's hit counters, the target's files, the journal.
//
//   - allowed reads and writes arrive (Modbus, OPC UA, SSH); denied ones never reach the device;
//   - a tool outside the grants is not listed, and refused if called;
//   - an approval is bound to the call's arguments: another call is refused, the same one runs once;
//   - request_access → penstockctl approvals approve → use → task_done → refused;
//   - an envelope presented by the agent is accepted once and its replay refused;
//   - expired token, wrong audience, unknown issuer, act chain mismatch: refused;
//   - one X.509-SVID identity accepted on the MCP door and on the Modbus/TCP Security door.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { freePort, until } from '../support.ts';
import { makeSvid, makeTestPki, type CertPair, type TestPki } from '../sync/certs.ts';
import { Plc, pymodbusTls } from '../adapters/modbus/fixtures/harness.ts';
import { Gateway, ensureTestUser, keygen, prepareGateway, Sshd, targetFolder, tempDir, type JournalEvent } from '../adapters/ssh/harness.ts';
import { existsSync } from 'node:fs';
import { makeKey, sign, type SigningKey } from '../grants/envelope-fixture.ts';
import { startPlant, type Plant } from '../adapters/opcua/fixtures/plant.ts';
import { FAILURE_META_KEY } from '../../src/adapters/mcp/tools.ts';
import { makeIssuer, mcpListenerYaml, type TestIssuer, type TokenClaims } from '../adapters/mcp/fixture.ts';

const ISSUER = 'https://idp.plant.example';
const AGENT = 'spiffe://plant.example/agent/tuner';
const AGENT_SVID = 'spiffe://plant.example/agent/tuner';

let tmp: { dir: string; cleanup: () => void };
let pki: TestPki;
let svid: CertPair;
let plc: Plc;
let sshd: Sshd;
let plant: Plant;
const BOILER = 'ns=1;s=boiler-1';
let rtuFolder: string;
let gw: Gateway;
let resource: string;
let modbusTlsPort: number;
let idp: TestIssuer;
let pam: SigningKey;
const nowS = (): number => Math.floor(Date.now() / 1000);

const token = (claims: TokenClaims = {}): Promise<string> => idp.token(claims);

interface Agent {
  client: Client;
  close(): Promise<void>;
  tools(): Promise<string[]>;
  call(name: string, args: Record<string, unknown>): Promise<{ isError: boolean; out: Record<string, unknown> }>;
}

async function agent(bearer: string): Promise<Agent> {
  const client = new Client({ name: 'e2e-agent', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { authorization: `Bearer ${bearer}` } } });
  await client.connect(transport);
  return {
    client,
    close: async () => {
      await transport.terminateSession();
      await client.close();
    },
    tools: async () => (await client.listTools()).tools.map((t) => t.name).sort(),
    call: async (name, args) => {
      const r = await client.callTool({ name, arguments: args });
      // A failed call's reason is in _meta (FAILURE_META_KEY), not in structuredContent (that is the result's).
      return { isError: r.isError === true, out: ((r.isError ? r._meta?.[FAILURE_META_KEY] : r.structuredContent) ?? {}) as Record<string, unknown> };
    },
  };
}

const events = (): Promise<JournalEvent[]> => gw.events();

/**
 * Until the PLC has logged everything sent before now: an allowed read through `a`, and its line in the
 * PLC's log (the log is in order, so a refused write that had reached the PLC would be logged before it).
 */
async function plcSettled(a: Agent): Promise<void> {
  const seen = plc.requests.length;
  assert.equal((await a.call('modbus_read', { target: 'plc-1', table: 'holding', address: 99, count: 1 })).isError, false);
  await until(() => plc.requests.slice(seen).some((r) => r.fc === 3 && r.address === 99), 'the PLC logged the marker read');
}
/** The events of one tool call, by its correlation id. */
async function eventsOf(correlation: unknown): Promise<JournalEvent[]> {
  return (await events()).filter((e) => e.detail?.correlation === correlation);
}

before(async () => {
  tmp = tempDir('penstock-e2e-agent-');
  pki = makeTestPki();
  svid = makeSvid(pki, 'tuner-svid', [AGENT_SVID]);
  tls.setDefaultCACertificates([...tls.getCACertificates('default'), pki.ca.cert]);
  idp = await makeIssuer(tmp.dir, { issuer: ISSUER, sub: AGENT, aud: () => resource });
  pam = await makeKey('pam-2026');
  const plcPort = await freePort();
  plc = await Plc.start('tcp', plcPort);
  // The RTU: a real sshd the gateway logs in to with a key from its vault, as the test user.
  ensureTestUser();
  const targetLogin = keygen(join(tmp.dir, 'penstock_to_rtu'));
  sshd = await Sshd.start(tmp.dir, [targetLogin.pub]);
  rtuFolder = targetFolder(tmp.dir);
  // The boiler: the node-opcua plant, which counts every write and call that reaches it.
  plant = await startPlant(await freePort(), join(tmp.dir, 'plant-pki'));
  const mcpPort = await freePort();
  modbusTlsPort = await freePort();
  resource = `https://127.0.0.1:${mcpPort}/mcp`;
  const indent = (pem: string) => pem.trim().split('\n').map((l) => `        ${l}`).join('\n');
  const files = prepareGateway(tmp.dir, { 'rtu-7': readFileSync(targetLogin.key, 'utf8') }, (f) => `
appliance: { id: gw-agents, site: test, zone: plant, state_dir: ${f.stateDir}, runtime_dir: ${f.dir}/run }
admin: { socket: ${f.adminSocket} }
vault: { file: ${f.dir}/vault.json, key_file: ${f.dir}/vault.key }
approvals: { timeout_seconds: 120 }
envelopes:
  max_lifetime_days: 7
  keys:
    - kid: pam-2026
      issuer: central-pam
      public_key: |
${indent(pam.publicPem)}
listeners:${mcpListenerYaml({ id: 'mcp-1', port: mcpPort, resource, pki, idp, clientCa: true })}
  - id: modbus-tls
    protocol: modbus
    mode: tls
    host: 127.0.0.1
    port: ${modbusTlsPort}
    tls: { cert: ${pki.server.certPath}, key: ${pki.server.keyPath}, client_ca: ${pki.ca.certPath} }
    routes: [{ unit: 1, target: plc-1 }]
principals:
  - id: tuner
    kind: agent
    owner: Controls team
    purpose: Loop tuning
    acting_for: "work-order:WO-7"
    credentials:
      token_subjects: ["${AGENT}"]
      x509: { spiffe_ids: ["${AGENT_SVID}"] }
targets:
  - { id: plc-1, protocol: modbus, zone: plant, host: 127.0.0.1, port: ${plcPort} }
  - { id: boiler-1, protocol: opcua, zone: plant, endpoint: ${plant.endpoint}, server_certificate: ${plant.certFile} }
  - id: rtu-7
    protocol: ssh
    zone: plant
    host: 127.0.0.1
    port: ${sshd.port}
    username: penstocktest
    credential: vault:rtu-7
    host_keys: ["[127.0.0.1]:${sshd.port} ${sshd.hostKeyLine}"]
grants:
  - id: g-tuner
    principal: tuner
    targets: [plc-1]
    task: { ticket: WO-7, purpose: Retune loop 3 }
    rules:
      - modbus: { access: read, tables: [holding_register], addresses: ["0-99"] }
      - modbus: { access: write, tables: [holding_register], addresses: ["10-19"], min: 0, max: 100 }
      - modbus: { effect: approve, access: write, tables: [holding_register], addresses: [20] }
      - modbus: { effect: deny, access: write, tables: [holding_register], addresses: ["30-39"] }
  - id: g-tuner-boiler
    principal: tuner
    targets: [boiler-1]
    task: { ticket: WO-7, purpose: Retune loop 3 }
    rules:
      - opcua: { verbs: [browse, read], browse_paths: [Objects/Boiler/Drum] }
      - opcua: { verbs: [browse, read, write], nodes: ["${BOILER}/Boiler/Setpoint"], min: 0, max: 100 }
      - opcua: { effect: deny, verbs: [call], nodes: ["${BOILER}/Boiler/StartPump"] }
  - id: g-tuner-rtu
    principal: tuner
    targets: [rtu-7]
    task: { ticket: WO-7, purpose: Collect the loop logs }
    rules:
      - ssh: { exec: [echo, "..."] }
      - ssh: { exec: [touch, ${join(tmp.dir, 'target')}/allowed-marker] }
      - ssh: { effect: approve, exec: [touch, ${join(tmp.dir, 'target')}/approved-marker] }
`);
  gw = await Gateway.start(files, 'mcp-1');
});

after(async () => {
  await gw?.stop();
  await plc?.stop();
  await sshd?.stop();
  await plant?.stop();
  pki?.cleanup();
  tmp?.cleanup();
});

describe('an AI agent through the real daemon', () => {
  it('Modbus: tools listed from the grant; an allowed read and write arrive; a denied write never reaches the PLC', async () => {
    const a = await agent(await token());
    const tools = await a.tools();
    assert.ok(tools.includes('modbus_read') && tools.includes('modbus_write'), tools.join(' '));
    assert.ok(tools.includes('ssh_exec'), tools.join(' '));

    const wrote = await a.call('modbus_write', { target: 'plc-1', table: 'holding', address: 12, values: [42] });
    assert.equal(wrote.isError, false, JSON.stringify(wrote.out));
    // The PLC logs what it executed on its own stdout, which may arrive a moment after its answer.
    await until(() => plc.writes().some((w) => w.address === 12 && (w.value === 42 || w.values?.[0] === 42)), 'the write reached the PLC');
    const read = await a.call('modbus_read', { target: 'plc-1', table: 'holding', address: 12, count: 1 });
    assert.deepEqual(read.out.values, [42]);

    const writesBefore = plc.writes().length;
    const denied = await a.call('modbus_write', { target: 'plc-1', table: 'holding', address: 31, values: [1] });
    assert.equal(denied.isError, true);
    assert.equal(denied.out.reason, 'rule_denies');
    assert.equal(denied.out.rule, 'g-tuner#3');
    assert.ok(Array.isArray(denied.out.allowed) && (denied.out.allowed as string[]).length > 0, 'the refusal says what would be allowed');
    const over = await a.call('modbus_write', { target: 'plc-1', table: 'holding', address: 12, values: [500] });
    assert.equal(over.out.reason, 'value_out_of_bounds');
    const ungranted = await a.call('modbus_write', { target: 'plc-1', table: 'holding', address: 50, values: [1] });
    assert.equal(ungranted.out.reason, 'object_not_granted');
    await plcSettled(a);
    assert.equal(plc.writes().length, writesBefore, 'no refused write reached the PLC');

    // The evidence of the allowed write: the call, the decision and the outcome, one correlation id.
    const allowedCall = (await events()).find((e) => e.event === 'mcp.tool_called' && e.detail?.tool === 'modbus_write' && (e.detail?.arguments as { address?: number })?.address === 12);
    assert.ok(allowedCall);
    const chain = await eventsOf(allowedCall.detail!.correlation);
    assert.deepEqual(chain.map((e) => e.event), ['mcp.tool_called', 'action.allowed', 'action.outcome']);
    assert.ok(chain.every((e) => e.principal === 'tuner'));
    await a.close();
  });

  it('OPC UA: an allowed read and write arrive at the plant; a write out of bounds and a denied call never do', async () => {
    const a = await agent(await token());
    const tools = await a.tools();
    assert.ok(['opcua_browse', 'opcua_read', 'opcua_write'].every((t) => tools.includes(t)), tools.join(' '));
    assert.ok(!tools.includes('opcua_call'), 'a deny rule lists no tool');
    const read = await a.call('opcua_read', { target: 'boiler-1', nodes: [`${BOILER}/Boiler/Drum/Level`] });
    assert.equal(read.isError, false, JSON.stringify(read.out));
    assert.equal((read.out.results as { value: unknown }[])[0]!.value, plant.level());
    const writesBefore = plant.hits.setpointWrites;
    const wrote = await a.call('opcua_write', { target: 'boiler-1', node: `${BOILER}/Boiler/Setpoint`, value: 62.5 });
    assert.equal(wrote.isError, false, JSON.stringify(wrote.out));
    assert.equal(plant.setpoint(), 62.5, 'the write reached the plant');
    assert.equal(plant.hits.setpointWrites, writesBefore + 1);
    const over = await a.call('opcua_write', { target: 'boiler-1', node: `${BOILER}/Boiler/Setpoint`, value: 250 });
    assert.equal(over.out.reason, 'value_out_of_bounds');
    const call = await a.call('opcua_call', { target: 'boiler-1', object: `${BOILER}/Boiler`, method: `${BOILER}/Boiler/StartPump` });
    assert.equal(call.out.reason, 'rule_denies');
    assert.equal(plant.hits.setpointWrites, writesBefore + 1, 'the refused write never reached the plant');
    assert.equal(plant.hits.startPump, 0, 'the denied call never reached the plant');
    await a.close();
  });

  it('SSH: an allowed argv runs on the RTU and its output returns; hostile words are data; a denied one never runs', async () => {
    const a = await agent(await token());
    const echo = await a.call('ssh_exec', { target: 'rtu-7', argv: ['echo', 'loop 3', '$(id)', ';', 'touch', `${rtuFolder}/pwned`] });
    assert.equal(echo.isError, false, JSON.stringify(echo.out));
    assert.equal(echo.out.stdout, `loop 3 $(id) ; touch ${rtuFolder}/pwned\n`);
    assert.equal(existsSync(join(rtuFolder, 'pwned')), false, 'the words were data, not shell');
    const allowed = await a.call('ssh_exec', { target: 'rtu-7', argv: ['touch', `${rtuFolder}/allowed-marker`] });
    assert.equal(allowed.isError, false, JSON.stringify(allowed.out));
    assert.ok(existsSync(join(rtuFolder, 'allowed-marker')), 'the allowed command ran on the RTU');
    const denied = await a.call('ssh_exec', { target: 'rtu-7', argv: ['touch', `${rtuFolder}/denied-marker`] });
    assert.equal(denied.out.reason, 'object_not_granted');
    const pending = await a.call('ssh_exec', { target: 'rtu-7', argv: ['touch', `${rtuFolder}/approved-marker`] });
    assert.equal(pending.out.status, 'pending_approval');
    assert.equal(existsSync(join(rtuFolder, 'denied-marker')), false, 'the denied command never ran');
    assert.equal(existsSync(join(rtuFolder, 'approved-marker')), false, 'nothing runs before a person approves');
    await gw.ctl(['approvals', 'deny', String(pending.out.approval)]);
    await a.close();
  });

  it('Modbus: an approval is bound to the exact arguments; another call is refused, the approved one runs once', async () => {
    const a = await agent(await token());
    const asked = await a.call('modbus_write', { target: 'plc-1', table: 'holding', address: 20, values: [7] });
    assert.equal(asked.out.status, 'pending_approval');
    const id = String(asked.out.approval);
    const listed = await gw.ctl(['approvals', 'list']);
    assert.match(listed.stdout, new RegExp(`${id}.*args sha256 ${String(asked.out.arguments_sha256).slice(0, 12)}`));
    const approved = await gw.ctl(['approvals', 'approve', id]);
    assert.equal(approved.code, 0, approved.stderr);

    const writesBefore = plc.writes().length;
    const other = await a.call('modbus_write', { target: 'plc-1', table: 'holding', address: 20, values: [8] });
    assert.equal(other.out.status, 'pending_approval', 'other arguments are a new request, not the approved one');
    assert.notEqual(other.out.approval, id);
    await plcSettled(a);
    assert.equal(plc.writes().length, writesBefore, 'nothing reached the PLC on another call');
    const runs = await a.call('modbus_write', { target: 'plc-1', table: 'holding', address: 20, values: [7] });
    assert.equal(runs.isError, false, JSON.stringify(runs.out));
    await until(() => plc.writes().some((w) => w.address === 20), 'the approved write reached the PLC');
    const again = await a.call('modbus_write', { target: 'plc-1', table: 'holding', address: 20, values: [7] });
    assert.equal(again.out.status, 'pending_approval', 'one approval, one run');
    await gw.ctl(['approvals', 'deny', String(other.out.approval)]);
    await gw.ctl(['approvals', 'deny', String(again.out.approval)]);
    await a.close();
  });

  it('request_access → penstockctl approvals approve → use → task_done → refused', async () => {
    const a = await agent(await token({ task: 'WO-9' }));
    const before = await a.call('modbus_read', { target: 'plc-1', table: 'input', address: 0, count: 2 });
    assert.equal(before.out.reason, 'function_not_granted', 'input registers are not granted yet');
    const asked = await a.call('request_access', { task: 'WO-9', purpose: 'read the input registers', targets: ['plc-1'], rules: [{ modbus: { access: 'read', tables: ['input_register'], addresses: ['0-9'] } }], duration_seconds: 600 });
    assert.equal(asked.out.status, 'pending_approval');
    const listed = await gw.ctl(['approvals', 'list']);
    assert.match(listed.stdout, /access for task WO-9 on plc-1/);
    assert.equal((await gw.ctl(['approvals', 'approve', String(asked.out.request)])).code, 0);
    await until(async () => (await gw.ctl(['--json', 'grants', 'list'])).stdout.includes(String(asked.out.grant)), 'the grant issued');
    const used = await a.call('modbus_read', { target: 'plc-1', table: 'input', address: 0, count: 2 });
    assert.equal(used.isError, false, JSON.stringify(used.out));
    const done = await a.call('task_done', { task: 'WO-9' });
    assert.deepEqual(done.out.revoked, [asked.out.grant]);
    // The session that used the grant ends with it (after the agent had the answer); a new one is refused again.
    await until(async () => (await events()).some((e) => e.event === 'grant.revoked' && e.detail?.grant === asked.out.grant), 'grant.revoked');
    await until(async () => {
      try {
        await a.client.listTools();
        return false;
      } catch {
        return true;
      }
    }, 'the session that used the revoked grant has ended');
    await a.client.close();
    const b = await agent(await token({ task: 'WO-9' }));
    assert.equal((await b.call('modbus_read', { target: 'plc-1', table: 'input', address: 0, count: 2 })).out.reason, 'function_not_granted');
    await b.close();
  });

  it('an envelope presented by the agent is verified offline and used; its replay is refused and journaled', async () => {
    const from = nowS() - 60;
    const to = nowS() + 86_400;
    const envelope = await sign(pam, {
      iss: 'central-pam', jti: 'jti-agent-1', iat: from, nbf: from, exp: to, max_uses: 2,
      grant: { id: 'g-env-agent', principal: 'tuner', targets: ['plc-1'], task: { ticket: 'WO-7', purpose: 'offline' }, window: { from: new Date(from * 1000).toISOString(), to: new Date(to * 1000).toISOString() }, rules: [{ modbus: { access: 'read', tables: ['coil'], addresses: ['0-9'] } }] },
    });
    const a = await agent(await token());
    assert.ok((await a.tools()).includes('present_envelope'));
    const accepted = await a.call('present_envelope', { envelope });
    assert.equal(accepted.isError, false, JSON.stringify(accepted.out));
    assert.equal(accepted.out.grant, 'g-env-agent');
    const coils = await a.call('modbus_read', { target: 'plc-1', table: 'coil', address: 0, count: 4 });
    assert.equal(coils.isError, false, JSON.stringify(coils.out));
    const replay = await a.call('present_envelope', { envelope });
    assert.equal(replay.out.error, 'PS_ENVELOPE_REPLAYED');
    const evs = await events();
    assert.ok(evs.some((e) => e.event === 'mcp.envelope_refused' && e.detail?.reason === 'PS_ENVELOPE_REPLAYED' && e.detail?.jti === 'jti-agent-1'));
    assert.ok(!JSON.stringify(evs).includes(envelope.split('.')[2]!), 'the envelope never reaches the journal');
    await a.close();
  });

  it('refused at the door: expired token, wrong audience, unknown issuer, a delegation the principal does not have', async () => {
    const cases: [string, string][] = [
      ['expired', await token({ expIn: -600 })],
      ['wrong_audience', await token({ aud: 'https://elsewhere.example/mcp' })],
      ['unknown_issuer', await token({ iss: 'https://rogue.example' })],
      ['act_mismatch', await token({ sub: 'work-order:WO-666', act: { sub: AGENT } })],
    ];
    for (const [reason, t] of cases) {
      const c = new Client({ name: 'e2e-agent', version: '1.0.0' });
      await assert.rejects(c.connect(new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { authorization: `Bearer ${t}` } } })), Error, reason);
    }
    const evs = await until(async () => {
      const got = (await events()).filter((e) => e.event === 'auth.failed' && e.detail?.protocol === 'mcp').map((e) => e.detail?.reason);
      return cases.every(([r]) => got.includes(r)) && got;
    }, 'the four refusals journaled');
    assert.ok(evs);
    assert.ok((await events()).some((e) => e.event === 'alert.delegation_mismatch'));
  });

  it('one X.509-SVID identity: accepted on the MCP door and on the Modbus/TCP Security door', async () => {
    const init = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'svid-agent', version: '1' } } });
    const status = await new Promise<number>((resolve, reject) => {
      const req = https.request(resource, { method: 'POST', cert: svid.cert, key: svid.key, ca: pki.ca.cert, agent: false, headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' } }, (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      });
      req.once('error', reject);
      req.end(init);
    });
    assert.equal(status, 200);
    const out = await pymodbusTls(modbusTlsPort, pki.ca.certPath, { cert: svid.certPath, key: svid.keyPath }, `
    r = await c.read_holding_registers(12, 1, slave=1)
    print("read", r.registers)`);
    assert.match(out, /read \[42\]/, 'the value the agent wrote over MCP, read over Modbus/TCP Security by the same identity');
    // Sessions opened are journaled lazily: the read can be answered before its session.opened is committed.
    const openedBy = (all: JournalEvent[]) => all.filter((e) => e.event === 'session.opened' && e.principal === 'tuner' && (e.detail?.attributes as { spiffe_id?: string } | undefined)?.spiffe_id === AGENT_SVID);
    const protocols = (all: JournalEvent[]) => [...new Set(openedBy(all).map((e) => e.detail?.protocol))].sort();
    const all = await gw.eventsWhen((ev) => protocols(ev).includes('modbus'), 'the Modbus/TCP Security session journaled');
    assert.deepEqual(protocols(all), ['mcp', 'modbus']);
  });
});
