// A second MCP client no one here wrote: the MCP Inspector's command-line client
// (@modelcontextprotocol/inspector-cli, bin mcp-inspector-cli), run as a person runs it, over Streamable
// HTTP and TLS on loopback, offline. It trusts the gateway's CA through NODE_EXTRA_CA_CERTS and sends the
// bearer token with --header. Asserts on the gateway's side: the session opened by the token's principal,
// and mcp.tool_called with a correlation id that the call's other events would share.
//
// The bin comes from PENSTOCK_INSPECTOR_CLI, else node_modules/.bin/mcp-inspector-cli (a devDependency;
// without it the file fails at once, naming it). Two things of inspector-cli 1.0.3 the test works around, as a user must:
//   - its launcher runs the client with `node` from PATH: PATH starts with this runtime's folder;
//   - the client reads its own package.json as `../package.json` relative to the working directory
//     (fs.existsSync on a path it then import()s relative to itself): it runs in its own build/ folder.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeIssuer, mcpListenerYaml, type TestIssuer } from './fixture.ts';
import { freePort, tempDir, until } from '../../support.ts';
import { makeTestPki, type TestPki } from '../../sync/certs.ts';
import { startTestGateway, type TestGateway } from '../../core-harness.ts';
import { mcpAdapter } from '../../../src/adapters/mcp/adapter.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const inspectorBin = process.env.PENSTOCK_INSPECTOR_CLI ?? join(root, 'node_modules/.bin/mcp-inspector-cli');
// A devDependency: missing means a broken install, which fails here at once rather than skipping.
if (!existsSync(inspectorBin)) throw new Error(`no MCP Inspector CLI at ${inspectorBin}: run npm ci (devDependency @modelcontextprotocol/inspector-cli@1.0.3), or set PENSTOCK_INSPECTOR_CLI=PATH`);

const ISSUER = 'https://idp.plant.example';
const SUBJECT = 'spiffe://plant.example/agent/tuner';

let tmp: { dir: string; cleanup: () => void };
let pki: TestPki;
let gw: TestGateway;
let resource: string;
let idp: TestIssuer;
const token = (): Promise<string> => idp.token();

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** mcp-inspector-cli in CLI mode against the test door, with the token as its Authorization header. */
function inspector(bearer: string, args: string[]): Promise<Run> {
  const bin = realpathSync(inspectorBin);
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, '--cli', resource, '--transport', 'http', '--header', `Authorization: Bearer ${bearer}`, ...args], {
      cwd: dirname(bin),
      timeout: 60_000,
      // No proxy, no registry: everything it needs is on this machine and the gateway is on loopback.
      env: { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, NODE_EXTRA_CA_CERTS: pki.ca.certPath, npm_config_offline: 'true', HTTPS_PROXY: '', https_proxy: '' },
    }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }));
  });
}

