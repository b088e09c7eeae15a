// Grant envelopes verified offline (src/grants/envelope.ts): signed by a real Ed25519 signer (jose, and
// openssl for interop), checked against pinned keys, the grant checked as a runtime grant against a real
// config; the ledger of jtis and uses on disk; and max_uses counted in a real DaemonCore's sessions.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManualClock } from '../../src/common/clock.ts';
import { isPenstockError, type ErrorCode } from '../../src/common/errors.ts';
import { checkConfig, loadConfig } from '../../src/config/load.ts';
import type { EnvelopesConfig } from '../../src/config/schema.ts';
import type { LoadedConfig } from '../../src/config/types.ts';
import { protocols } from '../../src/adapters/registry.ts';
import { EnvelopeLedger, importEnvelope, revokeSpent, verifyEnvelope } from '../../src/grants/envelope.ts';
import { validateRuntimeGrant } from '../../src/grants/validate.ts';
import type { Action } from '../../src/policy/types.ts';
import { tempDir } from '../support.ts';
import { startTestCore, type TestCore } from '../core-harness.ts';
import { grantFor, makeKey, opensslKey, opensslSign, sign, spec, type SigningKey } from './envelope-fixture.ts';

const NOW_MS = Date.parse('2026-11-25T09:00:00Z');
const NOW_S = NOW_MS / 1000;
const tmp = tempDir('penstock-envelope-');
let pam: SigningKey;
let other: SigningKey;
let ossl: { keyFile: string; publicPem: string };
let envelopes: EnvelopesConfig;
let config: LoadedConfig;

const indent = (pem: string) => pem.trim().split('\n').map((l) => `        ${l}`).join('\n');

function yaml(keys: { kid: string; issuer: string; pem: string }[], extra = ''): string {
  return `appliance: { id: gw-env, site: test, zone: lab, state_dir: ${tmp.dir}/state }
principals:
  - { id: vendor-1, kind: vendor, owner: ACME, purpose: maintenance }
targets:
  - { id: plc-1, protocol: modbus, zone: lab, host: 127.0.0.1, port: 1502 }
envelopes:
  max_lifetime_days: 7
  keys:
${keys.map((k) => `    - kid: ${k.kid}\n      issuer: ${k.issuer}\n      public_key: |\n${indent(k.pem)}`).join('\n')}
${extra}`;
}

const verify = (jws: string, nowMs = NOW_MS) => verifyEnvelope(jws, { config: envelopes, nowMs, validateGrant: (g) => validateRuntimeGrant(config, g) });

