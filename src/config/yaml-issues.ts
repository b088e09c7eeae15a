// Reading a YAML file so that every problem can be pinned to FILE:LINE:COL and a field path as the
// person wrote it. Shared by the config loader, firmware profiles and hardware profiles.
//
// zod reports paths into the plain JS value; we keep the parsed YAML Document (with a LineCounter) and
// walk the same path through its nodes to find where that value was written.
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs';
import { LineCounter, parseDocument, isAlias, isMap, isScalar, isSeq, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { PenstockError } from '../common/errors.ts';
import type { ConfigIssue } from './types.ts';
import { ISSUE_CODES } from './issue-codes.ts';
export { ISSUE_CODES } from './issue-codes.ts';

export type Path = readonly (string | number)[];

export interface YamlSource {
  file: string;
  doc: Document.Parsed;
  lines: LineCounter;
  /** The document as plain JS (what the schemas validate). */
  data: unknown;
}

/** `grants[2].rules[0].<protocol>.min` — the form ConfigIssue.field uses. */
export function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  return out;
}

/** `FILE:LINE:COL: FIELD: MESSAGE [CODE]`, warnings prefixed `warning:`. File-level issues (line 0) omit the position. */
export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line > 0 ? `${issue.file}:${issue.line}:${issue.column}` : issue.file;
  const field = issue.field ? `${issue.field}: ` : '';
  const code = issue.code ? ` [${issue.code}]` : '';
  return `${where}: ${issue.severity === 'warning' ? 'warning: ' : ''}${field}${issue.message}${code}`;
}

export function hasErrors(issues: readonly ConfigIssue[]): boolean {
  return issues.some((i) => i.severity === 'error');
}

/** Throw PS_CONFIG_INVALID listing every error (and warning) found. */
export function throwIfErrors(what: string, issues: readonly ConfigIssue[]): void {
  const errors = issues.filter((i) => i.severity === 'error');
  if (errors.length === 0) return;
  const first = errors.slice(0, 5).map(formatIssue).join('\n  ');
  const more = errors.length > 5 ? `\n  … and ${errors.length - 5} more` : '';
  throw new PenstockError('PS_CONFIG_INVALID', `${what}: ${errors.length} error${errors.length === 1 ? '' : 's'}\n  ${first}${more}`, { issues: [...issues] });
}

export function fileIssue(file: string, message: string, severity: ConfigIssue['severity'] = 'error', code?: string): ConfigIssue {
  return { file, line: 0, column: 0, field: '', message, severity, ...(code !== undefined ? { code } : {}) };
}

/** Why a file's text could not be had: the error code, a message for people, and whether it is absent. */
export interface UnreadableText {
  code: 'PS_CONFIG_READ' | 'PS_CONFIG_TOO_LARGE';
  message: string;
  missing?: boolean;
}

/**
 * A file's text, reading at most `maxBytes` (+1 to notice more): a regular file only, so a device
 * (/dev/zero), a FIFO or a socket is refused at once instead of blocking or filling memory.
 */
