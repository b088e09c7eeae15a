// Grant envelopes end to end: the real daemon (src/main.ts as a process) and the real penstockctl. An
// envelope signed by central PAM's key (jose, and openssl for a non-JS signer) is imported and its
// grant then allows; every refusal has its code and an admin.refused record in the journal; a jti
// stays refused after the daemon restarts; and an envelope's max_uses counts real sessions (mbpoll
// through the Modbus/TCP front door to a pymodbus PLC) until the grant is revoked as spent.
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { adminRequest } from '../../src/admin/client.ts';
import { startDaemon, tempDir, until, type DaemonProcess } from '../e2e/daemon-harness.ts';
import { Plc, freePort, mbpoll } from '../adapters/modbus/fixtures/harness.ts';
import { modbusDoorYaml } from '../e2e/modbus-site.ts';
import { grantFor, makeKey, opensslKey, opensslSign, sign, spec, type SigningKey } from '../grants/envelope-fixture.ts';

const tmp = tempDir('penstock-envelope-daemon-');
let daemon: DaemonProcess;
let pam: SigningKey;
let stranger: SigningKey;
let ossl: { keyFile: string; publicPem: string };
let plc: Plc;
let plcPort: number;
let modbusPort: number;
const nowS = () => Math.floor(Date.now() / 1000);

function config(): string {
  const indent = (pem: string) => pem.trim().split('\n').map((l) => `        ${l}`).join('\n');
  return `appliance:
  id: envelope-gw
  site: Offshore substation
  zone: dmz
  state_dir: ${tmp.dir}/state
  runtime_dir: ${tmp.dir}/run
${modbusDoorYaml(modbusPort, plcPort)}envelopes:
  max_lifetime_days: 7
  keys:
    - kid: pam-2026
      issuer: central-pam
      public_key: |
${indent(pam.publicPem)}
    - kid: pam-openssl
      issuer: central-pam
      public_key: |
${indent(ossl.publicPem)}
`;
}

let fileNo = 0;
/** Write the envelope to a file and import it with penstockctl --json. */
async function importFile(jws: string) {
  const file = join(tmp.dir, `envelope-${++fileNo}.jws`);
  writeFileSync(file, `${jws}\n`);
  return daemon.ctl(['--json', 'grants', 'import', file]);
}

interface Tailed {
  event: { event: string; detail?: { command?: string; error?: string; envelope?: { jti?: string; kid?: string; iss?: string } } };
}
async function refusals(): Promise<Tailed[]> {
  const r = (await adminRequest(daemon.socket, 'journal.tail', { count: 200 })) as { events: Tailed[] };
  return r.events.filter((e) => e.event.event === 'admin.refused' && e.event.detail?.command === 'grants.import');
}

async function assertRefused(jws: string, code: string, jti: string): Promise<void> {
  const r = await importFile(jws);
  assert.equal(r.code, 5, `exit ${r.code}: ${r.stdout}${r.stderr}`);
  assert.equal((JSON.parse(r.stderr) as { error: { code: string } }).error.code, code, r.stderr);
  const journaled = (await refusals()).find((e) => e.event.detail?.error === code && e.event.detail.envelope?.jti === jti);
  assert.ok(journaled, `no admin.refused with ${code} for ${jti} in the journal`);
}

const policyCheck = () => daemon.ctl(['policy', 'check', 'vendor-1', 'plc-1', 'modbus', 'read', 'holding_register', '0']);

before(async () => {
  pam = await makeKey('pam-2026');
  stranger = await makeKey('pam-2026');
  ossl = opensslKey(tmp.dir);
  [plcPort, modbusPort] = [await freePort(), await freePort()];
  plc = await Plc.start('tcp', plcPort);
  daemon = await startDaemon(tmp.dir, config());
});

after(async () => {
  await daemon?.stop();
  await plc?.stop();
  tmp.cleanup();
});