/** The JSON the CLI prints on stdout (its deprecation notice goes to stderr). */
function output(r: Run): Record<string, unknown> {
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

before(async () => {
  tmp = tempDir('penstock-mcp-inspector-');
  pki = makeTestPki();
  idp = await makeIssuer(tmp.dir, { issuer: ISSUER, sub: SUBJECT, aud: () => resource });
  const port = await freePort();
  resource = `https://127.0.0.1:${port}/mcp`;
  gw = await startTestGateway(tmp.dir, `
appliance: { id: gw-mcp-inspector, site: Test bench, zone: lab, state_dir: ${tmp.dir}/state }
principals:
  - { id: tuner, kind: agent, owner: Controls team, purpose: Loop tuning, acting_for: "work-order:WO-7", credentials: { token_subjects: ["${SUBJECT}"] } }
targets:
  - { id: plc-1, protocol: modbus, zone: lab, host: 127.0.0.1, port: 502 }
grants:
  - id: g-tuning
    principal: tuner
    targets: [plc-1]
    task: { ticket: CHG-42, purpose: Retune loop 3 }
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

test('the Inspector CLI lists the tools over TLS with a bearer token; the session is the token\'s principal\'s', async () => {
  const before = new Set(gw.core.sessions.list().map((s) => s.id));
  const listed = output(await inspector(await token(), ['--method', 'tools/list'])) as { tools: { name: string }[] };
  assert.ok(listed.tools.some((t) => t.name === 'my_access'), JSON.stringify(listed));
  const opened = await until(() => gw.events().find((e) => e.event === 'session.opened' && e.listener === 'mcp-1' && !before.has(String(e.session))), 'session.opened');
  assert.equal(opened.principal, 'tuner');
  assert.deepEqual(opened.chain, ['tuner', 'work-order:WO-7']);
});

test('the Inspector CLI calls my_access: the structured result and the journaled call agree', async () => {
  const before = gw.events().length;
  const result = output(await inspector(await token(), ['--method', 'tools/call', '--tool-name', 'my_access'])) as { isError?: boolean; structuredContent: { principal: string; grants: { id: string }[] } };
  assert.notEqual(result.isError, true, JSON.stringify(result));
  assert.equal(result.structuredContent.principal, 'tuner');
  assert.deepEqual(result.structuredContent.grants.map((g) => g.id), ['g-tuning']);
  const called = await until(() => gw.events().slice(before).find((e) => e.event === 'mcp.tool_called' && e.detail?.tool === 'my_access'), 'mcp.tool_called');
  assert.equal(called.principal, 'tuner');
  assert.equal(called.listener, 'mcp-1');
  assert.match(String(called.detail?.correlation), /^[0-9a-f-]{36}$/);
  assert.deepEqual(called.detail?.arguments, {});
  const session = gw.core.sessions.get(String(called.session)) ?? gw.events().find((e) => e.event === 'session.opened' && e.session === called.session);
  assert.ok(session, 'the call belongs to a session the door opened');
});

test('the Inspector CLI passes typed tool arguments: request_access makes the pending request they describe', async () => {
  const before = gw.events().length;
  // --tool-arg values are parsed as JSON where they parse (arrays, objects, numbers), else kept as strings.
  const r = output(await inspector(await token(), ['--method', 'tools/call', '--tool-name', 'request_access', '--tool-arg',
    'task=CHG-43', 'purpose=Read the loop 4 registers', 'targets=["plc-1"]', 'rules=[{"modbus":{"preset":"readonly"}}]', 'duration_seconds=600']));
  assert.notEqual(r.isError, true, JSON.stringify(r));
  const out = r.structuredContent as { status: string; request: string; grant: string };
  assert.equal(out.status, 'pending_approval');
  // The far side: the request waits for a person, and its journaled grant is the one the arguments describe.
  assert.ok(gw.core.approvals.list().some((a) => a.id === out.request && a.principal === 'tuner'));
  const called = await until(() => gw.events().slice(before).find((e) => e.event === 'mcp.tool_called' && e.detail?.tool === 'request_access'), 'mcp.tool_called');
  const requested = await until(() => gw.events().slice(before).find((e) => e.event === 'approval.requested' && e.detail?.approval === out.request), 'approval.requested');
  assert.equal(requested.detail?.correlation, called.detail?.correlation, 'one correlation id for the call and its request');
  const grant = requested.detail?.grant as { id: string; targets: string[]; task: { ticket: string }; rules: unknown[] };
  assert.deepEqual([grant.id, grant.targets, grant.task.ticket, grant.rules], [out.grant, ['plc-1'], 'CHG-43', [{ modbus: { preset: 'readonly' } }]]);
  assert.equal((called.detail?.arguments as { duration_seconds: unknown }).duration_seconds, 600);
});

test('the Inspector CLI without the token is refused (401) and nothing is opened', async () => {
  await gw.core.recorded(); // earlier tests' lazily journaled records: "nothing opened" counts from here
  const before = gw.events().length;
  const r = await inspector('not.a.jwt', ['--method', 'tools/list']);
  assert.notEqual(r.code, 0);
  await until(() => gw.events().slice(before).some((e) => e.event === 'auth.failed' && e.detail?.reason === 'bad_token'), 'auth.failed bad_token');
  await gw.core.recorded();
  assert.equal(gw.events().slice(before).some((e) => e.event === 'session.opened'), false);
});