export function readBoundedText(file: string, maxBytes: number): { text: string } | UnreadableText {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO with no writer must not hang; it is refused below as not a regular file.
    fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { code: 'PS_CONFIG_READ', message: `cannot read file: ${code ?? String(err)}`, missing: code === 'ENOENT' };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { code: 'PS_CONFIG_READ', message: 'cannot read file: not a regular file' };
    const tooLarge = (): UnreadableText => ({ code: 'PS_CONFIG_TOO_LARGE', message: `file is larger than ${maxBytes} bytes, the most a config file may be` });
    if (st.size > maxBytes) return tooLarge();
    // st.size may be 0 for files that still have content (/proc): read until end, never past the bound.
    const buf = Buffer.allocUnsafe(Math.min(maxBytes, Math.max(st.size, 64 * 1024)) + 1);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      total += n;
      if (total > maxBytes) return tooLarge();
      chunks.push(Buffer.from(buf.subarray(0, n)));
    }
    return { text: Buffer.concat(chunks, total).toString('utf8') };
  } catch (err) {
    return { code: 'PS_CONFIG_READ', message: `cannot read file: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
  } finally {
    closeSync(fd);
  }
}

/** What readYaml needs to know to tell a config file from any other file. */
export interface YamlExpectation {
  /** Most bytes read (default: no bound). */
  maxBytes?: number;
  /**
   * Top-level keys of the expected kind of file. When given, a document whose top level is a map with
   * none of them is not that kind of file (a password or key file): it is reported in one message that
   * quotes nothing of it, and YAML syntax problems in a document not shown to be one are reported by
   * their code only (the library's messages quote tags, aliases and escapes from the text).
   */
  knownKeys?: readonly string[];
}

/** True when the document's top level is a map holding at least one of the known keys. */
function holdsKnownKey(contents: unknown, knownKeys: readonly string[]): boolean {
  return isMap(contents) && contents.items.some((p) => isScalar(p.key) && typeof p.key.value === 'string' && knownKeys.includes(p.key.value));
}

/**
 * Read and parse a YAML file (or `text` standing in for it), refusing more than `maxBytes`. YAML
 * syntax errors come back as issues, and then `source` is undefined: a half-parsed document is never
 * validated.
 */
export function readYaml(file: string, text?: string, expect: YamlExpectation = {}): { source?: YamlSource; issues: ConfigIssue[]; unreadable?: boolean; missing?: boolean; tooLarge?: boolean } {
  const maxBytes = expect.maxBytes ?? Number.MAX_SAFE_INTEGER;
  let src: string;
  if (text !== undefined) {
    if (Buffer.byteLength(text, 'utf8') > maxBytes) {
      return { issues: [fileIssue(file, `text is larger than ${maxBytes} bytes, the most a config file may be`, 'error', 'PS_CONFIG_TOO_LARGE')], unreadable: true, tooLarge: true };
    }
    src = text;
  } else {
    const read = readBoundedText(file, maxBytes);
    if (!('text' in read)) {
      return { issues: [fileIssue(file, read.message, 'error', read.code)], unreadable: true, ...(read.missing ? { missing: true } : {}), ...(read.code === 'PS_CONFIG_TOO_LARGE' ? { tooLarge: true } : {}) };
    }
    src = read.text;
  }
  const lines = new LineCounter();
  // YAML 1.2 core schema: `08:00` and `2026-11-25T08:00:00Z` stay strings, `yes` is not a boolean.
  const doc = parseDocument(src, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, version: '1.2' });
  const at = (offset: number) => lines.linePos(offset);
  const issues: ConfigIssue[] = [];
  const shown = expect.knownKeys === undefined || holdsKnownKey(doc.contents, expect.knownKeys);
  const describeYaml = (e: { code: string; message: string }) => (shown ? e.message.split('\n')[0] : `${e.code.toLowerCase().replaceAll('_', ' ')} (${e.code})`);
  for (const e of doc.errors) {
    const p = at(e.pos[0]);
    issues.push({ file, line: p.line, column: p.col, field: '', message: `YAML syntax: ${describeYaml(e)}`, severity: 'error' });
  }
  for (const w of doc.warnings) {
    const p = at(w.pos[0]);
    issues.push({ file, line: p.line, column: p.col, field: '', message: `YAML: ${describeYaml(w)}`, severity: 'warning' });
  }
  if (hasErrors(issues)) return { issues };
  if (doc.contents === null) return { issues: [...issues, { file, line: 1, column: 1, field: '', message: 'the file is empty', severity: 'error' }] };
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    const message = shown ? `YAML: ${(err as Error).message}` : 'YAML: the document cannot be resolved (an alias or tag)';
    return { issues: [...issues, { file, line: 1, column: 1, field: '', message, severity: 'error' }] };
  }
  if (!shown && isMap(doc.contents)) {
    const message = `not a config file: none of its ${doc.contents.items.length} top-level keys is one a config has (${expect.knownKeys!.join(', ')})`;
    return { issues: [...issues, { file, line: 1, column: 1, field: '', message, severity: 'error' }] };
  }
  return { source: { file, doc, lines, data }, issues };
}

/** The value at `path` in plain data, or undefined. */
export function valueAt(data: unknown, path: Path): unknown {
  let cur = data;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return cur;
}

/**
 * Line and column where `path` was written. A scalar points at its value (or its key, if asked); a map or list at its key;
 * a path that does not exist (a missing key) at the deepest part that does — the parent map.
 */
export function locate(source: YamlSource, path: Path, at: 'value' | 'key' = 'value'): { line: number; column: number } {
  const resolve = (n: unknown): unknown => (isAlias(n) ? n.resolve(source.doc) : n);
  let node: unknown = resolve(source.doc.contents);
  let keyNode: Node | undefined;
  let complete = true;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === seg);
      if (!pair) { complete = false; break; }
      keyNode = pair.key as Node;
      node = resolve(pair.value);
    } else if (isSeq(node) && typeof seg === 'number' && seg < node.items.length) {
      keyNode = undefined;
      node = resolve(node.items[seg]);
    } else { complete = false; break; }
    if (node === null || node === undefined) {
      // `key:` with no value: the key is where it is written.
      complete = complete && seg === path[path.length - 1];
      break;
    }
  }
  const range = (n: unknown): number | undefined => (n && typeof n === 'object' && 'range' in n ? (n as Node).range?.[0] : undefined);
  let offset: number | undefined;
  if (complete && isScalar(node) && !(at === 'key' && keyNode)) offset = range(node);
  offset ??= range(keyNode) ?? range(node) ?? 0;
  const p = source.lines.linePos(offset);
  return { line: p.line, column: p.col };
}

export function issueAt(source: YamlSource, path: Path, message: string, severity: ConfigIssue['severity'] = 'error', at: 'value' | 'key' = 'value'): ConfigIssue {
  return { file: source.file, ...locate(source, path, at), field: formatPath(path), message, severity };
}

// ---------------------------------------------------------------- zod issues → located issues


function coded(issue: ConfigIssue, code: string | undefined): ConfigIssue {
  return code === undefined ? issue : { ...issue, code };
}

type ZodIssue = z.core.$ZodIssue;

/**
 * The kind of a value, never the value: a file that is not a config at all (a key, a password file)
 * parses as one string, and echoing it would hand its content to whoever asked for the check.
 */
function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'number') return 'a number';
  if (typeof v === 'boolean') return 'a boolean';
  return typeof v;
}

function typeMatches(expected: string, v: unknown): boolean {
  switch (expected) {
    case 'number': case 'int': case 'nan': return typeof v === 'number';
    case 'string': return typeof v === 'string';
    case 'boolean': return typeof v === 'boolean';
    case 'array': return Array.isArray(v);
    case 'object': case 'record': case 'map': return v !== null && typeof v === 'object' && !Array.isArray(v);
    default: return false;
  }
}

/** A union branch "did not apply" when it failed on the very kind of value (or keys) at its root. */
function branchMisfits(branch: readonly ZodIssue[], value: unknown): boolean {
  return branch.some((i) => {
    if (i.path.length === 0) {
      if (i.code === 'unrecognized_keys') return true;
      if (i.code === 'invalid_type') return !typeMatches(i.expected, value);
    }
    // A required top-level key of this branch is absent: the author meant another branch.
    if (i.path.length === 1 && i.code === 'invalid_type' && value !== null && typeof value === 'object' && !((i.path[0] as string) in (value as object))) return true;
    return false;
  });
}

function unionFallback(branches: readonly (readonly ZodIssue[])[], value: unknown): string {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const keys = new Set<string>();
    for (const b of branches) for (const i of b) if (i.path.length === 1 && i.code === 'invalid_type' && !((i.path[0] as string) in (value as object))) keys.add(String(i.path[0]));
    if (keys.size > 0) {
      const found = Object.keys(value);
      return `must have exactly one of the keys ${[...keys].join(', ')} (found ${found.length ? found.join(', ') : 'none'})`;
    }
  }
  const expected = new Set<string>();
  for (const b of branches) for (const i of b) if (i.path.length === 0 && i.code === 'invalid_type') expected.add(i.expected === 'object' ? 'a map' : i.expected);
  return expected.size ? `must be ${[...expected].join(' or ')}, got ${describe(value)}` : 'matches none of the allowed forms';
}

/**
 * Turn zod issues (paths relative to `base` inside the document) into located ConfigIssues:
 * one issue per unknown key, missing keys pointed at their parent map, union failures reduced to the
 * branch the author evidently meant.
 */
export function zodToIssues(source: YamlSource, issues: readonly ZodIssue[], base: Path = []): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const walk = (list: readonly ZodIssue[], prefix: Path) => {
    for (const i of list) {
      const path = [...prefix, ...(i.path as (string | number)[])];
      const value = valueAt(source.data, path);
      if (i.code === 'invalid_union' && i.errors.length > 0) {
        const fitting = i.errors.filter((b) => !branchMisfits(b, value));
        if (fitting.length > 0) {
          walk(fitting.reduce((a, b) => (b.length < a.length ? b : a)), path);
        } else {
          out.push(issueAt(source, path, unionFallback(i.errors, value)));
        }
      } else if (i.code === 'unrecognized_keys') {
        for (const k of i.keys) out.push(coded(issueAt(source, [...path, k], `unknown field \`${k}\``, 'error', 'key'), ISSUE_CODES.unknownField));
      } else if (i.code === 'invalid_type' && value === undefined && path.length > 0 && typeof valueAt(source.data, path.slice(0, -1)) === 'object') {
        out.push(coded(issueAt(source, path, `missing required field \`${String(path[path.length - 1])}\``), ISSUE_CODES.missingField));
      } else if (i.code === 'invalid_type') {
        out.push(coded(issueAt(source, path, `expected ${i.expected === 'object' ? 'a map' : i.expected}, got ${describe(value)}`), ISSUE_CODES.wrongType));
      } else {
        const code: unknown = i.code === 'custom' ? i.params?.code : undefined;
        out.push(coded(issueAt(source, path, i.message), typeof code === 'string' ? code : undefined));
      }
    }
  };
  walk(issues, base);
  return out;
}

