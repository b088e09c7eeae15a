// The error catalogue is what callers match on (style.md: codes, never text), so every code in it must
// be one some part of src/ really raises, and described. A code no one throws is a promise nobody keeps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES } from '../../src/common/errors.ts';

const SRC = join(import.meta.dirname, '../../src');

function sources(dir: string): { file: string; text: string }[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name))
    .filter((file) => file !== join(SRC, 'common/errors.ts'))
    .map((file) => ({ file, text: readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '') }));
}

test('every error code in the catalogue is raised somewhere in src/, not only compared against', () => {
  const files = sources(SRC);
  const unraised: string[] = [];
  for (const code of Object.keys(ERROR_CODES)) {
    const quoted = `'${code}'`;
    // Uses that only test for a code (isPenstockError(err, 'X'), code === 'X') do not count as raising it.
    const raised = files.some(({ text }) => text.split(quoted).length - 1 > (text.match(new RegExp(`(isPenstockError\\([^)]*|[!=]==\\s*)${quoted}`, 'g'))?.length ?? 0));
    if (!raised) unraised.push(code);
  }
  assert.deepEqual(unraised, [], 'codes no part of src/ raises: remove them or raise them');
});

test('every error code is described in the catalogue, in a sentence of its own', () => {
  const descriptions = Object.entries(ERROR_CODES);
  for (const [code, text] of descriptions) {
    assert.match(code, /^PS_[A-Z]+(_[A-Z]+)*$/, code);
    assert.ok(text.length >= 10, `${code} has no real description`);
  }
  assert.equal(new Set(descriptions.map(([, t]) => t)).size, descriptions.length, 'two codes share one description');
});

test('the journal raises journal codes, the admin socket admin codes: no part throws another part\'s code', () => {
  // Journal codes are also raised by the admin socket for evidence it serves (an altered recording).
  const owners: Record<string, string[]> = { PS_ADMIN_: ['admin/'], PS_SYNC_: ['sync/'], PS_JOURNAL_: ['journal/', 'admin/'] };
  const wrong: string[] = [];
  for (const { file, text } of sources(SRC)) {
    const rel = file.slice(SRC.length + 1);
    for (const m of text.matchAll(/new PenstockError\(\s*'(PS_[A-Z_]+)'/g)) {
      const prefix = Object.keys(owners).find((p) => m[1]!.startsWith(p));
      if (prefix && !owners[prefix]!.some((dir) => rel.startsWith(dir))) wrong.push(`${rel}: ${m[1]}`);
    }
  }
  assert.deepEqual(wrong, []);
});
