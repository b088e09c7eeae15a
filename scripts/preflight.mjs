// Before the tests: is everything they drive as a real peer installed? Names every missing program,
// Python module and library in one message, with the command that installs them, instead of letting
// 19 tests fail one by one with `No module named 'serial'`.
//
//   node scripts/preflight.mjs            check (npm test runs this first)
//   node scripts/preflight.mjs --prove    also check that each program or module the tests use belongs
//                                         to a package in scripts/install-deps.sh, or to one that such a
//                                         package depends on, or to an Essential package (.ci/run)
//
// Plain JavaScript with no imports outside node:, so it runs under any Node that runs npm.
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, realpathSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const PYTHON = '/usr/bin/python3';

/** The table in scripts/install-deps.sh: [{ pkg, checks: [{ kind: 'bin'|'py'|'pc'|'file', name }] }] */
export function readDeps(file = join(here, 'install-deps.sh')) {
  const text = readFileSync(file, 'utf8');
  const table = /<<'DEBIAN_PACKAGES'\n([\s\S]*?)\nDEBIAN_PACKAGES\n/.exec(text);
  if (!table) throw new Error(`${file}: no DEBIAN_PACKAGES table`);
  const deps = [];
  for (const raw of table[1].split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const [pkg, ...rest] = line.split(/\s+/);
    const checks = [];
    let kind;
    for (const word of rest) {
      if (word === 'bin' || word === 'py' || word === 'pc' || word === 'file') kind = word;
      else if (kind) checks.push({ kind, name: word });
      else throw new Error(`install-deps.sh: "${line}": a check needs bin, py, pc or file before ${word}`);
    }
    deps.push({ pkg, checks });
  }
  return deps;
}

/** The absolute path of a program, or undefined. */
function findProgram(name) {
  const candidates = name.startsWith('/') ? [name] : (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, name));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {}
  }
  return undefined;
}

// Importing the module, then listing one file per top-level package it loaded from outside the
// standard library and not loaded by Python's start-up: what pymodbus imports (serial, for one) must come from a listed package too.
const PY_LOADED = `
import importlib, sys
before = set(sys.modules)  # what Python's own start-up loaded (site .pth hooks) is not the module's
importlib.import_module(sys.argv[1])
tops = {}
for n, m in list(sys.modules.items()):
    f = '' if n in before else getattr(m, '__file__', None) or ''
    if '-packages/' in f:
        tops.setdefault(f.split('-packages/')[1].split('/')[0], f)
print(getattr(sys.modules[sys.argv[1]], '__file__', None) or sys.executable)
print('\\n'.join(sorted(tops.values())))
`;

