// The MCP door's own tools and identities, against the official SDK client over real TLS: just-in-time
// access (request_access → a person approves → a task-bound runtime grant → task_done revokes it), the
// RFC 8693 delegation chain checked against acting_for, task claims, X.509-SVID mutual TLS, the per-task
// call budget, unknown tools and bad arguments. Asserted on the far side: the grant store, the session
// registry and the journal (one correlation id across a call's events).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import tls from 'node:tls';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { freePort, tempDir, until } from '../../support.ts';
import { makeSvid, makeTestPki, type CertPair, type TestPki } from '../../sync/certs.ts';
import { startTestGateway, type TestGateway } from '../../core-harness.ts';
import { mcpAdapter } from '../../../src/adapters/mcp/adapter.ts';
import { makeIssuer, mcpListenerYaml, type TestIssuer, type TokenClaims } from './fixture.ts';
import { FAILURE_META_KEY } from '../../../src/adapters/mcp/tools.ts';

const ISSUER = 'https://idp.plant.example';
const AGENT = 'spiffe://plant.example/agent/tuner';
const AUDITOR = 'auditor@idp.plant.example';
const OPERATOR = { uid: 1000, user: 'shift-lead', verified: true };

let tmp: { dir: string; cleanup: () => void };
let pki: TestPki;
let gw: TestGateway;
let resource: string;
let budgetResource: string;
let slowResource: string;
let idp: TestIssuer;
let svid: CertPair;
let strangerSvid: CertPair;

const token = (claims: TokenClaims = {}): Promise<string> => idp.token(claims);

