// The MCP front door against the official SDK's own client over real TLS on loopback: certificates made
// by openssl, bearer JWTs signed with jose by a key whose public half is the issuer's JWKS file. Asserts on
// the far side: the journal (auth.failed reasons, sessions opened and ended, never the token) and the
// session registry.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { SignJWT, generateKeyPair } from 'jose';
import { makeIssuer, mcpListenerYaml, type TestIssuer, type TokenClaims } from './fixture.ts';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { freePort, tempDir, until } from '../../support.ts';
import { makeTestPki, type TestPki } from '../../sync/certs.ts';
import { startTestGateway, type TestGateway } from '../../core-harness.ts';
import { mcpAdapter } from '../../../src/adapters/mcp/adapter.ts';

const ISSUER = 'https://idp.plant.example';
const SUB_A = 'spiffe://plant.example/agent/tuner';
const SUB_B = 'agent-b@idp.plant.example';
const SUB_RETIRED = 'spiffe://plant.example/agent/retired';

let tmp: { dir: string; cleanup: () => void };
let pki: TestPki;
let gw: TestGateway;
let resource: string;
let origin: string;
let idp: TestIssuer;
const issuedTokens: string[] = [];

async function token(claims: TokenClaims = {}): Promise<string> {
  const t = await idp.token(claims);
  issuedTokens.push(t);
  return t;
}

async function connect(bearer: string): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name: 'penstock-test-agent', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { authorization: `Bearer ${bearer}` } } });
  await client.connect(transport);
  return { client, transport };
}

const initialize = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };
function post(headers: Record<string, string>, body: unknown = initialize): Promise<Response> {
  return fetch(resource, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body: JSON.stringify(body) });
}

before(async () => {
  tmp = tempDir('penstock-mcp-');
  pki = makeTestPki();
  // The client trusts the test CA the way a deployment would trust the gateway's: as a CA, not by skipping checks.
  tls.setDefaultCACertificates([...tls.getCACertificates('default'), pki.ca.cert]);
  idp = await makeIssuer(tmp.dir, { issuer: ISSUER, sub: SUB_A, aud: () => resource });
  const port = await freePort();
  origin = `https://127.0.0.1:${port}`;
  resource = `${origin}/mcp`;
  gw = await startTestGateway(tmp.dir, `
appliance: { id: gw-mcp, site: Test bench, zone: lab, state_dir: ${tmp.dir}/state }
principals:
  - { id: tuner, kind: agent, owner: Controls team, purpose: Loop tuning, acting_for: "work-order:WO-7", credentials: { token_subjects: ["${SUB_A}"] } }
  - { id: auditor, kind: agent, owner: Audit, purpose: Reviews, credentials: { token_subjects: ["${SUB_B}"] } }
  - { id: retired, kind: agent, owner: Audit, purpose: Old, expires: "2021-01-01T00:00:00Z", credentials: { token_subjects: ["${SUB_RETIRED}"] } }
targets:
  - { id: plc-1, protocol: modbus, zone: lab, host: 127.0.0.1, port: 502 }
grants:
  - id: g-tuning
    principal: tuner
    targets: [plc-1]
    task: { ticket: CHG-42, purpose: Retune loop 3 }
    window: { from: "2020-01-01T00:00:00Z", to: "2099-01-01T00:00:00Z" }
    limits: { max_session_seconds: 3600 }
    rules:
      - modbus: { preset: readonly }
listeners:${mcpListenerYaml({ id: 'mcp-1', port, resource, pki, idp })}
`, mcpAdapter);
});

after(async () => {
  await gw?.stop();
  pki?.cleanup();
  tmp?.cleanup();
});

/** The journal as text, for the check that no token ever reached it. */
const journalText = () => JSON.stringify(gw.events());