describe('penstockctl grants import', () => {
  it('imports a valid envelope: prints the grant id, and policy then allows', async () => {
    assert.equal((await policyCheck()).code, 1);
    const file = join(tmp.dir, 'valid.jws');
    const jws = await sign(pam, spec('g-env', nowS()));
    writeFileSync(file, jws);
    const r = await daemon.ctl(['grants', 'import', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^issued grant g-env /);
    const allowed = await policyCheck();
    assert.equal(allowed.code, 0, allowed.stdout + allowed.stderr);
    // Journaled before it ran, naming the jti; the envelope itself (a bearer grant) is not in the journal.
    const tail = (await adminRequest(daemon.socket, 'journal.tail', { count: 50 })) as { events: Tailed[] };
    assert.ok(tail.events.some((e) => e.event.event === 'admin.request' && e.event.detail?.command === 'grants.import' && e.event.detail.envelope?.jti === 'jti-g-env'));
    assert.ok(tail.events.some((e) => e.event.event === 'grant.issued'));
    assert.ok(!JSON.stringify(tail).includes(jws.split('.')[2]!), 'the envelope\'s signature is in the journal');
  });

  it('refuses the same envelope again as a replay, and journals the refusal with its jti', async () => {
    const jws = await sign(pam, spec('g-env', nowS()));
    await assertRefused(jws, 'PS_ENVELOPE_REPLAYED', 'jti-g-env');
  });

  it('refuses each bad envelope with its own code, and journals each', async () => {
    const now = nowS();
    const cases: [string, string, Promise<string>][] = [
      ['PS_ENVELOPE_EXPIRED', 'jti-g-old', sign(pam, spec('g-old', now - 3 * 86_400, {}, 1))],
      ['PS_ENVELOPE_NOT_YET_VALID', 'jti-g-later', (async () => {
        const s = spec('g-later', now + 86_400);
        return sign(pam, { ...s, iat: now, nbf: now + 86_400, grant: grantFor('g-later', now + 86_400, s.exp) });
      })()],
      ['PS_ENVELOPE_BAD_SIGNATURE', 'jti-g-forged', sign(stranger, spec('g-forged', now))],
      ['PS_ENVELOPE_UNKNOWN_KEY', 'jti-g-kid', sign({ ...pam, kid: 'pam-1999' }, spec('g-kid', now))],
      ['PS_ENVELOPE_FOREIGN_ISSUER', 'jti-g-iss', sign(pam, spec('g-iss', now, { iss: 'other-plant-pam' }))],
      ['PS_ENVELOPE_WRONG_TYPE', 'jti-g-jwt', sign(pam, spec('g-jwt', now), { typ: 'JWT' })],
      ['PS_ENVELOPE_LIFETIME', 'jti-g-long', sign(pam, spec('g-long', now, {}, 10))],
      ['PS_ENVELOPE_GRANT_INVALID', 'jti-g-who', (async () => {
        const s = spec('g-who', now);
        return sign(pam, { ...s, grant: grantFor('g-who', s.nbf!, s.exp, 'vendor-nobody') });
      })()],
    ];
    for (const [code, jti, jws] of cases) await assertRefused(await jws, code, jti);
    // None of them left a grant behind.
    const grants = await daemon.json<{ id: string }[]>(['grants', 'list']);
    assert.deepEqual(grants.map((g) => g.id), ['g-env']);
  });

  it('imports an envelope signed by openssl (a non-JS signer), read from stdin', async () => {
    const jws = opensslSign(tmp.dir, ossl.keyFile, 'pam-openssl', spec('g-ossl', nowS()));
    const r = await daemon.ctl(['--json', 'grants', 'import', '-'], jws);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { id: string; kid: string }).id, 'g-ossl');
  });

  it('after a restart the jti is still refused, and the imported grant still allows', async () => {
    const jws = await sign(pam, spec('g-env', nowS()));
    assert.equal(await daemon.stop(), 0, daemon.stderr());
    daemon = await startDaemon(tmp.dir, config());
    await assertRefused(jws, 'PS_ENVELOPE_REPLAYED', 'jti-g-env');
    assert.equal((await policyCheck()).code, 0);
  });

  it('max_uses counts sessions: the next session is refused, and the grant is revoked as spent once the last ended', async () => {
    for (const id of ['g-env', 'g-ossl']) assert.equal((await daemon.ctl(['grants', 'revoke', id, '--reason', 'test: only g-once may allow'])).code, 0);
    assert.equal((await importFile(await sign(pam, spec('g-once', nowS(), { max_uses: 1 })))).code, 0);
    const read = () => mbpoll(['-m', 'tcp', '-p', String(modbusPort), '-a', '1', '-t', '4', '-r', '5', '-c', '1', '127.0.0.1']);
    const first = await read(); // one session: connect, read, close
    assert.equal(first.code, 0, first.stdout + first.stderr);
    await plc.logged(); // the first read's log line can come after its answer
    const readsAtPlc = plc.requests.filter((r) => r.fc === 3).length;
    const second = await read();
    assert.notEqual(second.code, 0, 'the second session must be refused');
    await plc.logged();
    assert.equal(plc.requests.filter((r) => r.fc === 3).length, readsAtPlc, 'the refused read never reached the PLC');
    const revoked = await until(async () => {
      const g = (await daemon.json<{ id: string; revoked?: { reason: string } }[]>(['grants', 'list'])).find((x) => x.id === 'g-once');
      return g?.revoked;
    }, 'g-once revoked as spent');
    assert.match(revoked.reason, /spent: 1 of 1 sessions/);
    const journal = (await adminRequest(daemon.socket, 'journal.tail', { count: 50 })) as { events: { event: { event: string; detail?: { grant?: string; reason?: string } } }[] };
    assert.ok(journal.events.some((e) => e.event.event === 'grant.revoked' && e.event.detail?.grant === 'g-once' && /spent/.test(e.event.detail.reason ?? '')));
  });
});
