// OpenSSH user certificates made by ssh-keygen (the real CA tool) checked by certs.ts: signature, type,
// validity window against an injected time, principals, and critical options.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkCertificate, parseCertificate, sourceAllowed } from '../../../src/adapters/ssh/certs.ts';
import { parseAuthorizedKeyLine, verifySshSignature } from '../../../src/adapters/ssh/keys.ts';
import { keygen, tempDir } from './harness.ts';

const { dir, cleanup } = tempDir('penstock-certs-');
process.on('exit', cleanup);
const ca = keygen(join(dir, 'ca'));
const otherCa = keygen(join(dir, 'other_ca'), 'ecdsa');
const NOW = Date.parse('2026-11-25T10:00:00Z');

function cert(name: string, type: 'ed25519' | 'ecdsa' | 'rsa', args: string[], signer = ca.key): Buffer {
  const k = keygen(join(dir, name), type);
  // ssh-keygen reads -V times as local time: pin the zone so the window means the same everywhere.
  execFileSync('ssh-keygen', ['-q', '-s', signer, '-I', `id-${name}`, ...args, `${k.key}.pub`], { stdio: 'ignore', env: { ...process.env, TZ: 'UTC' } });
  return Buffer.from(readFileSync(`${k.key}-cert.pub`, 'utf8').split(' ')[1]!, 'base64');
}
const check = (blob: Buffer, names = ['agent-7'], address = '127.0.0.1', now = NOW) =>
  checkCertificate(parseCertificate(blob), { cas: [parseAuthorizedKeyLine(ca.pub)], now, names: new Set(names), address });

test('a good certificate of each key type passes, with its id, serial and extensions', () => {
  for (const type of ['ed25519', 'ecdsa', 'rsa'] as const) {
    const v = check(cert(`good-${type}`, type, ['-n', 'agent-7', '-z', '42', '-V', '202611250900:202611251100']));
    assert.equal(v.ok, true, JSON.stringify(v));
    if (v.ok) {
      assert.equal(v.keyId, `id-good-${type}`);
      assert.equal(v.serial, '42');
      assert.ok(v.extensions.has('permit-pty'));
    }
  }
});

test('validity window: expired and not yet valid are refused, using the injected time', () => {
  const blob = cert('window', 'ed25519', ['-n', 'agent-7', '-V', '202611250900:202611250930']);
  assert.deepEqual(pick(check(blob)), { ok: false, reason: 'expired' });
  assert.deepEqual(pick(check(blob, undefined, undefined, Date.parse('2026-11-25T08:00:00Z'))), { ok: false, reason: 'not_yet_valid' });
  assert.equal(check(blob, undefined, undefined, Date.parse('2026-11-25T09:10:00Z')).ok, true);
});

test('principals must name the principal; an empty list names nobody', () => {
  assert.deepEqual(pick(check(cert('other', 'ed25519', ['-n', 'vendor-b']))), { ok: false, reason: 'wrong_principal' });
  assert.deepEqual(pick(check(cert('nobody', 'ed25519', []))), { ok: false, reason: 'wrong_principal' });
});

test('a certificate from a CA the listener does not trust is refused; a tampered one fails its signature', () => {
  assert.deepEqual(pick(check(cert('foreign', 'ed25519', ['-n', 'agent-7'], otherCa.key))), { ok: false, reason: 'untrusted_ca' });
  const blob = Buffer.from(cert('tamper', 'ed25519', ['-n', 'agent-7']));
  const c = parseCertificate(blob);
  const at = blob.indexOf(Buffer.from('agent-7'));
  blob[at + 6] = '8'.charCodeAt(0); // agent-7 → agent-8, signature unchanged
  assert.deepEqual(pick(check(blob, ['agent-8'])), { ok: false, reason: 'bad_signature' });
  assert.equal(c.principals[0], 'agent-7');
});

test('critical options: force-command is returned, source-address enforced, unknown ones refuse the certificate', () => {
  const forced = check(cert('force', 'ed25519', ['-n', 'agent-7', '-O', 'force-command=uptime']));
  assert.equal(forced.ok && forced.forceCommand, 'uptime');
  const src = cert('src', 'ed25519', ['-n', 'agent-7', '-O', 'source-address=10.0.0.0/8,192.168.1.5']);
  assert.deepEqual(pick(check(src)), { ok: false, reason: 'source_address' });
  assert.equal(check(src, undefined, '10.1.2.3').ok, true);
  const unknown = cert('unknown', 'ed25519', ['-n', 'agent-7', '-O', 'verify-required']);
  assert.deepEqual(pick(check(unknown)), { ok: false, reason: 'unknown_critical_option' });
  const noPty = check(cert('nopty', 'ed25519', ['-n', 'agent-7', '-O', 'no-pty', '-O', 'no-port-forwarding']));
  assert.ok(noPty.ok && !noPty.extensions.has('permit-pty') && !noPty.extensions.has('permit-port-forwarding'));
});

test('malformed and truncated blobs are refused with a wire error, never a crash', () => {
  const blob = cert('trunc', 'ed25519', ['-n', 'agent-7']);
  for (const n of [0, 10, 40, 100, blob.length - 1]) assert.throws(() => parseCertificate(blob.subarray(0, n)), { name: 'SshWireError' });
  assert.throws(() => parseCertificate(Buffer.concat([blob, Buffer.from([0])])), /trailing/);
});

test('source-address lists: malformed lists allow nothing', () => {
  assert.equal(sourceAllowed('127.0.0.1', '::ffff:127.0.0.1'), true);
  assert.equal(sourceAllowed('not-an-address', '127.0.0.1'), false);
  assert.equal(sourceAllowed('::1/128', '::1'), true);
});

test('verifySshSignature refuses SHA-1 ssh-rsa signatures and wrong algorithms', () => {
  const k = parseAuthorizedKeyLine(ca.pub);
  const fake = Buffer.concat([Buffer.from([0, 0, 0, 7]), Buffer.from('ssh-rsa'), Buffer.from([0, 0, 0, 1, 0])]);
  assert.equal(verifySshSignature(k, Buffer.from('x'), fake), false);
});

function pick(v: { ok: boolean; reason?: string }): { ok: boolean; reason?: string } {
  return v.ok ? { ok: true } : { ok: false, reason: v.reason! };
}
