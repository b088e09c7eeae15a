import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { pino } from 'pino';
import { Vault, resolveVaultRef } from '../../src/vault/vault.ts';
import { Secret } from '../../src/common/secret.ts';
import { isPenstockError, type PenstockError } from '../../src/common/errors.ts';

const PLC_PASSWORD = 'Pl4nt-Secret-\u00e9\u2603-4711';
const SSH_KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n';

let dir: string;
let file: string;
let keyFile: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'penstock-vault-'));
  file = join(dir, 'vault.json');
  keyFile = join(dir, 'vault.key');
  Vault.createKeyFile(keyFile);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The PenstockError `fn` throws; fails the test when it throws nothing or something else. */
function vaultError(fn: () => unknown): PenstockError {
  try {
    fn();
  } catch (err) {
    assert.ok(isPenstockError(err, 'PS_VAULT'), `expected PS_VAULT, got ${inspect(err)}`);
    return err;
  }
  assert.fail('expected a PS_VAULT error');
}

type VaultDoc = { version: number; entries: Record<string, { iv: string; tag: string; ciphertext: string }> };
const readDoc = (): VaultDoc => JSON.parse(readFileSync(file, 'utf8')) as VaultDoc;
const writeDoc = (doc: VaultDoc): void => writeFileSync(file, JSON.stringify(doc));

function seeded(): Vault {
  const v = Vault.open(file, keyFile);
  v.set('plc-1', PLC_PASSWORD);
  v.set('rtu.ssh-key', new Secret(SSH_KEY));
  return v;
}

describe('round trip', () => {
  test('a missing vault file opens as an empty vault', () => {
    const v = Vault.open(file, keyFile);
    assert.deepEqual(v.names(), []);
    assert.equal(existsSync(file), false);
  });

  test('values come back as Secrets, from memory and after reopening the file', () => {
    const v = seeded();
    for (const vault of [v, Vault.open(file, keyFile)]) {
      assert.deepEqual(vault.names(), ['plc-1', 'rtu.ssh-key']);
      assert.ok(vault.has('plc-1'));
      const s = vault.get('plc-1');
      assert.ok(s instanceof Secret);
      assert.equal(s.reveal(), PLC_PASSWORD);
      assert.equal(vault.get('rtu.ssh-key').reveal(), SSH_KEY);
      assert.equal(vault.resolve('vault:plc-1').reveal(), PLC_PASSWORD);
    }
  });

  test('replace and delete persist; deleting an unknown name says so', () => {
    const v = seeded();
    v.set('plc-1', 'changed');
    assert.equal(v.delete('rtu.ssh-key'), true);
    assert.equal(v.delete('rtu.ssh-key'), false);
    const again = Vault.open(file, keyFile);
    assert.deepEqual(again.names(), ['plc-1']);
    assert.equal(again.get('plc-1').reveal(), 'changed');
  });

  test('the file is the documented format, mode 0600, and holds no plaintext', () => {
    seeded();
    const doc = readDoc();
    assert.equal(doc.version, 1);
    assert.deepEqual(Object.keys(doc.entries), ['plc-1', 'rtu.ssh-key']);
    for (const e of Object.values(doc.entries)) {
      assert.deepEqual(Object.keys(e).sort(), ['ciphertext', 'iv', 'tag']);
      assert.equal(Buffer.from(e.iv, 'base64').length, 12);
      assert.equal(Buffer.from(e.tag, 'base64').length, 16);
    }
    const bytes = readFileSync(file);
    for (const needle of [PLC_PASSWORD, 'OPENSSH PRIVATE KEY', 'b3BlbnNzaC1rZXktdjEAAAAA']) assert.equal(bytes.includes(needle), false, needle);
    assert.equal(statSync(file).mode & 0o777, 0o600);
  });

  test('the same value stored twice encrypts differently (a fresh IV per write)', () => {
    const v = Vault.open(file, keyFile);
    v.set('a', 'same');
    v.set('b', 'same');
    const { entries } = readDoc();
    assert.notEqual(entries.a!.iv, entries.b!.iv);
    assert.notEqual(entries.a!.ciphertext + entries.a!.tag, entries.b!.ciphertext + entries.b!.tag);
  });

  test('reload() picks up what another process wrote, with the same key', () => {
    const daemonView = seeded();
    const cli = Vault.open(file, keyFile);
    cli.set('new-target', 'pw');
    assert.equal(daemonView.has('new-target'), false);
    daemonView.reload();
    assert.equal(daemonView.get('new-target').reveal(), 'pw');
  });
});

