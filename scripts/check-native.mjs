// Loads every native addon Penstock relies on, under the runtime that runs this script, and
// exits non-zero naming the one that does not load. Run by scripts/rebuild-native.mjs after
// install and by `npm run check:native`.
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const results = [];

async function check(name, fn) {
  try {
    results.push([name, true, await fn()]);
  } catch (err) {
    results.push([name, false, err instanceof Error ? err.message.split('\n')[0] : String(err)]);
  }
}

await check('lmdb', async () => {
  const { open } = await import('lmdb');
  const dir = mkdtempSync(join(tmpdir(), 'penstock-native-'));
  try {
    const db = open({ path: dir });
    await db.put('probe', 42);
    if (db.get('probe') !== 42) throw new Error('read back a different value');
    await db.close();
    return 'put/get ok';
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
await check('ssh2 native crypto', async () => {
  require('ssh2/lib/protocol/crypto/build/Release/sshcrypto.node');
  return 'sshcrypto.node loaded';
});
await check('cpu-features (ssh2 cipher order)', async () => {
  const features = require('cpu-features')();
  return `arch ${features.arch}`;
});
await check('serialport binding', async () => {
  require('@serialport/bindings-cpp');
  const loaded = Object.keys(require.cache).find((k) => k.includes('bindings-cpp') && k.endsWith('.node'));
  if (!loaded) throw new Error('no native binding was loaded');
  return 'bindings.node loaded';
});

let failed = 0;
for (const [name, ok, detail] of results) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${detail}`);
  if (!ok) failed++;
}
console.log(`native addons under Node ${process.version}: ${results.length - failed} loaded, ${failed} failed`);
process.exit(failed ? 1 : 0);