async function connect(bearer: string, url = resource): Promise<{ client: Client; transport: StreamableHTTPClientTransport; close(): Promise<void> }> {
  const client = new Client({ name: 'penstock-test-agent', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${bearer}` } } });
  await client.connect(transport);
  return { client, transport, close: async () => { await transport.terminateSession(); await client.close(); } };
}

/** connect, and the id of the core session it opened. */
async function connectSession(bearer: string, url: string): Promise<Awaited<ReturnType<typeof connect>> & { coreSession: string }> {
  const earlier = new Set(gw.core.sessions.list().map((s) => s.id));
  const c = await connect(bearer, url);
  const s = gw.core.sessions.list().find((x) => !earlier.has(x.id));
  assert.ok(s, 'a core session opened');
  return { ...c, coreSession: s.id };
}

type Structured = Record<string, unknown> & { status?: string; error?: string; correlation?: string };
async function call(client: Client, name: string, args: Record<string, unknown>): Promise<{ isError: boolean; out: Structured }> {
  const r = await client.callTool({ name, arguments: args });
  // A failed call's reason is in _meta (FAILURE_META_KEY), not in structuredContent (that is the result's).
  return { isError: r.isError === true, out: (r.isError ? r._meta?.[FAILURE_META_KEY] : r.structuredContent) as Structured };
}

/** One raw initialize over TLS with a client certificate (the SDK client's fetch takes none). */
function initializeWithCertificate(pair: CertPair, headers: Record<string, string> = {}): Promise<{ status: number; sessionId?: string }> {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'svid-agent', version: '1' } } });
  return new Promise((resolve, reject) => {
    const req = https.request(resource, {
      method: 'POST',
      cert: pair.cert,
      key: pair.key,
      ca: pki.ca.cert,
      agent: false,
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    }, (res) => {
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode ?? 0, ...(typeof res.headers['mcp-session-id'] === 'string' ? { sessionId: res.headers['mcp-session-id'] } : {}) }));
    });
    req.once('error', reject);
    req.end(body);
  });
}

before(async () => {
  tmp = tempDir('penstock-mcp-access-');
  pki = makeTestPki();
  svid = makeSvid(pki, 'tuner-svid', ['spiffe://plant.example/agent/tuner-workload']);
  strangerSvid = makeSvid(pki, 'stranger-svid', ['spiffe://plant.example/agent/stranger']);
  tls.setDefaultCACertificates([...tls.getCACertificates('default'), pki.ca.cert]);
  idp = await makeIssuer(tmp.dir, { issuer: ISSUER, sub: AGENT, aud: () => resource });
  const [port, budgetPort, slowPort] = [await freePort(), await freePort(), await freePort()];
  slowResource = `https://127.0.0.1:${slowPort}/mcp`;
  resource = `https://127.0.0.1:${port}/mcp`;
  budgetResource = `https://127.0.0.1:${budgetPort}/mcp`;
  const listener = (id: string, p: number, res: string, extra: string) => mcpListenerYaml({ id, port: p, resource: res, pki, idp, clientCa: true, audience: res, extra });
  gw = await startTestGateway(tmp.dir, `
appliance: { id: gw-mcp-access, site: Test bench, zone: lab, state_dir: ${tmp.dir}/state }
principals:
  - id: tuner
    kind: agent
    owner: Controls team
    purpose: Loop tuning
    acting_for: "work-order:WO-7"
    credentials:
      token_subjects: ["${AGENT}"]
      x509: { spiffe_ids: ["spiffe://plant.example/agent/tuner-workload"] }
  - { id: auditor, kind: agent, owner: Audit, purpose: Reviews, credentials: { token_subjects: ["${AUDITOR}"] } }
targets:
  - { id: plc-1, protocol: modbus, zone: lab, host: 127.0.0.1, port: 502 }
grants:
  - id: g-audit
    principal: auditor
    targets: [plc-1]
    task: { ticket: AUD-1 }
    rules:
      - modbus: { preset: readonly }
listeners:${listener('mcp-1', port, resource, '')}${listener('mcp-budget', budgetPort, budgetResource, '\n    max_calls_per_task: 3')}${listener('mcp-slow', slowPort, slowResource, '\n    calls_per_second: 2\n    max_sessions_per_principal: 2\n    max_sessions: 3')}
`, mcpAdapter, { runtimeGrants: true });
});

after(async () => {
  await gw?.stop();
  pki?.cleanup();
  tmp?.cleanup();
});

test('request_access → a person approves → a runtime grant bound to the task → task_done revokes it; one correlation id per call', async () => {
  const agent = await connect(await token({ task: 'WO-7' }));
  const ask = { task: 'WO-7', purpose: 'Retune loop 3', targets: ['plc-1'], rules: [{ modbus: { preset: 'readonly' } }], duration_seconds: 900 };
  const pending = await call(agent.client, 'request_access', ask);
  assert.equal(pending.isError, false);
  assert.equal(pending.out.status, 'pending_approval');
  const requestId = String(pending.out.request);
  const grantId = String(pending.out.grant);
  // Nothing is granted yet; plant staff see the request with the grant it would make.
  assert.equal(gw.core.grants.get(grantId), undefined);
  const waiting = gw.core.approvals.get(requestId);
  assert.ok(waiting, 'the request waits in the approvals list');
  assert.deepEqual((waiting.action.object as unknown as { grant: { targets: string[]; task: { ticket: string; require_claim?: boolean } } }).grant.task, { ticket: 'WO-7', purpose: 'Retune loop 3', require_claim: true });
  assert.match(waiting.binding ?? '', /^[0-9a-f]{64}$/);
  const mine = await call(agent.client, 'my_access', {});
  assert.deepEqual((mine.out.pending_approvals as { id: string }[]).map((a) => a.id), [requestId]);

  let listChanged = 0;
  agent.client.setNotificationHandler(ToolListChangedNotificationSchema, () => void listChanged++);
  // What `penstockctl approvals approve ID` does.
  gw.core.approvals.approve(requestId, OPERATOR, 'ok for WO-7');
  const held = await until(() => gw.core.grants.get(grantId), 'the grant issued on approval');
  assert.equal(held.principal, 'tuner');
  assert.equal(held.task.ticket, 'WO-7');
  assert.equal(held.task.require_claim, true);
  assert.deepEqual(held.issued?.by, OPERATOR);
  // 15 minutes asked, but the token that asked expires in 10: the grant never outlives it.
  const left = Date.parse(held.window!.to) - Date.now();
  assert.ok(left <= 600_000 && left > 500_000, `the grant ends with the token (${left} ms left)`);
  await until(() => listChanged > 0, 'notifications/tools/list_changed on the new grant');
  assert.ok((await agent.client.listTools()).tools.some((t) => t.name === 'modbus_read'), 'the new grant lists modbus_read');
  const after = await call(agent.client, 'my_access', {});
  assert.ok((after.out.grants as { id: string; active: boolean }[]).some((g) => g.id === grantId && g.active));

  const done = await call(agent.client, 'task_done', { task: 'WO-7' });
  assert.deepEqual(done.out.revoked, [grantId]);
  assert.ok(gw.core.grants.get(grantId)?.revoked, 'the grant is revoked in the store');

  // The evidence: the call, the request, the approval, the grant, each under its call's correlation id.
  // The revocation is journaled lazily (it gates nothing): it is committed within a few milliseconds.
  await agent.close();
  await until(() => gw.events().some((e) => e.event === 'grant.revoked' && e.detail?.grant === grantId), 'the revocation journaled');
  const events = gw.events();
  const called = events.filter((e) => e.event === 'mcp.tool_called' && e.detail?.tool === 'request_access' && e.principal === 'tuner');
  const correlation = called.at(-1)!.detail!.correlation;
  assert.ok(typeof correlation === 'string');
  assert.deepEqual(called.at(-1)!.chain, ['tuner', 'work-order:WO-7']);
  assert.ok(events.some((e) => e.event === 'approval.requested' && e.detail?.approval === requestId && e.detail?.correlation === correlation && e.detail?.kind === 'access_request'));
  assert.ok(events.some((e) => e.event === 'approval.granted' && e.detail?.approval === requestId && e.detail?.correlation === correlation));
  assert.ok(events.some((e) => e.event === 'grant.issued' && e.detail?.grant === grantId));
  assert.ok(events.some((e) => e.event === 'grant.revoked' && e.detail?.grant === grantId));
});

test('request_access refuses another task than the token\'s, and rules the gateway could never grant', async () => {
  const agent = await connect(await token({ task: 'WO-7' }));
  const base = { purpose: 'x', targets: ['plc-1'], rules: [{ modbus: { preset: 'readonly' } }], duration_seconds: 600 };
  const other = await call(agent.client, 'request_access', { ...base, task: 'WO-8' });
  assert.equal(other.out.error, 'task_mismatch');
  const unknownTarget = await call(agent.client, 'request_access', { ...base, task: 'WO-7', targets: ['plc-nowhere'] });
  assert.equal(unknownTarget.out.error, 'invalid_request');
  const badRule = await call(agent.client, 'request_access', { ...base, task: 'WO-7', rules: [{ modbus: { preset: 'everything' } }] });
  assert.equal(badRule.out.error, 'invalid_request');
  assert.equal(gw.core.approvals.list().filter((a) => a.principal === 'tuner').length, 0, 'no request reached plant staff');
  await agent.close();
});

test('a token for one task cannot be used on a session opened for another', async () => {
  const agent = await connect(await token({ task: 'WO-7' }));
  const res = await fetch(resource, {
    method: 'POST',
    headers: { authorization: `Bearer ${await token({ task: 'WO-9' })}`, 'mcp-session-id': agent.transport.sessionId!, 'mcp-protocol-version': '2025-06-18', 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/list' }),
  });
  assert.equal(res.status, 403);
  await until(() => gw.events().some((e) => e.event === 'auth.failed' && e.detail?.reason === 'task_mismatch'), 'task_mismatch journaled');
  await agent.close();
});

test('a delegated token (RFC 8693 act) must name the principal\'s acting_for; a mismatch is refused and raises an alert', async () => {
  // The agent acts now (outermost act), for the work order (sub): the chain the principal is configured with.
  const ok = await connect(await token({ sub: 'work-order:WO-7', act: { sub: AGENT } }));
  const session = gw.core.sessions.list().find((s) => s.principal.id === 'tuner' && s.attributes.subject === AGENT);
  assert.ok(session);
  assert.deepEqual(session.chain, ['tuner', 'work-order:WO-7']);
  await ok.close();

  // The agent acting for a vendor it is not configured to serve, on that vendor's work order.
  await gw.core.recorded(); // earlier tests' lazily journaled refusals land before the baseline
  const before = gw.events().length;
  const cases: [string, string][] = [
    ['act_mismatch', await token({ sub: 'work-order:WO-7', act: { sub: AGENT, act: { sub: 'vendor-x' } } })],
    ['act_mismatch', await token({ sub: 'work-order:WO-666', act: { sub: AGENT } })],
    ['act_mismatch', await token({ sub: 'someone', act: { sub: AUDITOR } })], // the auditor acts for nobody
    ['act_malformed', await token({ sub: 'work-order:WO-7', act: { client: AGENT } })],
  ];
  for (const [reason, t] of cases) {
    const res = await fetch(resource, { method: 'POST', headers: { authorization: `Bearer ${t}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' });
    assert.equal(res.status, 401, reason);
    assert.equal(((await res.json()) as { error_description: string }).error_description, reason);
  }
  const alerts = await until(() => {
    const got = gw.events().slice(before).filter((e) => e.event === 'alert.delegation_mismatch');
    return got.length >= 3 && got;
  }, 'delegation alerts');
  assert.deepEqual(alerts[0]!.detail?.token_chain, ['vendor-x', 'work-order:WO-7']);
  assert.equal(alerts[0]!.detail?.acting_for, 'work-order:WO-7');
  assert.equal(gw.core.sessions.list().some((s) => s.attributes.subject === AGENT && s.chain.includes('vendor-x')), false);
});

test('an X.509-SVID names the principal by its SPIFFE ID over mutual TLS; an untrusted or unknown certificate is refused', async () => {
  const okRes = await initializeWithCertificate(svid);
  assert.equal(okRes.status, 200);
  assert.ok(okRes.sessionId);
  const session = gw.core.sessions.list().find((s) => s.attributes.spiffe_id === 'spiffe://plant.example/agent/tuner-workload');
  assert.ok(session, 'a session of the SVID\'s principal');
  assert.equal(session.principal.id, 'tuner');
  assert.equal(session.attributes.identified_by, 'certificate');
  session.close();

  await gw.core.recorded(); // earlier tests' lazily journaled refusals land before the baseline
  const before = gw.events().length;
  assert.equal((await initializeWithCertificate(pki.untrustedClient)).status, 401);
  assert.equal((await initializeWithCertificate(strangerSvid)).status, 401);
  // A certificate of one principal with a token of another: refused, not either.
  assert.equal((await initializeWithCertificate(svid, { authorization: `Bearer ${await token({ sub: AUDITOR })}` })).status, 401);
  const reasons = await until(() => {
    const got = gw.events().slice(before).filter((e) => e.event === 'auth.failed' && e.listener === 'mcp-1').map((e) => `${e.detail?.reason}/${e.detail?.tls_reason ?? ''}`);
    return got.length >= 3 && got;
  }, 'three refusals');
  assert.deepEqual(reasons.sort(), ['certificate_refused/unknown_spiffe_id', 'certificate_refused/untrusted_certificate', 'identity_mismatch/']);
});

test('the per-task call budget: beyond max_calls_per_task a call is refused and journaled', async () => {
  const agent = await connect(await token({ task: 'WO-7', aud: budgetResource }), budgetResource);
  for (let i = 0; i < 3; i++) assert.equal((await call(agent.client, 'my_access', {})).isError, false);
  const refused = await call(agent.client, 'my_access', {});
  assert.equal(refused.isError, true);
  assert.equal(refused.out.error, 'call_budget_spent');
  // The budget is the task's, not the session's: a new session for the same task has none left.
  const again = await connect(await token({ task: 'WO-7', aud: budgetResource }), budgetResource);
  assert.equal((await call(again.client, 'my_access', {})).out.error, 'call_budget_spent');
  await until(() => gw.events().some((e) => e.event === 'mcp.tool_refused' && e.detail?.reason === 'call_budget_spent'), 'mcp.tool_refused journaled');
  await agent.close();
  await again.close();
});

test('calls per second per session: a burst beyond it is refused rate_limited, and the refusals do not flood the journal', async () => {
  const agent = await connect(await token({ aud: slowResource }), slowResource);
  const results = await Promise.all(Array.from({ length: 40 }, () => call(agent.client, 'my_access', {})));
  const limited = results.filter((r) => r.out.error === 'rate_limited').length;
  assert.ok(results.filter((r) => !r.isError).length >= 2, 'the first calls of the burst run');
  assert.ok(limited >= 30, `${limited} of 40 refused`);
  await until(() => gw.events().some((e) => e.event === 'mcp.tool_refused' && e.detail?.reason === 'rate_limited'), 'rate_limited journaled');
  const journaled = gw.events().filter((e) => e.event === 'mcp.tool_refused' && e.detail?.reason === 'rate_limited').length;
  assert.ok(journaled <= 20, `${journaled} refusals journaled one by one (the rest counted)`);
  await agent.close();
});

test('sessions per principal are bounded (the least recently used one ends) and the door\'s total too (503)', async () => {
  const t = await token({ aud: slowResource });
  const a = await connectSession(t, slowResource);
  const b = await connect(t, slowResource);
  await call(b.client, 'my_access', {}); // b is the more recently used
  const c = await connect(t, slowResource); // a third for tuner: a ends
  const open = () => gw.core.sessions.list().filter((s) => s.listener === 'mcp-slow');
  await until(() => open().length === 2 && !open().some((s) => s.id === a.coreSession), 'the least recently used session ended');
  assert.equal((await call(b.client, 'my_access', {})).isError, false, 'b goes on');
  // The door's own bound: tuner's two and the auditor's one fill it; the next initialize is refused.
  const d = await connect(await token({ sub: AUDITOR, aud: slowResource }), slowResource);
  const res = await fetch(slowResource, { method: 'POST', headers: { authorization: `Bearer ${await token({ sub: AUDITOR, aud: slowResource })}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }) });
  assert.equal(res.status, 503);
  await until(() => gw.events().some((e) => e.event === 'mcp.session_refused' && e.detail?.reason === 'too_many_sessions'), 'mcp.session_refused journaled');
  for (const x of [b, c, d]) await x.close();
  await a.client.close();
});

test('an unknown tool and arguments outside a tool\'s schema are tool errors with codes; the session goes on', async () => {
  const agent = await connect(await token());
  const unknown = await call(agent.client, 'format_plc', {});
  assert.equal(unknown.isError, true);
  assert.equal(unknown.out.error, 'unknown_tool');
  const bad = await call(agent.client, 'task_done', { task: 42 });
  assert.equal(bad.out.error, 'invalid_arguments');
  const extra = await call(agent.client, 'my_access', { everything: true });
  assert.equal(extra.out.error, 'invalid_arguments');
  assert.equal((await call(agent.client, 'my_access', {})).isError, false);
  await agent.close();
});