test('a valid token lists my_access and calls it: the structured result names the principal\'s grant', async () => {
  const { client, transport } = await connect(await token());
  const tools = await client.listTools();
  // The gateway's own tools (no envelope keys pinned here: no present_envelope), and what the read-only
  // grant lets the agent use: modbus_read on plc-1, not modbus_write.
  assert.deepEqual(tools.tools.map((t) => t.name), ['my_access', 'request_access', 'task_done', 'modbus_read']);
  const read = tools.tools.find((t) => t.name === 'modbus_read')!;
  assert.deepEqual((read.inputSchema.properties as { target: { enum: string[] } }).target.enum, ['plc-1']);
  assert.equal(read.annotations?.readOnlyHint, true);
  const result = await client.callTool({ name: 'my_access', arguments: {} });
  assert.notEqual(result.isError, true);
  const out = result.structuredContent as { principal: string; chain: string[]; grants: { id: string; targets: string[]; task: { ticket: string }; active: boolean; window_end?: string; limits?: { max_session_seconds?: number } }[]; pending_approvals: unknown[] };
  assert.equal(out.principal, 'tuner');
  assert.deepEqual(out.chain, ['tuner', 'work-order:WO-7']);
  assert.deepEqual(out.grants.map((g) => [g.id, g.targets, g.task.ticket, g.active, g.window_end, g.limits?.max_session_seconds]), [['g-tuning', ['plc-1'], 'CHG-42', true, '2099-01-01T00:00:00Z', 3600]]);
  assert.deepEqual(out.pending_approvals, []);
  // The far side: a core session of that principal, opened by this front door, in the registry and the journal.
  const session = gw.core.sessions.list().find((s) => s.listener === 'mcp-1' && s.principal.id === 'tuner');
  assert.ok(session);
  assert.deepEqual(session.chain, ['tuner', 'work-order:WO-7']);
  await until(() => gw.events().some((e) => e.event === 'session.opened' && e.session === session.id), 'session.opened journaled');
  // The client deletes the MCP session: the core session ends with it.
  await transport.terminateSession();
  await client.close();
  await until(() => gw.events().some((e) => e.event === 'session.closed' && e.session === session.id && e.detail?.reason === 'closed'), 'session.closed journaled');
  assert.equal(gw.core.sessions.get(session.id), undefined);
  assert.equal(gw.listeners.get('mcp-1')!.status!().mcp_sessions, 0, 'the listener forgot the MCP session id');
});

test('a request without a valid token gets 401 with an RFC 6750/9728 challenge, journaled by reason, never the token', async () => {
  const other = await generateKeyPair('ES256');
  const forged = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(ISSUER).setAudience(resource).setSubject(SUB_A).setExpirationTime('10m').sign(other.privateKey);
  issuedTokens.push(forged);
  const cases: [string, Record<string, string>][] = [
    ['no_token', {}],
    ['bad_token', { authorization: 'Bearer not.a.jwt' }],
    ['bad_token', { authorization: `Bearer ${forged}` }],
    ['expired', { authorization: `Bearer ${await token({ expIn: -600 })}` }],
    ['wrong_audience', { authorization: `Bearer ${await token({ aud: 'https://elsewhere.example/mcp' })}` }],
    ['unknown_issuer', { authorization: `Bearer ${await token({ iss: 'https://rogue.example' })}` }],
    ['unknown_subject', { authorization: `Bearer ${await token({ sub: 'spiffe://plant.example/agent/nobody' })}` }],
    ['principal_expired', { authorization: `Bearer ${await token({ sub: SUB_RETIRED })}` }],
  ];
  await gw.core.recorded(); // earlier tests' lazily journaled refusals land before the baseline
  const before = gw.events().length;
  for (const [reason, headers] of cases) {
    const res = await post(headers);
    assert.equal(res.status, 401, reason);
    const challenge = res.headers.get('www-authenticate') ?? '';
    assert.match(challenge, new RegExp(`^Bearer resource_metadata="${origin}/\\.well-known/oauth-protected-resource/mcp"`), reason);
    assert.equal(challenge.includes('error="invalid_token"'), reason !== 'no_token', reason);
    assert.equal(((await res.json()) as { error_description: string }).error_description, reason);
  }
  const want = cases.map(([r]) => r).sort();
  const failed = await until(() => {
    const got = gw.events().slice(before).filter((e) => e.event === 'auth.failed' && e.listener === 'mcp-1');
    return got.length >= cases.length && got;
  }, 'auth.failed events');
  assert.deepEqual(failed.map((e) => e.detail?.reason).sort(), want);
  assert.equal(gw.core.sessions.list().some((s) => s.listener === 'mcp-1'), false, 'no session was opened');
  const text = journalText();
  for (const t of issuedTokens) {
    assert.equal(text.includes(t), false, 'a token reached the journal');
    assert.equal(text.includes(t.split('.')[2]!), false, 'a token signature reached the journal');
  }
});

