// Push credentials against the real nats-server: an nkey the server lists, a creds file (user JWT and
// seed, operator mode), a client certificate (mTLS)
// under the CA it trusts. A wrong credential is a clear error code in status while the pusher keeps
// retrying, and the seed never reaches the log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createUser } from '@nats-io/nkeys';
import { credsAuthenticator } from '@nats-io/transport-node';
import { startNats } from '../peers/nats-server.ts';
import { tempDir, until } from '../support.ts';
import { makeTestPki } from '../sync/certs.ts';
import { decentralisedAuth } from './jwt.ts';
import { startPusher, PUSH_CURSOR, type PushStatus } from '../../src/push/pusher.ts';
import { applianceSubject } from '../../src/fleet/wire.ts';
import { APPLIANCE, appendN, countsBySeq, createStream, openPushJournal, pushConfig, readStream } from './helpers.ts';

function captureLog() {
  let text = '';
  const log = pino({ level: 'debug' }, new Writable({ write: (chunk, _enc, done) => { text += chunk.toString(); done(); } }));
  return { log, text: () => text };
}

test('nkey: the listed seed pushes; an unknown or malformed seed, or a subject not permitted, is a clear error and no seed is logged', async () => {
  const { dir, cleanup } = tempDir('penstock-push-nkey-');
  const gateway = createUser();
  const stranger = createUser();
  const seed = new TextDecoder().decode(gateway.getSeed());
  const strangerSeed = new TextDecoder().decode(stranger.getSeed());
  writeFileSync(join(dir, 'gateway.nk'), `${seed}\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'stranger.nk'), strangerSeed, { mode: 0o600 });
  writeFileSync(join(dir, 'garbage.nk'), 'SUNOTASEEDATALL-but-secret-looking\n', { mode: 0o600 });
  const nats = await startNats({
    extraConfig: `authorization {
  users: [
    { nkey: ${gateway.getPublicKey()}, permissions: { publish: ["${applianceSubject(APPLIANCE)}", "$JS.API.>"], subscribe: ["_INBOX.>"] } }
    { user: collector, password: test-only }
  ]
}`,
  });
  const admin = { servers: nats.urls, user: 'collector', pass: 'test-only' };
  const journal = await openPushJournal(join(dir, 'journal'));
  const { log, text } = captureLog();
  const run = async (seedFile: string, appliance = APPLIANCE, wait: (s: PushStatus) => boolean) => {
    const pusher = startPusher({ journal, appliance, log, config: pushConfig(nats.urls, { nkey_seed_file: join(dir, seedFile) }) });
    try {
      return await until(() => (wait(pusher.status()) ? pusher.status() : undefined), `status with ${seedFile}`, 30_000);
    } finally {
      await pusher.close();
    }
  };
  try {
    await createStream(admin);
    await appendN(journal, 200);
    const ok = await run('gateway.nk', APPLIANCE, (s) => s.checkpoint_pushed === 200);
    assert.equal(ok.last_error, null);
    assert.equal(countsBySeq(await readStream(admin), 'event').size, 200);

    await appendN(journal, 50);
    const refused = await run('stranger.nk', APPLIANCE, (s) => s.last_error !== null);
    assert.equal(refused.last_error!.code, 'PS_PUSH_AUTH');
    assert.equal(refused.connected, false);
    assert.equal(journal.cursor(PUSH_CURSOR), 199, 'nothing counted as pushed');

    const malformed = await run('garbage.nk', APPLIANCE, (s) => s.last_error !== null);
    assert.equal(malformed.last_error!.code, 'PS_PUSH_CREDENTIALS');
    assert.doesNotMatch(malformed.last_error!.message, /SUNOTASEED/);

    // A creds file that is not one, or none at all: the file is named, its contents are not.
    writeFileSync(join(dir, 'bad.creds'), `-----BEGIN NATS USER JWT-----\nnot-a-jwt ${seed}\n`);
    for (const file of ['bad.creds', 'missing.creds']) {
      const pusher = startPusher({ journal, appliance: APPLIANCE, log, config: pushConfig(nats.urls, { creds_file: join(dir, file) }) });
      const bad = await until(() => pusher.status().last_error ?? undefined, `status with ${file}`, 30_000);
      await pusher.close();
      assert.equal(bad.code, 'PS_PUSH_CREDENTIALS', `${file}: ${bad.message}`);
      assert.ok(!bad.message.includes(seed));
    }

    // The listed user, another appliance's subject: the server refuses the publish.
    const foreign = await run('gateway.nk', 'penstock/gw-other', (s) => s.last_error !== null);
    assert.equal(foreign.last_error!.code, 'PS_PUSH_REJECTED', foreign.last_error!.message);

    for (const secret of [seed, strangerSeed, 'SUNOTASEED']) assert.ok(!text().includes(secret), 'no seed in the log');
    assert.match(text(), /PS_PUSH_AUTH/);
  } finally {
    await journal.close();
    await nats.stop();
    cleanup();
  }
});

test('mTLS: a client certificate under the trusted CA pushes; one from another CA, or none, does not', async () => {
  const pki = makeTestPki();
  const { dir, cleanup } = tempDir('penstock-push-mtls-');
  const nats = await startNats({
    extraConfig: `tls { cert_file: "${pki.server.certPath}", key_file: "${pki.server.keyPath}", ca_file: "${pki.ca.certPath}", verify: true, timeout: 2 }`,
  });
  const url = `tls://127.0.0.1:${nats.nodes[0]!.port}`;
  const admin = { servers: [url], tls: { caFile: pki.ca.certPath, certFile: pki.client.certPath, keyFile: pki.client.keyPath } };
  const journal = await openPushJournal(join(dir, 'journal'));
  const run = async (tls: Record<string, string>, wait: (s: PushStatus) => boolean) => {
    const pusher = startPusher({ journal, appliance: APPLIANCE, config: pushConfig([url], { tls }) });
    try {
      return await until(() => (wait(pusher.status()) ? pusher.status() : undefined), 'status', 30_000);
    } finally {
      await pusher.close();
    }
  };
  try {
    await createStream(admin);
    await appendN(journal, 100);
    const ok = await run({ ca: pki.ca.certPath, cert: pki.client.certPath, key: pki.client.keyPath }, (s) => s.checkpoint_pushed === 100);
    assert.equal(ok.last_error, null);
    assert.equal(countsBySeq(await readStream(admin), 'event').size, 100);

    await appendN(journal, 10);
    const foreign = await run({ ca: pki.ca.certPath, cert: pki.untrustedClient.certPath, key: pki.untrustedClient.keyPath }, (s) => s.last_error !== null);
    assert.equal(foreign.last_error!.code, 'PS_PUSH_TLS', JSON.stringify(foreign.last_error));
    const none = await run({ ca: pki.ca.certPath }, (s) => s.last_error !== null);
    assert.equal(none.last_error!.code, 'PS_PUSH_TLS', JSON.stringify(none.last_error));
    // The server's certificate checked against the wrong CA: ours refuses it.
    const wrongCa = await run({ ca: pki.otherCa.certPath, cert: pki.client.certPath, key: pki.client.keyPath }, (s) => s.last_error !== null);
    assert.equal(wrongCa.last_error!.code, 'PS_PUSH_TLS', JSON.stringify(wrongCa.last_error));
    assert.equal(journal.cursor(PUSH_CURSOR), 99);
  } finally {
    await journal.close();
    await nats.stop();
    pki.cleanup();
    cleanup();
  }
});

test('creds file (user JWT and seed, operator mode): the account user pushes; a user of an account the server does not know is PS_PUSH_AUTH', async () => {
  const { dir, cleanup } = tempDir('penstock-push-jwt-');
  const auth = decentralisedAuth();
  const stranger = decentralisedAuth();
  const nats = await startNats({ extraConfig: auth.serverConfig });
  const gatewayCreds = auth.userCreds([applianceSubject(APPLIANCE), '$JS.API.>']);
  writeFileSync(join(dir, 'gateway.creds'), gatewayCreds, { mode: 0o600 });
  writeFileSync(join(dir, 'stranger.creds'), stranger.userCreds(), { mode: 0o600 });
  const admin = { servers: nats.urls, authenticator: credsAuthenticator(new TextEncoder().encode(auth.userCreds())) };
  const journal = await openPushJournal(join(dir, 'journal'));
  const { log, text } = captureLog();
  try {
    await createStream(admin);
    await appendN(journal, 150);
    const run = async (file: string, wait: (s: PushStatus) => boolean) => {
      const pusher = startPusher({ journal, appliance: APPLIANCE, log, config: pushConfig(nats.urls, { creds_file: join(dir, file) }) });
      try {
        return await until(() => (wait(pusher.status()) ? pusher.status() : undefined), file, 30_000);
      } finally {
        await pusher.close();
      }
    };
    assert.equal((await run('gateway.creds', (s) => s.checkpoint_pushed === 100 && s.cursor === 149)).last_error, null);
    assert.equal(countsBySeq(await readStream(admin), 'event').size, 150);
    await appendN(journal, 10);
    const refused = await run('stranger.creds', (s) => s.last_error !== null);
    assert.equal(refused.last_error!.code, 'PS_PUSH_AUTH', refused.last_error!.message);
    const seedLine = gatewayCreds.split('\n').find((l) => l.startsWith('SU'))!;
    assert.ok(!text().includes(seedLine), 'no seed in the log');
  } finally {
    await journal.close();
    await nats.stop();
    cleanup();
  }
});
