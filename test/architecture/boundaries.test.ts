// The shape issue 13 promised: a protocol is one folder under src/adapters/ plus one line in the module
// table (src/adapters/registry.ts). Read from the source on every run, so a new mention of a protocol
// outside its folder, or a wrong-way import, fails here with the file and line named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { protocols } from '../../src/adapters/registry.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = join(ROOT, 'src');
const ADAPTERS = join(SRC, 'adapters');
const REGISTRY = join(ADAPTERS, 'registry.ts');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}
const FILES = sourceFiles(SRC);
const rel = (p: string) => relative(ROOT, p);

/** Words that name a protocol: its name, its title, and the names of its parts people write. */
const EXTRA_TERMS: Record<string, string[]> = { ssh: ['sftp', 'ssh2'], modbus: ['mbap'], opcua: ['node-opcua'] };
function termsOf(name: string, title: string): RegExp {
  // The title's words may be written apart or together: `OPC UA`, `OPC-UA`, `opcua`. A term followed by
  // more letters (SshObject, ModbusTable) is a mention too; one preceded by a letter (`class`) is not.
  const alternatives = [name, title, ...(EXTRA_TERMS[name] ?? [])].map((w) => w.toLowerCase().split(/[^a-z0-9]+/).filter(Boolean).join('[\\s_/-]?'));
  return new RegExp(`(?<![a-z])(${alternatives.join('|')})`, 'i');
}

/** The lines of `file` that name protocol `name`. */
function mentions(file: string, pattern: RegExp): string[] {
  return readFileSync(file, 'utf8').split('\n').flatMap((line, i) => (pattern.test(line) ? [`${rel(file)}:${i + 1}: ${line.trim().slice(0, 120)}`] : []));
}

test('every registered protocol is a folder under src/adapters with a module.ts, and every protocol folder is registered', () => {
  const folders = readdirSync(ADAPTERS).filter((n) => statSync(join(ADAPTERS, n)).isDirectory()).sort();
  assert.deepEqual([...protocols.keys()].sort(), folders);
  for (const name of folders) assert.ok(statSync(join(ADAPTERS, name, 'module.ts')).isFile(), `${name}/module.ts`);
});

test('no file outside a protocol\'s folder and the module table names that protocol or its types', () => {
  const found: string[] = [];
  for (const m of protocols.values()) {
    const folder = join(ADAPTERS, m.name) + '/';
    const pattern = termsOf(m.name, m.title);
    for (const file of FILES) {
      if (file.startsWith(folder) || file === REGISTRY) continue;
      found.push(...mentions(file, pattern).map((l) => `[${m.name}] ${l}`));
    }
  }
  assert.deepEqual(found, [], `protocol knowledge outside its folder:\n${found.join('\n')}`);
});

test('the check can fail: it finds a protocol named in a shared file', () => {
  const [m] = protocols.values();
  assert.ok(m);
  assert.ok(termsOf(m.name, m.title).test(`// a comment about ${m.title}`));
  assert.ok(termsOf(m.name, m.title).test(`const x: ${m.name[0]!.toUpperCase()}${m.name.slice(1)}Object`));
  assert.equal(termsOf(m.name, m.title).test('// the journal knows no protocol'), false);
});

// ------------------------------------------------------------------ imports

interface Edge { from: string; to: string; line: number; names: string; typeOnly: boolean; dynamic: boolean }
function importsOf(file: string): Edge[] {
  const text = readFileSync(file, 'utf8');
  const out: Edge[] = [];
  const re = /(?:^|\n)\s*(?:import|export)\s+(type\s+)?([^'";]*?)\s*from\s*'([^']+)'|import\(\s*'([^']+)'\s*\)/g;
  for (const m of text.matchAll(re)) {
    const spec = m[3] ?? m[4]!;
    if (!spec.startsWith('.')) continue;
    const line = text.slice(0, m.index).split('\n').length + (m[0].startsWith('\n') ? 1 : 0);
    const names = m[2] ?? '';
    // `import type {…}` and `import { type A, type B }` vanish at run time.
    const typeOnly = m[1] !== undefined || (/^\{[^}]*\}$/.test(names.trim()) && names.replace(/[{}\s]/g, '').split(',').filter(Boolean).every((n) => n.startsWith('type')));
    out.push({ from: file, to: resolve(dirname(file), spec), line, names, typeOnly, dynamic: m[4] !== undefined });
  }
  return out;
}
const EDGES = FILES.flatMap(importsOf);
const under = (p: string, dir: string) => p.startsWith(join(SRC, dir) + '/');
const protocolOf = (p: string) => [...protocols.keys()].find((name) => p.startsWith(join(ADAPTERS, name) + '/'));
const show = (e: Edge) => `${rel(e.from)}:${e.line} imports ${rel(e.to)}`;

test('core imports no front door, admin, sync, cli or the composition root', () => {
  const bad = EDGES.filter((e) => under(e.from, 'core') && ['adapters', 'admin', 'sync', 'cli', 'daemon'].some((d) => under(e.to, d)));
  assert.deepEqual(bad.map(show), []);
});

test('no front door imports another; shared code reaches a protocol only through the module table', () => {
  const bad = EDGES.filter((e) => {
    const to = protocolOf(e.to);
    return to !== undefined && protocolOf(e.from) !== to && e.from !== REGISTRY;
  });
  assert.deepEqual(bad.map(show), []);
});

test('only the core mints authorizations', () => {
  const bad = EDGES.filter((e) => /\bmintAuthorization\b/.test(e.names) && !under(e.from, 'core'));
  assert.deepEqual(bad.map(show), []);
  const calls = FILES.filter((f) => !under(f, 'core') && /\bmintAuthorization\s*\(/.test(readFileSync(f, 'utf8')));
  assert.deepEqual(calls.map(rel), []);
});

// Types derived from schemas make type-only cycles natural (config/types.ts ⇄ config/schema.ts), and a
// dynamic import (a module's load()) runs after start-up; a cycle of the imports that run at start-up is
// a start-up order bug waiting to happen, and a sign two parts are one.
test('no import cycles between source files, counting the imports that run at start-up', () => {
  const graph = new Map<string, string[]>();
  for (const e of EDGES) if (!e.typeOnly && !e.dynamic) graph.set(e.from, [...(graph.get(e.from) ?? []), e.to]);
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string) => {
    state.set(f, 'open');
    stack.push(f);
    for (const to of graph.get(f) ?? []) {
      if (state.get(to) === 'open') cycles.push([...stack.slice(stack.indexOf(to)), to].map(rel).join(' → '));
      else if (!state.has(to)) visit(to);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of FILES) if (!state.has(f)) visit(f);
  assert.deepEqual(cycles, []);
});
