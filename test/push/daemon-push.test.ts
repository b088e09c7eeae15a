// The shipped daemon with a push: section, against the real nats-server with nkey authentication:
// `penstockctl status` shows the push cursor, lag and last error; a wrong credential (after a reload)
// is a clear PS_PUSH_AUTH while the daemon stays up; the seed never reaches the daemon's log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createUser } from '@nats-io/nkeys';
import { startNats } from '../peers/nats-server.ts';
import { startDaemon, tempDir, until } from '../e2e/daemon-harness.ts';
import { applianceSubject } from '../../src/fleet/wire.ts';
import type { PushStatus } from '../../src/push/pusher.ts';
import { countsBySeq, createStream, readStream } from './helpers.ts';

const APPLIANCE = 'e2e-push-gw';

test('penstockctl status shows the push cursor, lag and last error; a refused credential leaves the daemon up', async () => {
  const tmp = tempDir('penstock-e2e-push-');
  const gateway = createUser();
  const stranger = createUser();
  const seed = new TextDecoder().decode(gateway.getSeed());
  const strangerSeed = new TextDecoder().decode(stranger.getSeed());
  writeFileSync(join(tmp.dir, 'gateway.nk'), `${seed}\n`, { mode: 0o600 });
  writeFileSync(join(tmp.dir, 'stranger.nk'), `${strangerSeed}\n`, { mode: 0o600 });
  const nats = await startNats({
    extraConfig: `authorization {
  users: [
    { nkey: ${gateway.getPublicKey()}, permissions: { publish: ["${applianceSubject(APPLIANCE)}", "$JS.API.>"], subscribe: ["_INBOX.>"] } }
    { user: collector, password: test-only, permissions: { publish: ">", subscribe: ">" } }
  ]
}`,
  });
  const admin = { servers: nats.urls, user: 'collector', pass: 'test-only' };
  const config = (seedFile: string) => `appliance: { id: ${APPLIANCE}, site: Test, zone: dmz, state_dir: ${tmp.dir}/state, runtime_dir: ${tmp.dir}/run }
journal: { checkpoint_every: 1000, checkpoint_seconds: 3600, retention: { acknowledged_by: [push] } }
push:
  servers: [${nats.urls[0]}]
  stream: PENSTOCK_EVIDENCE
  nkey_seed_file: ${join(tmp.dir, seedFile)}
  checkpoint_seconds: 1
  ack_timeout_seconds: 2
`;
  let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
  try {
    await createStream(admin);
    daemon = await startDaemon(tmp.dir, config('gateway.nk'), { env: { PENSTOCK_LOG_LEVEL: 'debug' } });
    const push = async () => (await daemon!.json<{ push: PushStatus; journal: { size: number } }>(['status']));
    // Caught up: every event up to the status request's own is in the stream, with a checkpoint.
    let last: unknown;
    const caught = await until(async () => {
      const s = await push();
      last = { push: s.push, size: s.journal.size };
      return s.push.cursor >= 0 && s.push.checkpoint_pushed === s.push.cursor + 1 && s.push.last_error === null ? s : undefined;
    }, 'the daemon to push its events and a checkpoint', 30_000).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(last)}\n${daemon!.stderr().slice(-3000)}`);
    });
    assert.equal(caught.push.connected, true);
    const held = countsBySeq(await readStream(admin), 'event');
    for (let s = 0; s <= caught.push.cursor; s++) assert.equal(held.get(s), 1, `seq ${s} in the stream once`);

    const human = await daemon.ctl(['status']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^push: +connected to penstock\.evidence\.e2e-push-gw/m);
    assert.match(human.stdout, /jetstream has: +up to seq \d+ \(\d+ events waiting\), checkpoint at size \d+/);
    assert.match(human.stdout, /last error: +-$/m);

    // A credential the server does not know: a clear error in status, the daemon goes on serving.
    writeFileSync(daemon.configFile, config('stranger.nk'));
    const reload = await daemon.ctl(['config', 'reload']);
    assert.equal(reload.code, 0, reload.stdout + reload.stderr);
    const refused = await until(async () => {
      const s = await push();
      return s.push.last_error?.code === 'PS_PUSH_AUTH' ? s : undefined;
    }, 'PS_PUSH_AUTH in status', 30_000);
    assert.equal(refused.push.connected, false);
    const lagging = await until(async () => ((await push()).push.lag_events > 0 ? true : undefined), 'events waiting while refused', 10_000);
    assert.ok(lagging);
    const shown = await daemon.ctl(['status']);
    assert.match(shown.stdout, /last error: +PS_PUSH_AUTH /);
    assert.match(shown.stdout, /^push: +not connected/m);

    // The right credential again: the backlog goes, the error clears.
    writeFileSync(daemon.configFile, config('gateway.nk'));
    assert.equal((await daemon.ctl(['config', 'reload'])).code, 0);
    await until(async () => {
      const s = await push();
      return s.push.last_error === null && s.push.connected && s.push.cursor > caught.push.cursor ? true : undefined;
    }, 'the push to resume', 30_000);

    assert.equal(await daemon.stop(), 0);
    const log = daemon.stderr();
    assert.ok(!log.includes(seed) && !log.includes(strangerSeed), 'no seed in the daemon log');
    assert.match(log, /PS_PUSH_AUTH/, 'the refusal was logged, by code');
    const final = countsBySeq(await readStream(admin), 'event');
    assert.deepEqual([...final.values()].filter((n) => n !== 1), [], 'each seq once');
  } finally {
    await daemon?.kill();
    await nats.stop();
    tmp.cleanup();
  }
});
