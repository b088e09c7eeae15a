// The type-stripped build the daemon ships as (scripts/build.mjs → dist/): every source built, every
// relative import rewritten, and the daemon started from it exactly as systemd/penstock.service starts
// it (its V8 flags) serves and drains.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { shippedDaemon } from '../../scripts/shipped-daemon.ts';
import { ROOT, NODE, startDaemon, tempDir } from '../e2e/daemon-harness.ts';

// A sibling of dist/: the same depth below the root, so hardware/ and firmware-profiles/ resolve alike.
const OUT = join(ROOT, `.build-test-${process.pid}`);
let tmp: { dir: string; cleanup: () => void };

function files(dir: string, ext: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(ext))
    .map((e) => relative(dir, join(e.parentPath, e.name)));
}

before(() => {
  tmp = tempDir('penstock-build-');
  execFileSync(NODE, [join(ROOT, 'scripts/build.mjs'), OUT], { stdio: 'pipe' });
});

after(() => {
  rmSync(OUT, { recursive: true, force: true });
  tmp?.cleanup();
});

test('every source file is built, with no relative .ts import left and line numbers kept', () => {
  const sources = files(join(ROOT, 'src'), '.ts').map((f) => f.replace(/\.ts$/, '.js')).sort();
  assert.deepEqual(files(OUT, '.js').sort(), sources);
  for (const f of files(OUT, '.js')) {
    const js = readFileSync(join(OUT, f), 'utf8');
    assert.doesNotMatch(js, /(?:from|import)\s*\(?\s*['"]\.{1,2}\/[^'"]*\.ts['"]/, `${f} still imports a .ts file`);
    // Types become spaces: stack traces from dist/ name the lines of src/.
    assert.equal(js.split('\n').length, readFileSync(join(ROOT, 'src', f.replace(/\.js$/, '.ts')), 'utf8').split('\n').length, `${f} keeps its line count`);
  }
});

test('the daemon runs from the build with the flags of the unit, answers status and drains on SIGTERM', async () => {
  const shipped = shippedDaemon(ROOT);
  const site = readFileSync(join(ROOT, 'scripts/demo/site.yaml'), 'utf8').replaceAll('@STATE@', tmp.dir).replace('port: 1502', 'port: 0');
  const daemon = await startDaemon(tmp.dir, site, { main: [...shipped.flags, join(OUT, 'main.js')], env: shipped.env });
  const status = await daemon.json<{ heap_limit_bytes: number; listeners: { protocol: string; port: number }[] }>(['status']);
  assert.equal(status.listeners[0]?.protocol, 'modbus');
  assert.ok(status.listeners[0]!.port > 0);
  // --max-old-space-size=128 took effect: V8's limit is the old space plus a little young space.
  const limitMiB = status.heap_limit_bytes / 2 ** 20;
  assert.ok(limitMiB >= 128 && limitMiB < 160, `heap limit ${limitMiB.toFixed(0)} MiB`);
  assert.equal(await daemon.stop(), 0);
});
