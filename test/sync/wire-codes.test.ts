// Every error code the pull API puts on the wire is documented, with its status, where integrators read
// it: the pull API section of docs/journal.md and the API text at the top of src/sync/server.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SYNC_WIRE_ERRORS } from '../../src/sync/types.ts';

const root = new URL('../../', import.meta.url);
const page = readFileSync(new URL('docs/journal.md', root), 'utf8');
const start = page.indexOf('## Pull API for central PAM');
const end = page.indexOf('\n## ', start + 5);
const section = start < 0 ? '' : page.slice(start, end < 0 ? undefined : end);
const serverText = readFileSync(new URL('src/sync/server.ts', root), 'utf8').split('---------------------------------------------------------------------------------------------')[1] ?? '';

test('every wire error code is documented with its status in docs/journal.md and in server.ts', () => {
  assert.ok(section.length > 100 && serverText.length > 100, 'both texts found');
  for (const [code, status] of Object.entries(SYNC_WIRE_ERRORS)) {
    assert.ok(section.includes(`\`${code}\``), `docs/journal.md: ${code}`);
    assert.match(serverText, new RegExp(`\\b${code} \\(${status}[,)]`), `server.ts: ${code} (${status})`);
  }
});
