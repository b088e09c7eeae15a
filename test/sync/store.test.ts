import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isPenstockError } from '../../src/common/errors.ts';
import { leafHash, MemoryTree, rootAt, TreeBuilder } from '../../src/journal/merkle.ts';
import { eventFileName, PullStore } from '../../src/sync/store.ts';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'penstock-store-'));
}

function page(store: PullStore, from: number, n: number): void {
  const tree = store.tree();
  const texts: string[] = [];
  for (let i = 0; i < n; i++) {
    const t = JSON.stringify({ seq: from + i });
    texts.push(t);
    tree.push(leafHash(Buffer.from(t)));
  }
  store.appendEvents(texts, tree);
}

test('events go to fixed-size files by seq and the frontier survives reopening', () => {
  const dir = tmp();
  try {
    const s = PullStore.open(dir, 4);
    s.saveCheckpoint({ size: 10, root_hash: 'x', note: 'n\n' }, 'gw');
    page(s, 0, 3);
    page(s, 3, 6); // crosses two file boundaries
    s.close();
    assert.equal(readFileSync(join(dir, eventFileName(1)), 'utf8'), [0, 1, 2, 3].map((i) => `{"seq":${i}}\n`).join(''));
    assert.equal(readFileSync(join(dir, eventFileName(2)), 'utf8'), [4, 5, 6, 7].map((i) => `{"seq":${i}}\n`).join(''));
    assert.equal(readFileSync(join(dir, eventFileName(3)), 'utf8'), '{"seq":8}\n');
    const again = PullStore.open(dir, 1000); // events_per_file is fixed by the directory
    assert.equal(again.cursor, 9);
    assert.equal(again.state.events_per_file, 4);
    const mem = new MemoryTree(Array.from({ length: 9 }, (_, i) => leafHash(Buffer.from(JSON.stringify({ seq: i })))));
    assert.deepEqual(again.tree().root(), rootAt(mem, 9));
    again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('on open, anything written beyond state.json (a kill mid-page) is cut off', () => {
  const dir = tmp();
  try {
    const s = PullStore.open(dir, 4);
    s.saveCheckpoint({ size: 10, root_hash: 'x', note: 'n\n' }, 'gw');
    page(s, 0, 6);
    s.close();
    // What a kill between "events fsynced" and "state.json renamed" leaves behind.
    appendFileSync(join(dir, eventFileName(2)), '{"seq":6}\n{"seq":7}\n{"se');
    writeFileSync(join(dir, eventFileName(3)), '{"seq":8}\n');
    writeFileSync(join(dir, 'state.json.tmp'), '{"half');
    const again = PullStore.open(dir, 4);
    assert.equal(again.cursor, 6);
    assert.equal(readFileSync(join(dir, eventFileName(2)), 'utf8'), '{"seq":4}\n{"seq":5}\n');
    assert.ok(!existsSync(join(dir, eventFileName(3))));
    assert.ok(!existsSync(join(dir, 'state.json.tmp')));
    page(again, 6, 3);
    again.close();
    assert.equal(readFileSync(join(dir, eventFileName(3)), 'utf8'), '{"seq":8}\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a store missing events it recorded, or in use, is refused with a code', () => {
  const dir = tmp();
  try {
    const s = PullStore.open(dir, 4);
    assert.throws(() => PullStore.open(dir, 4), (e) => isPenstockError(e, 'PS_SYNC_BUSY'));
    s.saveCheckpoint({ size: 10, root_hash: 'x', note: 'n\n' }, 'gw');
    page(s, 0, 6);
    s.close();
    writeFileSync(join(dir, eventFileName(2)), '{"seq":4}\n');
    assert.throws(() => PullStore.open(dir, 4), (e) => isPenstockError(e, 'PS_SYNC_LOCAL_STORE') && e.details?.file === eventFileName(2));
    writeFileSync(join(dir, 'state.json'), '{"version":1}');
    assert.throws(() => PullStore.open(dir, 4), (e) => isPenstockError(e, 'PS_SYNC_LOCAL_STORE'));
    // A lock left by a dead process is taken over.
    rmSync(join(dir, 'state.json'));
    rmSync(join(dir, eventFileName(1)));
    rmSync(join(dir, eventFileName(2)));
    writeFileSync(join(dir, '.lock'), '999999999\n');
    PullStore.open(dir, 4).close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('TreeBuilder frontier round-trips through base64 like state.json keeps it', () => {
  const t = new TreeBuilder();
  for (let i = 0; i < 13; i++) t.push(leafHash(Buffer.from([i])));
  const saved = t.frontier().map((h) => Buffer.from(h).toString('base64'));
  const back = new TreeBuilder(13, saved.map((h) => new Uint8Array(Buffer.from(h, 'base64'))));
  assert.deepEqual(back.root(), t.root());
});
