// Postinstall, first step: is node_modules/node/bin/node the runtime we pinned, byte for byte?
//
// Why: the npm `node` package installs the real binary from its own install step (`npm install
// node-linux-<arch>@<version>`), outside package-lock.json, so its integrity is checked by nobody. A
// registry or mirror serving another binary would run the daemon, the tests and the build. This checks
// the binary's SHA-512 against scripts/runtime-pins.json and stops the install when it differs.
// rebuild-native.mjs checks the tarball it takes headers from against the same file (tarballIntegrityOk).
//
//   node scripts/verify-runtime.mjs                 check (postinstall)
//   node scripts/verify-runtime.mjs --print-pins T  print the pins for a downloaded node-linux-* tarball T
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export function readPins(root = join(here, '..')) {
  return JSON.parse(readFileSync(join(root, 'scripts', 'runtime-pins.json'), 'utf8'));
}

/** The pins for this machine's platform, or an error naming what is not pinned. */
export function pinsFor(pins, platform = process.platform, arch = process.arch) {
  const p = pins[`${platform}-${arch}`];
  if (!p) throw new Error(`no pinned Node runtime for ${platform}-${arch} in scripts/runtime-pins.json`);
  return p;
}

export function sha512Hex(file) {
  return createHash('sha512').update(readFileSync(file)).digest('hex');
}

/** An npm `integrity` string (sha512-BASE64) against a file's bytes. */
export function tarballIntegrityOk(file, integrity) {
  const m = /^sha512-([A-Za-z0-9+/=]+)$/.exec(integrity);
  if (!m) throw new Error(`not a sha512 integrity string: ${integrity}`);
  return createHash('sha512').update(readFileSync(file)).digest('base64') === m[1];
}

/** Throws unless `root`'s node_modules/node is the pinned version with the pinned binary. */
export function verifyRuntime(root = join(here, '..'), pins = readPins(root)) {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  if (pkg.dependencies?.node !== pins.version) throw new Error(`package.json pins node ${pkg.dependencies?.node}, scripts/runtime-pins.json ${pins.version}: update them together`);
  const bin = join(root, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(bin)) return { checked: false, reason: 'node_modules/node is not installed' };
  const installed = JSON.parse(readFileSync(join(root, 'node_modules', 'node', 'package.json'), 'utf8')).version;
  if (installed !== pins.version) throw new Error(`node_modules/node is ${installed}, pinned ${pins.version}`);
  const want = pinsFor(pins).binarySha512;
  const got = sha512Hex(bin);
  if (got !== want) throw new Error(`node_modules/node/bin/node is not the pinned ${pins.version} runtime: SHA-512 ${got.slice(0, 16)}…, pinned ${want.slice(0, 16)}…; refusing to run on it`);
  return { checked: true, version: pins.version };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--print-pins');
  if (at > 0) {
    const tarball = process.argv[at + 1];
    const work = mkdtempSync(join(tmpdir(), 'penstock-pins-'));
    try {
      execFileSync('tar', ['xzf', tarball, '-C', work, 'package/bin/node']);
      const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
      console.log(JSON.stringify({ integrity, binarySha512: sha512Hex(join(work, 'package', 'bin', 'node')) }, null, 2));
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  } else {
    try {
      const r = verifyRuntime();
      console.log(`[penstock verify-runtime] ${r.checked ? `node ${r.version}: binary matches its pinned SHA-512` : r.reason}`);
    } catch (err) {
      console.error(`[penstock verify-runtime] ${err.message}`);
      process.exit(1);
    }
  }
}