/** In reading order: the `first` file's issues, then other files by name; by line and column within each. */
export function sortIssues(issues: readonly ConfigIssue[], first?: string): ConfigIssue[] {
  return [...issues].sort((a, b) =>
    (a.file === first ? 0 : 1) - (b.file === first ? 0 : 1) || (a.file < b.file ? -1 : a.file > b.file ? 1 : 0) || a.line - b.line || a.column - b.column);
}

/** Drop exact repeats (the same field checked by two schemas). */
export function dedupe(issues: readonly ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const k = `${i.line}:${i.column}:${i.field}:${i.severity}:${i.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Freeze a value and everything reachable from it; Maps refuse set/delete/clear. */
export function deepFreeze<T>(value: T, seen = new Set<unknown>()): T {
  if (value === null || typeof value !== 'object' || seen.has(value)) return value;
  seen.add(value);
  if (value instanceof Map) {
    for (const [k, v] of value) { deepFreeze(k, seen); deepFreeze(v, seen); }
    const refuse = () => { throw new TypeError('a loaded config is immutable; load a new snapshot instead'); };
    Object.defineProperties(value, { set: { value: refuse }, delete: { value: refuse }, clear: { value: refuse } });
  } else {
    for (const v of Object.values(value)) deepFreeze(v, seen);
  }
  return Object.freeze(value);
}
