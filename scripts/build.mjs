// `npm run build` (and postinstall): src/**/*.ts → dist/**/*.js, types stripped, for the gateway.
//
// Why: Node runs .ts directly by stripping types as it loads each file, and the stripper stays in
// memory: ~20-30 MiB of RSS per process on a small gateway. The daemon (bin/penstock, the systemd unit)
// runs dist/; tests, the demo and `npm start` run src/ directly. Node's own stripper (node:module
// stripTypeScriptTypes, mode 'strip') replaces types with spaces, so every line and column in dist/
// is the one in src/ and stack traces point at the source. Relative `.ts` specifiers become `.js`;
// every rewritten specifier is checked to resolve, so a missed or malformed import fails the build
// instead of the daemon at run time.
//
//   node scripts/build.mjs [OUT]     (OUT defaults to dist/ beside src/)
import { spawnSync } from 'node:child_process';
import * as nodeModule from 'node:module';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(process.argv[2] ?? join(root, 'dist'));
const src = join(root, 'src');

// npm may run this with whatever Node runs npm; the stripper needs the pinned runtime (Node 24).
if (typeof nodeModule.stripTypeScriptTypes !== 'function') {
  const pinned = join(root, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(pinned) || process.env.PENSTOCK_BUILD_REEXEC) {
    console.error(`[penstock build] Node ${process.version} has no type stripper and the pinned runtime is not installed`);
    process.exit(1);
  }
  const r = spawnSync(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, PENSTOCK_BUILD_REEXEC: '1' } });
  process.exit(r.status ?? 1);
}
// The stripper is marked experimental in Node 24; at build time that is a note, not news.
process.removeAllListeners('warning');

const SPECIFIER = /(\b(?:from|import)\s*\(?\s*['"])(\.{1,2}\/[^'"]*?)\.ts(['"])/g;

/** All .ts files below `dir`, relative to it. */
function sources(dir, rel = '') {
  return readdirSync(join(dir, rel), { withFileTypes: true }).flatMap((e) => {
    const r = join(rel, e.name);
    if (e.isDirectory()) return sources(dir, r);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [r] : [];
  });
}

const files = sources(src);
const known = new Set(files.map((f) => join(src, f)));
const problems = [];
// Build into a fresh folder beside the target and swap it in whole: never a half-built dist/.
const staging = `${out}.tmp-${process.pid}`;
rmSync(staging, { recursive: true, force: true });
for (const file of files) {
  const from = join(src, file);
  let js = nodeModule.stripTypeScriptTypes(readFileSync(from, 'utf8'), { mode: 'strip' });
  js = js.replace(SPECIFIER, (_m, head, spec, tail) => {
    if (!known.has(resolve(dirname(from), `${spec}.ts`))) problems.push(`${relative(root, from)}: import '${spec}.ts' names no file under src/`);
    return `${head}${spec}.js${tail}`;
  });
  if (/from\s+['"]\.{1,2}\/[^'"]*\.ts['"]/.test(js)) problems.push(`${relative(root, from)}: a relative .ts import was not rewritten`);
  const to = join(staging, file.replace(/\.ts$/, '.js'));
  mkdirSync(dirname(to), { recursive: true });
  writeFileSync(to, js);
}
if (problems.length > 0) {
  rmSync(staging, { recursive: true, force: true });
  console.error(`[penstock build] failed:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
rmSync(out, { recursive: true, force: true });
renameSync(staging, out);
console.log(`[penstock build] ${files.length} files from src/ into ${relative(process.cwd(), out) || '.'}`);