async function refusedWith(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isPenstockError(err), `not a PenstockError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

before(async () => {
  pam = await makeKey('pam-2026');
  other = await makeKey('pam-2026');
  ossl = opensslKey(tmp.dir);
  const file = join(tmp.dir, 'penstock.yaml');
  writeFileSync(file, yaml([{ kid: 'pam-2026', issuer: 'central-pam', pem: pam.publicPem }, { kid: 'pam-openssl', issuer: 'central-pam', pem: ossl.publicPem }]));
  config = loadConfig(file, protocols);
  envelopes = config.raw.envelopes!;
});

after(() => tmp.cleanup());

describe('envelope verification', () => {
  it('accepts an envelope signed by a pinned key and returns its grant, jti and lifetime', async () => {
    const s = spec('g-ok', NOW_S);
    const v = await verify(await sign(pam, s));
    assert.equal(v.grant.id, 'g-ok');
    assert.equal(v.grant.principal, 'vendor-1');
    assert.equal(v.jti, 'jti-g-ok');
    assert.equal(v.maxUses, 3);
    assert.equal(v.expiresMs, s.exp * 1000);
  });

  it('accepts an envelope signed by openssl pkeyutl over the signing input (a non-JS signer)', async () => {
    const v = await verify(opensslSign(tmp.dir, ossl.keyFile, 'pam-openssl', spec('g-ossl', NOW_S)));
    assert.equal(v.grant.id, 'g-ossl');
    assert.equal(v.kid, 'pam-openssl');
  });

  it('refuses a signature made by another key under a pinned kid', async () => {
    await refusedWith(verify(await sign(other, spec('g-1', NOW_S))), 'PS_ENVELOPE_BAD_SIGNATURE');
  });

  it('refuses a payload altered after signing', async () => {
    const [h, , sig] = (await sign(pam, spec('g-1', NOW_S))).split('.');
    const altered = Buffer.from(JSON.stringify({ ...spec('g-1', NOW_S), max_uses: 1000 })).toString('base64url');
    await refusedWith(verify(`${h}.${altered}.${sig}`), 'PS_ENVELOPE_BAD_SIGNATURE');
  });

  it('refuses an unknown kid', async () => {
    await refusedWith(verify(await sign({ ...pam, kid: 'nobody' }, spec('g-1', NOW_S))), 'PS_ENVELOPE_UNKNOWN_KEY');
  });

  it('refuses an issuer other than the one pinned with the key', async () => {
    await refusedWith(verify(await sign(pam, spec('g-1', NOW_S, { iss: 'other-pam' }))), 'PS_ENVELOPE_FOREIGN_ISSUER');
  });

  it('refuses typ JWT and a missing typ: an ordinary token is not an envelope', async () => {
    await refusedWith(verify(await sign(pam, spec('g-1', NOW_S), { typ: 'JWT' })), 'PS_ENVELOPE_WRONG_TYPE');
    await refusedWith(verify(await sign(pam, spec('g-1', NOW_S), { typ: undefined })), 'PS_ENVELOPE_WRONG_TYPE');
  });

  it('refuses an expired envelope, and one not valid yet, beyond the allowed skew', async () => {
    const s = spec('g-1', NOW_S);
    await refusedWith(verify(await sign(pam, s), (s.exp + 61) * 1000), 'PS_ENVELOPE_EXPIRED');
    await refusedWith(verify(await sign(pam, s), (s.nbf! - 61) * 1000), 'PS_ENVELOPE_NOT_YET_VALID');
    // Within the skew both still verify.
    assert.equal((await verify(await sign(pam, s), (s.exp - 1) * 1000)).jti, s.jti);
  });

  it('refuses an envelope living longer than max_lifetime_days, and a grant window outside the envelope', async () => {
    await refusedWith(verify(await sign(pam, spec('g-long', NOW_S, {}, 8))), 'PS_ENVELOPE_LIFETIME');
    const s = spec('g-win', NOW_S);
    await refusedWith(verify(await sign(pam, { ...s, grant: grantFor('g-win', s.nbf!, s.exp + 3600) })), 'PS_ENVELOPE_LIFETIME');
    const { window: _w, ...unwindowed } = grantFor('g-win', s.nbf!, s.exp);
    await refusedWith(verify(await sign(pam, { ...s, grant: unwindowed })), 'PS_ENVELOPE_LIFETIME');
  });

  it('refuses a grant the running config does not support (unknown principal), as a runtime grant would be', async () => {
    const s = spec('g-who', NOW_S);
    await refusedWith(verify(await sign(pam, { ...s, grant: grantFor('g-who', s.nbf!, s.exp, 'nobody') })), 'PS_ENVELOPE_GRANT_INVALID');
  });

  it('names a replay a replay even when the grant no longer fits the config', async () => {
    const s = spec('g-gone', NOW_S);
    const jws = await sign(pam, { ...s, grant: grantFor('g-gone', s.nbf!, s.exp, 'removed-vendor') });
    const seen = (jti: string) => jti === s.jti;
    await refusedWith(verifyEnvelope(jws, { config: envelopes, nowMs: NOW_MS, validateGrant: (g) => validateRuntimeGrant(config, g), seen }), 'PS_ENVELOPE_REPLAYED');
  });

  it('refuses what is not a compact JWS, and claims of the wrong shape', async () => {
    await refusedWith(verify('not.a-jws'), 'PS_ENVELOPE_MALFORMED');
    await refusedWith(verify(await sign(pam, { ...spec('g-1', NOW_S), max_uses: 0 })), 'PS_ENVELOPE_MALFORMED');
  });
});

describe('envelope keys in the config', () => {
  const issues = (text: string) => {
    const file = join(tmp.dir, 'check.yaml');
    writeFileSync(file, text);
    return checkConfig(file, protocols).issues.filter((i) => i.severity === 'error');
  };

  it('refuses a key that is not Ed25519 (an openssl P-256 key), naming the field', () => {
    const ecFile = join(tmp.dir, 'ec.pem');
    execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', ecFile]);
    const ecPem = execFileSync('openssl', ['pkey', '-in', ecFile, '-pubout'], { encoding: 'utf8' });
    const errs = issues(yaml([{ kid: 'ec', issuer: 'central-pam', pem: ecPem }]));
    assert.ok(errs.some((i) => i.field === 'envelopes.keys[0].public_key'), JSON.stringify(errs));
  });

  it('refuses two keys with one kid, and a max lifetime over the cap', () => {
    const two = issues(yaml([{ kid: 'k', issuer: 'a', pem: pam.publicPem }, { kid: 'k', issuer: 'b', pem: other.publicPem }]));
    assert.ok(two.some((i) => i.field === 'envelopes.keys[1].kid'), JSON.stringify(two));
    const long = issues(yaml([{ kid: 'k', issuer: 'a', pem: pam.publicPem }]).replace('max_lifetime_days: 7', 'max_lifetime_days: 365'));
    assert.ok(long.some((i) => i.field === 'envelopes.max_lifetime_days'), JSON.stringify(long));
    assert.deepEqual(issues(yaml([{ kid: 'k', issuer: 'a', pem: pam.publicPem }])), []);
  });
});

describe('import, replay and uses', () => {
  let t: TestCore;
  let ledger: EnvelopeLedger;
  const ledgerFile = () => join(tmp.dir, 'core', 'state', 'envelopes.json');
  const clock = new ManualClock(NOW_MS);
  const by = { uid: 1000, verified: true };
  const read: Action = { target: 'plc-1', verb: 'read', object: { kind: 'modbus', unit: 1, functionCode: 3, table: 'holding_register', address: 0, quantity: 1 } };
  const open = () => t.core.sessions.open({ principal: t.config.principals.get('vendor-1')!, chain: ['vendor-1'], target: 'plc-1', listener: 'test', protocol: 'modbus', remote: '127.0.0.1:1', attributes: {} }, () => {});
  const doImport = async (jws: string) => importEnvelope(jws, { config: t.config.raw.envelopes, ledger, grants: t.core.grants, validateGrant: (g) => validateRuntimeGrant(t.config, g), nowMs: clock.now(), by });

  before(async () => {
    const dir = join(tmp.dir, 'core');
    execFileSync('mkdir', ['-p', join(dir, 'state')]);
    ledger = new EnvelopeLedger(join(dir, 'state', 'envelopes.json'));
    t = await startTestCore(dir, yaml([{ kid: 'pam-2026', issuer: 'central-pam', pem: pam.publicPem }]).replace(`${tmp.dir}/state`, `${dir}/state`), {
      clock,
      runtimeGrants: true,
      takeGrantUse: (g, s) => ledger.takeUse(g, s),
    });
  });

  after(async () => {
    await t.stop();
  });

  it('issues the grant, so policy allows; the same jti again is refused as a replay, also by a ledger read back from disk', async () => {
    const jws = await sign(pam, spec('g-imp', NOW_S));
    assert.equal(t.core.explain('vendor-1', read).effect, 'deny');
    const r = await doImport(jws);
    assert.equal(r.id, 'g-imp');
    assert.equal(t.core.explain('vendor-1', read).effect, 'allow');
    await refusedWith(doImport(jws), 'PS_ENVELOPE_REPLAYED');
    // A fresh ledger on the same file (as after a restart) still knows the jti.
    assert.ok(JSON.parse(readFileSync(ledgerFile(), 'utf8')).envelopes.some((e: { jti: string }) => e.jti === 'jti-g-imp'));
    assert.equal(new EnvelopeLedger(ledgerFile()).seen('jti-g-imp'), true);
  });

  it('a refused grant leaves no jti behind: nothing was granted', async () => {
    const s = spec('g-imp', NOW_S, { jti: 'jti-dup-id' }); // the grant id g-imp is taken
    await refusedWith(doImport(await sign(pam, s)), 'PS_ENVELOPE_GRANT_INVALID');
    assert.equal(ledger.seen('jti-dup-id'), false);
    assert.equal(new EnvelopeLedger(ledgerFile()).seen('jti-dup-id'), false);
  });

  it('max_uses sessions may use the grant; the next is refused; the grant is revoked once the last has ended', async () => {
    await doImport(await sign(pam, spec('g-twice', NOW_S, { max_uses: 2 })));
    t.core.grants.revoke('g-imp', by, 'so that only g-twice allows');
    const s1 = open();
    const s2 = open();
    assert.equal((await t.core.authorize(s1, read)).effect, 'allow');
    assert.equal((await t.core.authorize(s1, read)).effect, 'allow'); // the same session: no second use
    assert.equal((await t.core.authorize(s2, read)).effect, 'allow');
    const s3 = open();
    const third = await t.core.authorize(s3, read);
    assert.equal(third.effect, 'deny');
    assert.equal(third.grant, 'g-twice');
    const entry = JSON.parse(readFileSync(ledgerFile(), 'utf8')).envelopes.find((e: { grant: string }) => e.grant === 'g-twice');
    assert.equal(entry.uses, 2);

    const live = () => new Set(t.core.sessions.list().map((s) => s.id));
    assert.deepEqual(revokeSpent(ledger, t.core.grants, live(), { uid: 0, verified: true }), []); // s1 and s2 still run
    s1.close();
    s2.close();
    assert.deepEqual(revokeSpent(ledger, t.core.grants, live(), { uid: 0, verified: true }), ['g-twice']);
    assert.match(t.core.grants.get('g-twice')!.revoked!.reason, /spent: 2 of 2/);
    await t.core.recorded();
    const revoked = t.events().find((e) => e.event === 'grant.revoked' && (e.detail as { grant?: string }).grant === 'g-twice');
    assert.match(String((revoked?.detail as { reason?: string }).reason), /spent/);
    s3.close();
  });

  it('a damaged ledger is refused, not taken as empty (that would allow replays)', () => {
    const bad = join(tmp.dir, 'bad-ledger.json');
    writeFileSync(bad, JSON.stringify({ version: 1, envelopes: [{ jti: 'x' }] }));
    assert.throws(() => new EnvelopeLedger(bad), (err: unknown) => isPenstockError(err, 'PS_ENVELOPE_MALFORMED'));
    assert.ok(existsSync(bad));
  });
});
