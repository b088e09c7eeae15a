// The MCP module as the rest of Penstock sees it: its listener schema and defaults, that MCP has no
// targets and no rules of its own (each refused with a sentence), the token subjects it adds to a
// principal's credentials, the gateway's own tool as an action object, and a refusal for every reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mcpModule } from '../../../src/adapters/mcp/module.ts';
import { TokenVerifier } from '../../../src/adapters/mcp/tokens.ts';
import { mcpListenerSchema, type McpListenerConfig } from '../../../src/adapters/mcp/schema.ts';
import { principalSchema, ruleSchema } from '../../../src/config/schema.ts';
import { DECISION_REASONS } from '../../../src/policy/types.ts';
import type { Action } from '../../../src/policy/types.ts';
import { tempDir } from '../../support.ts';
import { pino } from 'pino';

const silent = pino({ level: 'silent' });

const listener = {
  id: 'mcp-1', protocol: 'mcp', port: 8443,
  tls: { cert: '/etc/penstock/mcp.crt', key: '/etc/penstock/mcp.key' },
  resource: 'https://gw.example:8443/mcp',
  issuers: [{ issuer: 'https://idp.example', jwks_file: '/etc/penstock/idp.jwks.json' }],
};
const messages = (r: { success: boolean; error?: { issues: { message: string }[] } }) => (r.error?.issues ?? []).map((i) => i.message).join('\n');

test('listener: defaults for skew and body bound, and what is refused', () => {
  const l = mcpListenerSchema.parse(listener);
  assert.equal(l.clock_skew_seconds, 60);
  assert.equal(l.max_body_bytes, 1024 * 1024);
  assert.equal(l.host, '127.0.0.1');
  const bad: [string, unknown][] = [
    ['skew over 300 s', { ...listener, clock_skew_seconds: 301 }],
    ['no issuer', { ...listener, issuers: [] }],
    ['a resource over http', { ...listener, resource: 'http://gw.example/mcp' }],
    ['a resource with a fragment', { ...listener, resource: 'https://gw.example/mcp#x' }],
    ['no tls', { ...listener, tls: undefined }],
    ['an issuer twice', { ...listener, issuers: [listener.issuers[0], listener.issuers[0]] }],
    ['an unknown key', { ...listener, jwks_url: 'https://idp.example/jwks' }],
  ];
  for (const [what, raw] of bad) assert.equal(mcpListenerSchema.safeParse(raw).success, false, what);
});

test('a target of protocol mcp is a config error that says why', () => {
  const r = mcpModule.targetSchema.safeParse({ id: 'x', protocol: 'mcp', zone: 'lab' });
  assert.equal(r.success, false);
  assert.match(messages(r as never), /MCP has no targets/);
});

test('an mcp rule is refused in the rule union, with the reason', () => {
  for (const body of [{}, { effect: 'allow' }, { tools: ['*'] }]) {
    const r = ruleSchema.safeParse({ mcp: body });
    assert.equal(r.success, false);
  }
  const direct = mcpModule.ruleSchema.safeParse({ effect: 'allow' });
  assert.equal(direct.success, false);
  assert.match(messages(direct as never), /granted by the rules of the protocol they act on/);
});

test('credentials.token_subjects: a principal answers to these subjects; an empty list or subject is refused', () => {
  const base = { id: 'agent-1', kind: 'agent', owner: 'Ops', purpose: 'Tuning' };
  assert.deepEqual(principalSchema.parse({ ...base, credentials: { token_subjects: ['spiffe://plant.example/agent-1'] } }).credentials, { token_subjects: ['spiffe://plant.example/agent-1'] });
  assert.equal(principalSchema.safeParse({ ...base, credentials: { token_subjects: [] } }).success, false);
  assert.equal(principalSchema.safeParse({ ...base, credentials: { token_subjects: [''] } }).success, false);
});

test('the gateway\'s own tool as an action object: schema, validation, rendering, description', () => {
  const object = mcpModule.objectSchema.parse({ kind: 'mcp', tool: 'my_access' });
  const action: Action & { object: typeof object } = { target: '(gateway)', verb: 'read', object };
  assert.equal(mcpModule.matcher.validate(action, object), undefined);
  assert.match(mcpModule.matcher.validate(action, { kind: 'mcp', tool: 'write_register' }) ?? '', /no gateway tool/);
  assert.equal(mcpModule.objectSchema.safeParse({ kind: 'mcp', tool: 'a b' }).success, false);
  assert.deepEqual(mcpModule.renderObject(object), { tool: 'my_access' });
  assert.equal(mcpModule.describeAction(action), 'read tool my_access');
  assert.equal(mcpModule.matcher.match(undefined as never, action, object, { target: undefined, profile: undefined }, 'overlap').fits, false);
});

test('refusals: every decision reason reads as a tool error led by its code', () => {
  assert.deepEqual(Object.keys(mcpModule.refusals).sort(), Object.keys(DECISION_REASONS).sort());
  for (const [reason, text] of Object.entries(mcpModule.refusals)) assert.ok(text.startsWith(`${reason}: `), reason);
});

test('a JWKS file that is missing or not a key set stops the listener from starting, naming the file', () => {
  const tmp = tempDir('penstock-mcp-jwks-');
  try {
    const cfg = (file: string): McpListenerConfig => mcpListenerSchema.parse({ ...listener, issuers: [{ issuer: 'https://idp.example', jwks_file: file }] });
    const missing = join(tmp.dir, 'absent.json');
    assert.throws(() => new TokenVerifier(cfg(missing), tmp.dir, silent), (e: Error) => e.message.includes(missing));
    const notKeys = join(tmp.dir, 'not-keys.json');
    writeFileSync(notKeys, '{"kty":"EC"}');
    assert.throws(() => new TokenVerifier(cfg(notKeys), tmp.dir, silent), (e: Error) => e.message.includes(notKeys));
    // Neither a pinned file nor an endpoint: the config says so.
    const neither = mcpListenerSchema.safeParse({ ...listener, issuers: [{ issuer: 'https://idp.example' }] });
    assert.equal(neither.success, false);
  } finally {
    tmp.cleanup();
  }
});

test('only a Bearer Authorization header yields a token', () => {
  assert.equal(TokenVerifier.bearer('Bearer abc.def.ghi'), 'abc.def.ghi');
  assert.equal(TokenVerifier.bearer('bearer abc.def.ghi'), 'abc.def.ghi');
  for (const h of [undefined, '', 'Basic dXNlcjpwYXNz', 'Bearer', 'Bearer a b']) assert.equal(TokenVerifier.bearer(h), undefined, String(h));
});

test('the module\'s list of gateway tools is the tools the door offers', async () => {
  const { gatewayTools } = await import('../../../src/adapters/mcp/gateway-tools.ts');
  const { GATEWAY_TOOLS } = await import('../../../src/adapters/mcp/module.ts');
  assert.deepEqual(gatewayTools({ issued: new Map(), tokenExpiryMs: () => 0 }).map((t) => t.name), [...GATEWAY_TOOLS]);
});