/** Where a Python module lives and the third-party files its import loaded, or undefined when it fails. */
function findPythonModule(name) {
  const r = spawnSync(PYTHON, ['-c', PY_LOADED, name], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? r.stdout.split('\n').map((l) => l.trim()).filter(Boolean) : undefined;
}

function pkgConfigKnows(name) {
  return spawnSync('pkg-config', ['--exists', name], { timeout: 10_000 }).status === 0;
}

/** The files a check proves present (for --prove), or undefined when it is missing. */
function locate(check) {
  if (check.kind === 'bin') {
    const file = findProgram(check.name);
    return file && [file];
  }
  if (check.kind === 'py') return findPythonModule(check.name);
  if (check.kind === 'file') return existsSync(check.name) ? [check.name] : undefined;
  if (!pkgConfigKnows(check.name)) return undefined;
  const dir = spawnSync('pkg-config', ['--variable=pcfiledir', check.name], { encoding: 'utf8' }).stdout.trim();
  return [join(dir, `${check.name}.pc`)];
}

export function missing(deps) {
  const out = [];
  for (const { pkg, checks } of deps) {
    for (const check of checks) if (!locate(check)) out.push({ pkg, check });
  }
  return out;
}

// ---------------------------------------------------------------- --prove

/** The Debian package that installed `file` (usrmerge: /usr/bin/ss is recorded as /bin/ss). */
function owner(file) {
  const real = realpathSync(file);
  for (const p of new Set([real, real.replace(/^\/usr\//, '/'), file, file.replace(/^\/usr\//, '/')])) {
    const r = spawnSync('dpkg-query', ['-S', p], { encoding: 'utf8' });
    if (r.status === 0) return r.stdout.split(':')[0].split(',')[0].trim();
  }
  return undefined;
}

/** Installed packages: name -> { essential, deps: [[alternative, …], …] } from dpkg's own database. */
function installedPackages() {
  const text = execFileSync('dpkg-query', ['-W', '-f=${Package}\t${Essential}\t${Pre-Depends}, ${Depends}\t${Provides}\t${db:Status-Abbrev}\n'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const pkgs = new Map();
  const provided = new Map();
  const names = (field) => field.split(',').map((alt) => alt.split('|').map((n) => n.trim().split(/[\s:(]/)[0]).filter(Boolean)).filter((a) => a.length);
  for (const line of text.split('\n')) {
    const [name, essential, deps, provides, status] = line.split('\t');
    if (!name || !status?.startsWith('ii')) continue;
    pkgs.set(name, { essential: essential === 'yes', deps: names(deps ?? '') });
    for (const [p] of names(provides ?? '')) provided.set(p, [...(provided.get(p) ?? []), name]);
  }
  return { pkgs, provided };
}

/** Every installed package the listed ones (and the Essential ones) pull in through Depends and Pre-Depends. */
export function closure(listed) {
  const { pkgs, provided } = installedPackages();
  const seen = new Set();
  const queue = [...listed, ...[...pkgs].filter(([, p]) => p.essential).map(([n]) => n)];
  while (queue.length) {
    const n = queue.pop();
    if (seen.has(n)) continue;
    seen.add(n);
    for (const alts of pkgs.get(n)?.deps ?? []) {
      for (const a of alts) for (const real of pkgs.has(a) ? [a] : (provided.get(a) ?? [])) queue.push(real);
    }
  }
  return seen;
}

function prove(deps) {
  const allowed = closure(deps.map((d) => d.pkg));
  const problems = [];
  for (const { pkg, checks } of deps) {
    for (const check of checks) {
      for (const file of locate(check) ?? []) {
        const from = owner(file);
        if (!from) problems.push(`${check.kind} ${check.name} uses ${file}, which belongs to no Debian package: install it from one listed in scripts/install-deps.sh`);
        else if (!allowed.has(from)) problems.push(`${check.kind} ${check.name} uses ${file} from ${from}, which no listed package depends on: add ${from} to scripts/install-deps.sh`);
      }
    }
  }
  return problems;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const deps = readDeps();
  const gaps = missing(deps);
  if (gaps.length > 0) {
    const pkgs = [...new Set(gaps.map((g) => g.pkg))];
    console.error(`preflight: the tests need what this machine lacks:\n${gaps.map((g) => `  - ${g.check.kind === 'bin' ? 'program' : g.check.kind === 'py' ? 'Python module' : g.check.kind === 'file' ? 'file' : 'library'} ${g.check.name} (Debian package ${g.pkg})`).join('\n')}\ninstall them with:  bash scripts/install-deps.sh   (that is: apt-get install ${pkgs.join(' ')})`);
    process.exit(1);
  }
  if (process.argv.includes('--prove')) {
    const problems = prove(deps);
    if (problems.length > 0) {
      console.error(`preflight --prove: scripts/install-deps.sh does not account for what the tests use:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
      process.exit(1);
    }
    console.log(`preflight --prove: every program and module the tests use comes from scripts/install-deps.sh's ${deps.length} packages or their dependencies`);
  }
  console.log(`preflight: ${deps.reduce((n, d) => n + d.checks.length, 0)} programs, Python modules and libraries present`);
}