describe('integrity', () => {
  test('a flipped bit in a ciphertext, tag or iv is refused, naming the entry', () => {
    for (const field of ['ciphertext', 'tag', 'iv'] as const) {
      rmSync(file, { force: true });
      seeded();
      const doc = readDoc();
      const bytes = Buffer.from(doc.entries['plc-1']![field], 'base64');
      bytes[0]! ^= 0x01;
      doc.entries['plc-1']![field] = bytes.toString('base64');
      writeDoc(doc);
      const err = vaultError(() => Vault.open(file, keyFile));
      assert.deepEqual(err.details?.entries, ['plc-1'], field);
    }
  });

  test('entries swapped between names, or copied under a new name, are refused', () => {
    seeded();
    const doc = readDoc();
    const { 'plc-1': a, 'rtu.ssh-key': b } = doc.entries;
    writeDoc({ version: 1, entries: { 'plc-1': b!, 'rtu.ssh-key': a! } });
    assert.deepEqual(vaultError(() => Vault.open(file, keyFile)).details?.entries, ['plc-1', 'rtu.ssh-key']);

    writeDoc({ version: 1, entries: { 'plc-1': a!, 'rtu.ssh-key': b!, 'plc-2': a! } });
    assert.deepEqual(vaultError(() => Vault.open(file, keyFile)).details?.entries, ['plc-2']);
  });

  test('another key is refused for every entry', () => {
    seeded();
    const otherKey = join(dir, 'other.key');
    Vault.createKeyFile(otherKey);
    const err = vaultError(() => Vault.open(file, otherKey));
    assert.deepEqual(err.details?.entries, ['plc-1', 'rtu.ssh-key']);
  });

  test('a malformed vault file is refused with its own reason, never half-loaded', () => {
    seeded();
    const good = readDoc();
    const cases: [string, string][] = [
      ['not JSON', '{"version": 1, "entries": {'],
      ['a JSON array', '[]'],
      ['an unknown top-level field', JSON.stringify({ ...good, extra: 1 })],
      ['another version', JSON.stringify({ ...good, version: 2 })],
      ['entries not an object', JSON.stringify({ version: 1, entries: [] })],
      ['a bad entry name', JSON.stringify({ version: 1, entries: { 'bad name': good.entries['plc-1'] } })],
      ['a short iv', JSON.stringify({ version: 1, entries: { x: { ...good.entries['plc-1']!, iv: 'AAAA' } } })],
      ['a field that is not base64', JSON.stringify({ version: 1, entries: { x: { ...good.entries['plc-1']!, ciphertext: 'not base64!' } } })],
      ['an extra entry field', JSON.stringify({ version: 1, entries: { x: { ...good.entries['plc-1']!, note: 'x' } } })],
    ];
    const messages = new Set<string>();
    for (const [what, text] of cases) {
      writeFileSync(file, text);
      const err = vaultError(() => Vault.open(file, keyFile));
      assert.match(err.message, /malformed/, what);
      messages.add(err.message);
    }
    assert.equal(messages.size, cases.length, 'each kind of damage has its own message');
  });
});

describe('the key file', () => {
  test('createKeyFile writes 32 random bytes as hex, mode 0600, and never overwrites a key', () => {
    const text = readFileSync(keyFile, 'utf8');
    assert.match(text, /^[0-9a-f]{64}\n$/);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    vaultError(() => Vault.createKeyFile(keyFile));
    assert.equal(readFileSync(keyFile, 'utf8'), text);
  });

  test('a missing key file is PS_VAULT naming the path', () => {
    const err = vaultError(() => Vault.open(file, join(dir, 'absent.key')));
    assert.ok(err.message.includes(join(dir, 'absent.key')));
    assert.equal(err.details?.file, join(dir, 'absent.key'));
  });

  test('a key readable by others, or writable by its group, is refused; 0600 and 0640 are fine', () => {
    for (const mode of [0o644, 0o604, 0o660, 0o666, 0o601]) {
      chmodSync(keyFile, mode);
      vaultError(() => Vault.open(file, keyFile));
    }
    for (const mode of [0o600, 0o640, 0o400]) {
      chmodSync(keyFile, mode);
      assert.ok(Vault.open(file, keyFile) instanceof Vault, mode.toString(8));
    }
  });

  test('a key file that is not 64 hex digits, or not a file, is refused', () => {
    for (const text of ['', 'abcd\n', `${'0'.repeat(63)}g`, `${'0'.repeat(66)}`]) {
      writeFileSync(keyFile, text, { mode: 0o600 });
      vaultError(() => Vault.open(file, keyFile));
    }
    const keyDir = join(dir, 'key-dir');
    mkdirSync(keyDir, { mode: 0o700 });
    vaultError(() => Vault.open(file, keyDir));
  });
});

