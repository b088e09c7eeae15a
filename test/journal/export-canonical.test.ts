// Issue 10, section 4: `journal verify-export` accepted altered bytes when lines carry `leaf_hash`: a
// duplicated "appliance" key with extra spaces parses to the same event (same hash), so the old check
// (canonical form only for lines without leaf_hash) printed "export OK … unaltered". Run through the
// real penstockctl, offline, as an auditor would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { verifyExport } from '../../src/journal/verify.ts';
import { appendMany, openJournal, tempDir } from './helpers.ts';

const ROOT = resolve(import.meta.dirname, '../..');

function verifyExportCli(file: string, vkey: string): Promise<{ code: number; stdout: string }> {
  return new Promise((done) => {
    execFile(join(ROOT, 'node_modules/.bin/node'), [join(ROOT, 'src/cli/penstockctl.ts'), 'journal', 'verify-export', file, '--vkey', vkey], (err, stdout) => {
      done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout });
    });
  });
}

test('an exported line with a duplicated "appliance" key and extra spaces is refused, leaf_hash or not', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const j = await openJournal(join(dir, 'journal'));
  await appendMany(j, 30);
  const lines: string[] = [];
  const exp = j.exportJsonLines(0, 1000, (l) => lines.push(l));
  const vkey = j.publicKeyVkey();
  await j.close();
  const file = join(dir, 'export.jsonl');
  writeFileSync(`${file}.checkpoint`, exp.checkpoint);
  writeFileSync(file, lines.join(''));
  assert.deepEqual(await verifyExportCli(file, vkey), { code: 0, stdout: 'export OK: every event present, in order, unaltered\n' });

  const altered = [...lines];
  const appliance = (JSON.parse(altered[7]!) as { appliance: string }).appliance;
  // Same event once parsed (the later duplicate wins and says the same), different bytes on disk.
  altered[7] = altered[7]!.replace('{', `{"appliance" :  ${JSON.stringify(appliance)},  `);
  assert.notEqual(altered[7], lines[7]);
  assert.deepEqual(JSON.parse(altered[7]!), JSON.parse(lines[7]!));
  writeFileSync(file, altered.join(''));
  const cli = await verifyExportCli(file, vkey);
  assert.equal(cli.code, 1, cli.stdout);
  assert.match(cli.stdout, /^export BAD at seq 7:/);
  const r = verifyExport({ lines: altered, checkpointNote: exp.checkpoint, vkey });
  assert.deepEqual(r.ok ? r : { seq: r.seq, line: r.line }, { seq: 7, line: 8 });
  // The same alteration without leaf_hash (pulled raw events) was refused before and still is.
  const raw = altered.map((l) => l.replace(/,"leaf_hash":"[^"]*"/, ''));
  assert.equal(verifyExport({ lines: raw, checkpointNote: exp.checkpoint, vkey }).ok, false);
});
