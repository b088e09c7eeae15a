import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  NoteSigner,
  formatVkey,
  generateSigningKeyPem,
  keyHash,
  parseCheckpointBody,
  parseNote,
  parseVkey,
  publicKeyFromPem,
  signNote,
  verifyCheckpoint,
} from '../../src/journal/checkpoint.ts';

const root = createHash('sha256').update('root').digest();
const origin = 'penstock/gw-plant1-01';

test('a checkpoint is a C2SP signed note: body, blank line, em-dash signature line with key hash', () => {
  const pem = generateSigningKeyPem();
  const signer = new NoteSigner(origin, pem);
  const note = signer.checkpoint(42, root);
  const [body, sigs] = note.split('\n\n') as [string, string];
  assert.equal(body + '\n', `${origin}\n42\n${root.toString('base64')}\n`);
  assert.match(sigs, /^\u2014 penstock\/gw-plant1-01 [A-Za-z0-9+/]+=*\n$/u);
  const raw = Buffer.from(sigs.trim().split(' ')[2]!, 'base64');
  assert.equal(raw.length, 4 + 64);
  const pub = publicKeyFromPem(pem);
  const expectedHash = createHash('sha256').update(Buffer.concat([Buffer.from(origin), Buffer.from([0x0a, 0x01]), pub])).digest().readUInt32BE(0);
  assert.equal(raw.readUInt32BE(0), expectedHash);
  assert.equal(keyHash(origin, pub), expectedHash);
  // vkey: name+hex hash+base64(0x01||key)
  const vkey = signer.vkey;
  assert.equal(vkey, `${origin}+${expectedHash.toString(16).padStart(8, '0')}+${Buffer.concat([Buffer.from([1]), pub]).toString('base64')}`);
  assert.deepEqual(parseVkey(vkey).publicKey, pub);
  const v = verifyCheckpoint(note, vkey);
  assert.ok(v.ok);
  assert.equal(v.checkpoint.size, 42);
  assert.deepEqual(Buffer.from(v.checkpoint.rootHash), root);
  assert.equal(signNote(parseNote(note).body, origin, pem), note, 'Ed25519 signatures are deterministic');
});

test('a wrong key, an altered body, an altered signature and a wrong origin are refused', () => {
  const signer = new NoteSigner(origin, generateSigningKeyPem());
  const other = new NoteSigner(origin, generateSigningKeyPem());
  const note = signer.checkpoint(7, root);
  assert.equal(verifyCheckpoint(note, other.vkey).ok, false);
  const altered = note.replace('\n7\n', '\n8\n');
  const r = verifyCheckpoint(altered, signer.vkey);
  assert.ok(!r.ok && /no valid signature/.test(r.problem));
  const sigLine = note.split('\n\n')[1]!;
  const sig = Buffer.from(sigLine.trim().split(' ')[2]!, 'base64');
  sig[10]! ^= 1;
  assert.equal(verifyCheckpoint(`${note.split('\n\n')[0]}\n\n\u2014 ${origin} ${sig.toString('base64')}\n`, signer.vkey).ok, false);
  const elsewhere = new NoteSigner('penstock/other', generateSigningKeyPem());
  const r2 = verifyCheckpoint(elsewhere.checkpoint(7, root), elsewhere.vkey.replace('penstock/other', origin));
  assert.equal(r2.ok, false);
  // A tampered vkey (hash not matching key) is refused.
  assert.throws(() => parseVkey(signer.vkey.replace(/\+[0-9a-f]{8}\+/, '+00000000+')));
});

test('witness cosignature lines are ignored by verification, malformed notes are rejected', () => {
  const signer = new NoteSigner(origin, generateSigningKeyPem());
  const note = signer.checkpoint(3, root);
  const witness = new NoteSigner('witness.example/w1', generateSigningKeyPem());
  const witnessLine = witness.sign(parseNote(note).body).split('\n\n')[1]!;
  const cosigned = note + witnessLine;
  assert.equal(parseNote(cosigned).signatures.length, 2);
  assert.ok(verifyCheckpoint(cosigned, signer.vkey).ok);
  assert.equal(verifyCheckpoint(note.replace('\u2014', '-'), signer.vkey).ok, false);
  assert.equal(verifyCheckpoint(note.slice(0, -1), signer.vkey).ok, false);
  assert.throws(() => parseCheckpointBody(`${origin}\n01\n${root.toString('base64')}\n`));
  assert.throws(() => parseCheckpointBody(`${origin}\n1\nAAAA\n`));
  assert.throws(() => formatVkey('has space', new Uint8Array(32)));
});