describe('secrets never print', () => {
  test('not through the Vault object: JSON, inspect, String, a pino log line', () => {
    const v = seeded();
    const keyHex = readFileSync(keyFile, 'utf8').trim();
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
    log.info({ vault: v, credential: v.get('plc-1') }, 'connecting');
    const renderings = [
      JSON.stringify(v),
      JSON.stringify({ v, s: v.get('plc-1') }),
      inspect(v, { depth: Infinity, showHidden: true }),
      inspect({ v, s: v.get('rtu.ssh-key') }, { depth: Infinity, showHidden: true }),
      String(v),
      `${v.get('plc-1')}`,
      ...lines,
    ];
    for (const text of renderings) {
      for (const needle of [PLC_PASSWORD, 'OPENSSH', keyHex]) assert.equal(text.includes(needle), false, `${needle} in ${text}`);
    }
    // What they do show is useful: the file and the entry names.
    assert.ok(inspect(v).includes('plc-1'));
    assert.deepEqual(JSON.parse(JSON.stringify(v)), { file, entries: ['plc-1', 'rtu.ssh-key'] });
    assert.equal(lines.length, 1);
    assert.ok(lines[0]!.includes('<secret>'));
  });

  test('not through errors: unknown names, bad references, bad names, failed writes, tampering', () => {
    const v = seeded();
    const keyHex = readFileSync(keyFile, 'utf8').trim();
    const errors: PenstockError[] = [
      vaultError(() => v.get('plc-9')),
      vaultError(() => v.get(PLC_PASSWORD)), // a password passed where a name belongs
      vaultError(() => resolveVaultRef(PLC_PASSWORD)), // a password written where a reference belongs
      vaultError(() => v.set(PLC_PASSWORD, PLC_PASSWORD)),
      vaultError(() => v.set('big', 'x'.repeat(65 * 1024) + PLC_PASSWORD)),
    ];
    mkdirSync(`${file}.tmp`);
    writeFileSync(join(`${file}.tmp`, 'blocker'), '');
    errors.push(vaultError(() => v.set('plc-2', PLC_PASSWORD)));
    rmSync(`${file}.tmp`, { recursive: true });
    const doc = readDoc();
    doc.entries['plc-1']!.tag = Buffer.alloc(16).toString('base64');
    writeDoc(doc);
    errors.push(vaultError(() => Vault.open(file, keyFile)));
    for (const err of errors) {
      const rendered = [err.message, err.stack ?? '', inspect(err, { depth: Infinity }), JSON.stringify(err.details ?? {})].join('\n');
      for (const needle of [PLC_PASSWORD, 'OPENSSH', keyHex]) assert.equal(rendered.includes(needle), false, `${needle} in ${rendered}`);
    }
    assert.equal(errors[0]!.details?.entry, 'plc-9', 'an unknown name is named');
  });
});

describe('atomic writes', () => {
  test('a write that fails leaves the old file and the in-memory vault exactly as they were', () => {
    const v = seeded();
    const before = readFileSync(file);
    // A directory where the temp file must go: the write fails before the file is touched.
    mkdirSync(`${file}.tmp`);
    writeFileSync(join(`${file}.tmp`, 'blocker'), '');
    const err = vaultError(() => v.set('plc-2', 'new'));
    assert.equal(err.details?.file, file);
    vaultError(() => v.delete('plc-1'));
    vaultError(() => v.set('plc-1', 'replaced'));

    assert.deepEqual(readFileSync(file), before);
    assert.deepEqual(v.names(), ['plc-1', 'rtu.ssh-key']);
    assert.equal(v.get('plc-1').reveal(), PLC_PASSWORD);
    assert.deepEqual(Vault.open(file, keyFile).names(), ['plc-1', 'rtu.ssh-key']);

    // Once the obstacle is gone the same write goes through and leaves no temp file behind.
    rmSync(`${file}.tmp`, { recursive: true });
    v.set('plc-2', 'new');
    assert.equal(Vault.open(file, keyFile).get('plc-2').reveal(), 'new');
    assert.equal(existsSync(`${file}.tmp`), false);
  });

  test('a temp file left by a crash is replaced, not appended to or trusted', () => {
    const v = seeded();
    writeFileSync(`${file}.tmp`, '{"version": 1, "entries": {"evil": "half-written');
    v.set('plc-2', 'new');
    assert.deepEqual(Vault.open(file, keyFile).names(), ['plc-1', 'plc-2', 'rtu.ssh-key']);
    assert.equal(existsSync(`${file}.tmp`), false);
  });
});

describe('references and the empty vault', () => {
  test('resolveVaultRef takes vault:NAME and nothing else', () => {
    assert.equal(resolveVaultRef('vault:plc-1'), 'plc-1');
    assert.equal(resolveVaultRef('vault:A.b_c-9'), 'A.b_c-9');
    for (const bad of ['plc-1', 'vault:', 'VAULT:plc-1', 'vault:a b', 'vault:../x', `vault:${'a'.repeat(129)}`, 'env:PLC']) {
      vaultError(() => resolveVaultRef(bad));
    }
  });

  test('Vault.empty() has no entries and cannot store any', () => {
    const v = Vault.empty();
    assert.deepEqual(v.names(), []);
    assert.equal(v.has('x'), false);
    vaultError(() => v.get('x'));
    vaultError(() => v.set('x', 'y'));
    assert.deepEqual(JSON.parse(JSON.stringify(v)), { entries: [] });
  });
});
