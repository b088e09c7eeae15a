// Postinstall: make the native addons match the pinned Node runtime (the npm `node` package).
//
// Why: npm runs dependency install scripts with whatever Node runs npm (Node 20 on these machines),
// and node-gyp builds nan-based addons (ssh2's sshcrypto, cpu-features) against that Node's headers.
// Penstock runs on the pinned Node 24, whose ABI differs, so those addons would silently fail to load
// and ssh2 would fall back to slower pure-JS crypto. The official Node tarball on the npm registry
// (`node-linux-<arch>`) carries the matching headers; we take only `include/` from it, after checking the
// tarball against its pinned integrity (scripts/runtime-pins.json), and rebuild.
// N-API addons (lmdb, serialport) are ABI-stable and need nothing.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pinsFor, readPins, tarballIntegrityOk } from './verify-runtime.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pinnedNode = join(root, 'node_modules', 'node', 'bin', 'node');
const check = join(root, 'scripts', 'check-native.mjs');

function log(msg) {
  console.log(`[penstock rebuild-native] ${msg}`);
}

if (!existsSync(pinnedNode)) {
  log('pinned runtime (node_modules/node) not installed; nothing to do');
  process.exit(0);
}
const version = JSON.parse(readFileSync(join(root, 'node_modules', 'node', 'package.json'), 'utf8')).version;

function nativeOk() {
  return spawnSync(pinnedNode, [check], { stdio: 'ignore' }).status === 0;
}

if (nativeOk()) {
  log(`native addons already load under Node ${version}`);
  process.exit(0);
}

// The tarball is checked against its pinned registry integrity before anything is taken from it: npm
// pack of a package outside package-lock.json is otherwise unchecked.
const pinned = pinsFor(readPins(root));
const headersDir = join(root, 'node_modules', '.cache', 'penstock-node-headers', version);
if (!existsSync(join(headersDir, 'include', 'node', 'node_version.h'))) {
  const work = join(headersDir, '..', `tmp-${process.pid}`);
  mkdirSync(work, { recursive: true });
  log(`fetching headers from ${pinned.package}@${version} (npm registry)`);
  execFileSync('npm', ['pack', `${pinned.package}@${version}`, '--pack-destination', work], { stdio: ['ignore', 'ignore', 'inherit'] });
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error('npm pack produced no tarball');
  if (!tarballIntegrityOk(join(work, tarball), pinned.integrity)) {
    rmSync(work, { recursive: true, force: true });
    log(`${tarball} does not match its pinned integrity in scripts/runtime-pins.json; not using its headers`);
    process.exit(1);
  }
  mkdirSync(headersDir, { recursive: true });
  execFileSync('tar', ['xzf', join(work, tarball), '-C', headersDir, '--strip-components=1', 'package/include']);
  rmSync(work, { recursive: true, force: true });
}

log(`rebuilding ssh2 and cpu-features against Node ${version} headers`);
const env = {
  ...process.env,
  PATH: `${join(root, 'node_modules', '.bin')}:${process.env.PATH}`,
  npm_config_nodedir: headersDir,
};
execFileSync('npm', ['rebuild', 'ssh2', 'cpu-features'], { cwd: root, env, stdio: ['ignore', 'ignore', 'inherit'] });

const result = spawnSync(pinnedNode, [check], { stdio: 'inherit' });
if (result.status !== 0) {
  log('native addons still fail to load under the pinned runtime (see above)');
  process.exit(1);
}