test('the protected-resource metadata (RFC 9728) is served without a token', async () => {
  for (const path of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
    const res = await fetch(`${origin}${path}`);
    assert.equal(res.status, 200, path);
    assert.deepEqual(await res.json(), { resource, authorization_servers: [ISSUER], bearer_methods_supported: ['header'] });
  }
});

test('a body over max_body_bytes gets 413 and the daemon stays up', async () => {
  const big = join(tmp.dir, 'big.json');
  writeFileSync(big, JSON.stringify({ ...initialize, padding: 'x'.repeat(2 * 1024 * 1024) }));
  // The token goes to curl in a header file, not on its command line.
  const headers = join(tmp.dir, 'headers.txt');
  writeFileSync(headers, `content-type: application/json\naccept: application/json, text/event-stream\nauthorization: Bearer ${await token()}\n`, { mode: 0o600 });
  const anonymous = join(tmp.dir, 'headers-anonymous.txt');
  writeFileSync(anonymous, 'content-type: application/json\n');
  const curl = async (extra: string[], headerFile = headers) => (await promisify(execFile)('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '30',
    '--cacert', pki.ca.certPath, '-H', `@${headerFile}`, ...extra, '--data-binary', `@${big}`, resource], { encoding: 'utf8' })).stdout;
  assert.equal(await curl([]), '413', 'declared length over the bound');
  // A declared length over the bound is refused before the token is even looked at.
  assert.equal(await curl([], anonymous), '413', 'declared length over the bound, no token');
  assert.equal(await curl(['-H', 'transfer-encoding: chunked']), '413', 'chunked body over the bound');
  await until(() => gw.events().filter((e) => e.event === 'action.malformed' && e.detail?.reason === 'body_too_large').length >= 3, 'the three refusals journaled');
  const { client, transport } = await connect(await token());
  assert.deepEqual((await client.listTools()).tools.map((t) => t.name), ['my_access', 'request_access', 'task_done', 'modbus_read'], 'the daemon is still up');
  await transport.terminateSession();
  await client.close();
});

test('another principal\'s token on an existing session id is refused with 403', async () => {
  const { client, transport } = await connect(await token());
  const sid = transport.sessionId!;
  assert.ok(sid);
  await gw.core.recorded(); // earlier tests' lazily journaled refusals land before the baseline
  const before = gw.events().length;
  const res = await post({ authorization: `Bearer ${await token({ sub: SUB_B })}`, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' }, { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'my_access', arguments: {} } });
  assert.equal(res.status, 403);
  await until(() => gw.events().slice(before).some((e) => e.event === 'auth.failed' && e.detail?.reason === 'session_not_owned' && e.principal === 'auditor'), 'session_not_owned journaled');
  // The owner's session is untouched.
  const mine = (await client.callTool({ name: 'my_access', arguments: {} })).structuredContent as { principal: string };
  assert.equal(mine.principal, 'tuner');
  await transport.terminateSession();
  await client.close();
});

test('the session ends when the token that opened it expires', async () => {
  const earlier = new Set(gw.core.sessions.list().map((s) => s.id));
  const { client } = await connect(await token({ expIn: 2 }));
  const session = gw.core.sessions.list().find((s) => s.listener === 'mcp-1' && !earlier.has(s.id));
  assert.ok(session);
  const ended = await until(() => gw.events().find((e) => e.event === 'session.closed' && e.session === session.id), 'session.closed on expiry');
  assert.equal(ended.detail?.reason, 'grant_expired');
  assert.equal(gw.core.sessions.get(session.id), undefined);
  // The MCP session is gone too: the client's next call is refused.
  await assert.rejects(client.callTool({ name: 'my_access', arguments: {} }));
  await client.close();
});

// Last: it closes the listener the other tests share.
test('closing the listener ends its MCP sessions', async () => {
  const earlier = new Set(gw.core.sessions.list().map((s) => s.id));
  const { client } = await connect(await token());
  const session = gw.core.sessions.list().find((s) => s.listener === 'mcp-1' && !earlier.has(s.id));
  assert.ok(session);
  await gw.listeners.get('mcp-1')!.close();
  const ended = await until(() => gw.events().find((e) => e.event === 'session.closed' && e.session === session.id), 'session.closed on listener close');
  assert.equal(ended.detail?.reason, 'shutdown');
  assert.equal(gw.core.sessions.list().some((s) => s.listener === 'mcp-1'), false);
  await client.close();
});
