// Modbus/TCP Security with X.509-SVIDs: an AI agent's workload certificate, made by openssl with
// `subjectAltName=URI:spiffe://plant.example/agent/7`, names its principal by the SPIFFE ID (principal
// credentials.x509.spiffe_ids). pymodbus's TLS client reads through the door; what reaches the PLC and
// what the real journal holds are asserted on. SVIDs naming nobody, with two URI SANs, with a malformed
// ID, or pinned by another principal's fingerprint are refused and journaled with their reason.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { freePort, makePki, Plc, pymodbusTls, startGateway, tempDir, tlsModbusExchange, until, type Gateway, type Pki } from './fixtures/harness.ts';
import { encodeMbap } from '../../../src/adapters/modbus/codec.ts';

const AGENT_ID = 'spiffe://plant.example/agent/7';
let tmp: ReturnType<typeof tempDir>;
let plc: Plc;
let gw: Gateway;
let pki: Pki;
let pinnedElsewhere: { cert: string; key: string };

function config(plcPort: number, pinnedFingerprint: string): string {
  return `
appliance: { id: gw-svid, site: Test bench, zone: lab, state_dir: ${tmp.dir}/state }
journal: { every_read: true }
listeners:
  - { id: mb-tls, protocol: modbus, mode: tls, host: 127.0.0.1, port: 0, routes: [{ unit: 1, target: plc-1 }], tls: { cert: ${pki.serverCert}, key: ${pki.serverKey}, client_ca: ${pki.caCert} } }
principals:
  - id: agent-7
    kind: agent
    owner: Plant AI team
    purpose: Reads pump telemetry
    acting_for: work-order:WO-77
    credentials: { x509: { spiffe_ids: ["${AGENT_ID}"] } }
  # Named by CN: an SVID that happens to carry CN=vendor-a must not become vendor-a.
  - { id: vendor-a, kind: vendor, owner: Pump Service Ltd, purpose: Tuning, credentials: { x509: { subject_cn: vendor-a } } }
  - { id: pinned, kind: service, owner: Ops, purpose: Pinned certificate, credentials: { x509: { fingerprints: ["${pinnedFingerprint}"] } } }
targets:
  - { id: plc-1, protocol: modbus, zone: pumps, host: 127.0.0.1, port: ${plcPort}, timeout_ms: 1000 }
grants:
  - id: g-agent
    principal: agent-7
    targets: [plc-1]
    task: { ticket: WO-77 }
    rules:
      - modbus: { access: read, tables: [holding_register], addresses: ["0-49"] }
  - id: g-vendor
    principal: vendor-a
    targets: [plc-1]
    task: { ticket: CHG-1 }
    rules:
      - modbus: { access: read, tables: [holding_register], addresses: ["0-49"] }
`;
}

before(async () => {
  tmp = tempDir('penstock-mb-svid-');
  pki = makePki(tmp.dir);
  // The SVID of agent 7, pinned by fingerprint to another principal: which one it names is ambiguous.
  pinnedElsewhere = pki.client('pinned-agent', { uris: [AGENT_ID] });
  const plcPort = await freePort();
  plc = await Plc.start('tcp', plcPort);
  gw = await startGateway(tmp.dir, config(plcPort, new X509Certificate(readFileSync(pinnedElsewhere.cert)).fingerprint256));
});

after(async () => {
  await gw?.stop();
  await plc?.stop();
  tmp?.cleanup();
});

const read = encodeMbap(1, 1, Buffer.from([3, 0, 0, 0, 1]));
const refusals = (reason: string) => gw.events().filter((e) => e.event === 'auth.failed' && e.listener === 'mb-tls' && e.detail?.reason === reason);

test('an agent with an X.509-SVID reads through Modbus/TCP Security; the journal names the principal and its SPIFFE ID', async () => {
  const svid = pki.client('agent-7', { uris: [AGENT_ID] });
  const out = await pymodbusTls(gw.port('mb-tls'), pki.caCert, svid, `
    r = await c.read_holding_registers(0, 3, slave=1)
    print("read", r.registers)`);
  assert.match(out, /read \[100, 101, 102\]/);
  await until(() => plc.requests.some((q) => q.fc === 3 && q.address === 0 && q.count === 3), 'the read at the PLC');
  const opened = gw.events().filter((e) => e.event === 'session.opened' && e.listener === 'mb-tls');
  assert.equal(opened.length, 1);
  assert.equal(opened[0]!.principal, 'agent-7');
  assert.deepEqual(opened[0]!.detail?.attributes, { spiffe_id: AGENT_ID });
  await until(() => gw.events().some((e) => e.event === 'action.allowed' && e.principal === 'agent-7' && e.session === opened[0]!.session), 'the read journaled for agent-7');
});

test('an SVID whose SPIFFE ID no principal lists is refused and journaled, even when its CN names a principal', async () => {
  await plc.logged();
  const before = plc.requests.length;
  const stranger = pki.client('vendor-a', { uris: ['spiffe://plant.example/agent/8'] });
  assert.equal(await tlsModbusExchange(gw.port('mb-tls'), pki.caCert, stranger, read), 'closed');
  await until(() => refusals('unknown_spiffe_id').length > 0, 'auth.failed, unknown_spiffe_id');
  const e = refusals('unknown_spiffe_id')[0]!;
  assert.equal(e.detail?.spiffe_id, 'spiffe://plant.example/agent/8');
  assert.equal(e.detail?.protocol, 'modbus');
  assert.equal(e.principal, undefined);
  assert.ok(!gw.events().some((x) => x.event === 'session.opened' && x.principal === 'vendor-a'), 'not taken for vendor-a by its CN');
  await plc.logged();
  assert.equal(plc.requests.length, before);
});

test('an SVID with two URI SANs is refused and journaled', async () => {
  const two = pki.client('agent-two', { uris: [AGENT_ID, 'spiffe://plant.example/agent/9'] });
  assert.equal(await tlsModbusExchange(gw.port('mb-tls'), pki.caCert, two, read), 'closed');
  await until(() => refusals('svid_several_uri_sans').length > 0, 'auth.failed, svid_several_uri_sans');
  assert.equal(refusals('svid_several_uri_sans')[0]!.principal, undefined);
});

test('a malformed SPIFFE ID is refused; so is an SVID one principal pins by fingerprint and another claims by SPIFFE ID', async () => {
  const malformed = pki.client('agent-bad', { uris: ['spiffe://Plant.Example/agent/7'] });
  assert.equal(await tlsModbusExchange(gw.port('mb-tls'), pki.caCert, malformed, read), 'closed');
  await until(() => refusals('svid_malformed_id').length > 0, 'auth.failed, svid_malformed_id');

  assert.equal(await tlsModbusExchange(gw.port('mb-tls'), pki.caCert, pinnedElsewhere, read), 'closed');
  await until(() => refusals('ambiguous_certificate').length > 0, 'auth.failed, ambiguous_certificate');
  assert.equal(refusals('ambiguous_certificate')[0]!.detail?.spiffe_id, AGENT_ID);
  assert.equal(gw.events().filter((e) => e.event === 'session.opened').length, 1, 'only the first test\'s session ever opened');
});
