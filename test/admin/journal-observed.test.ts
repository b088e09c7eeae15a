// journal.observed (what `penstockctl grants suggest` reads): one principal's action events and read
// aggregates, filtered on the daemon by session, target and time, bounded per request, paged with `next`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/common/clock.ts';
import { journalCommands, MAX_EVENTS_PER_REQUEST, scanObserved } from '../../src/admin/journal-commands.ts';
import type { AdminContext, CommandContext } from '../../src/admin/types.ts';
import type { LmdbJournal } from '../../src/journal/journal.ts';
import type { Action } from '../../src/policy/types.ts';
import { openJournal, tempDir } from '../journal/helpers.ts';

const tmp = tempDir('penstock-observed-');
const clock = new ManualClock(Date.parse('2026-11-22T08:00:00Z'));
let journal: LmdbJournal;
const profile = { name: 'p', vendor: 'v', model: 'm', protocol: 'modbus', source: 's', word_order: 'big' as const, points: [] };

const read = (target: string, address: number): Action => ({ target, verb: 'read', object: { kind: 'modbus', unit: 1, functionCode: 3, table: 'holding_register', address, quantity: 1 } });
const allow = { effect: 'allow' as const, reason: 'rule_allows' as const, explanation: 'x' };
const deny = { effect: 'deny' as const, reason: 'object_not_granted' as const, explanation: 'x' };

interface Page { events: { seq: number; event: string; session?: string; target?: string; reads?: { target: string }[]; decision?: { reason?: string } }[]; next: number; size: number; targets: Record<string, { protocol: string; profile?: unknown }> }

function observed(params: Record<string, unknown>): Promise<Page> {
  const cmd = journalCommands['journal.observed']!;
  const context = {
    journal,
    core: { config: () => ({ targets: new Map([['plc-1', { id: 'plc-1', protocol: 'modbus', zone: 'a', profile: 'p' }], ['plc-2', { id: 'plc-2', protocol: 'modbus', zone: 'b' }]]), profiles: new Map([['p', profile]]) }) },
  } as unknown as AdminContext;
  const ctx: CommandContext = { operator: { uid: 0, verified: true }, context };
  return cmd.handler(cmd.params.parse(params) as never, ctx) as Promise<Page>;
}

async function all(params: Record<string, unknown>): Promise<{ events: Page['events']; pages: number }> {
  const events: Page['events'] = [];
  let from = 0;
  let pages = 0;
  for (;;) {
    const p = await observed({ ...params, from });
    pages++;
    events.push(...p.events);
    if (p.next >= p.size) return { events, pages };
    from = p.next;
  }
}

before(async () => {
  journal = await openJournal(`${tmp.dir}/j`, { clock });
  // vendor-a: 2100 allowed reads in s1 (more than one page), two refusals in s2 an hour later, and
  // aggregated reads of two targets; vendor-b in between (never returned); a session record (not an action).
  await Promise.all(Array.from({ length: 2100 }, (_, i) => journal.append({ event: 'action.allowed', session: 's1', principal: 'vendor-a', target: 'plc-1', action: read('plc-1', i % 50), decision: allow })));
  await journal.append({ event: 'action.allowed', session: 's9', principal: 'vendor-b', target: 'plc-1', action: read('plc-1', 1), decision: allow });
  await journal.append({ event: 'session.closed', session: 's1', principal: 'vendor-a', detail: { reason: 'peer_closed' } });
  clock.advance(3_600_000);
  await journal.append({ event: 'action.denied', session: 's2', principal: 'vendor-a', target: 'plc-2', action: read('plc-2', 7), decision: deny });
  await journal.append({ event: 'action.denied', session: 's2', principal: 'vendor-a', target: 'plc-1', action: read('plc-1', 99), decision: deny });
  await journal.append({ event: 'reads.aggregate', session: 's2', principal: 'vendor-a', detail: { reads: [
    { target: 'plc-1', verb: 'read', object: { kind: 'modbus', unit: 1, functionCode: 3, table: 'holding_register', address: 5, quantity: 1 }, count: 9, first: '2026-11-22T09:00:00.000Z', last: '2026-11-22T09:00:01.000Z' },
    { target: 'plc-2', verb: 'read', object: { kind: 'modbus', unit: 1, functionCode: 3, table: 'holding_register', address: 6, quantity: 1 }, count: 2, first: '2026-11-22T09:00:00.000Z', last: '2026-11-22T09:00:01.000Z' },
  ] } });
});
after(async () => {
  await journal?.close();
  tmp.cleanup();
});

test('only the principal\'s actions and read aggregates, paged at most MAX_EVENTS_PER_REQUEST at a time', async () => {
  const first = await observed({ principal: 'vendor-a' });
  assert.equal(first.events.length, MAX_EVENTS_PER_REQUEST);
  assert.ok(first.next < first.size, 'more to read');
  const { events, pages } = await all({ principal: 'vendor-a' });
  assert.equal(pages, 2);
  assert.equal(events.length, 2100 + 3);
  assert.deepEqual(new Set(events.map((e) => e.event)), new Set(['action.allowed', 'action.denied', 'reads.aggregate']));
  assert.ok(events.every((e) => e.session !== 's9'), 'vendor-b never appears');
  assert.deepEqual(events.map((e) => e.seq), [...events.map((e) => e.seq)].sort((a, b) => a - b), 'in journal order, none twice');
  assert.equal(new Set(events.map((e) => e.seq)).size, events.length);
});

test('filters: session, target (also inside an aggregate), since; the targets named come with protocol and profile', async () => {
  const s2 = (await all({ principal: 'vendor-a', session: 's2' })).events;
  assert.deepEqual(s2.map((e) => e.event), ['action.denied', 'action.denied', 'reads.aggregate']);
  const plc2 = (await all({ principal: 'vendor-a', target: 'plc-2' })).events;
  assert.deepEqual(plc2.map((e) => [e.event, e.target ?? e.reads?.map((r) => r.target).join()]), [['action.denied', 'plc-2'], ['reads.aggregate', 'plc-2']]);
  const late = await observed({ principal: 'vendor-a', since: '2026-11-22T08:30:00Z' });
  assert.equal(late.events.length, 3, 'only what came after the hour');
  assert.equal(late.targets['plc-1']?.protocol, 'modbus');
  assert.deepEqual(late.targets['plc-1']?.profile, profile);
  assert.equal(late.targets['plc-2']?.profile, undefined);
  assert.equal((await all({ principal: 'nobody' })).events.length, 0);
});

test('bounded: a page looks at no more events than its scan limit, and paging on from `next` still finds them all', async () => {
  const page = scanObserved(journal, { principal: 'vendor-a', session: 's2', from: 0 }, 500);
  assert.equal(page.next, 500, 'stopped after 500 events looked at');
  assert.deepEqual(page.events, [], 's2 comes later');
  const found: unknown[] = [];
  let from = 0;
  let pages = 0;
  while (from < journal.size()) {
    const p = scanObserved(journal, { principal: 'vendor-a', session: 's2', from }, 500);
    found.push(...p.events);
    from = p.next;
    pages++;
  }
  assert.equal(found.length, 3);
  assert.equal(pages, Math.ceil(journal.size() / 500));
});

test('journal.observed changes nothing and refuses bad params', () => {
  const cmd = journalCommands['journal.observed']!;
  assert.equal(cmd.mutates, false);
  for (const bad of [{}, { principal: '' }, { principal: 'a', since: 'yesterday' }, { principal: 'a', from: -1 }, { principal: 'a', extra: 1 }]) {
    assert.equal(cmd.params.safeParse(bad).success, false, JSON.stringify(bad));
  }
});
