import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isGrantActive, isWithinSchedule, nextChange, type ScheduleEntry } from '../../src/grants/window.ts';
import type { HeldGrant } from '../../src/grants/types.ts';

const ALL_DAYS: ScheduleEntry['days'] = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const Z = (iso: string): number => Date.parse(iso);
const MIN = 60_000;

function held(extra: Partial<HeldGrant>): HeldGrant {
  return { id: 'G', principal: 'p', targets: ['t'], task: { ticket: 'WO-1' }, rules: [{ ssh: { effect: 'allow', shell: true } }], source: 'config', ...extra };
}

/** Minutes in [from, to) (UTC ISO) during which the schedule holds. */
function minutesInside(s: ScheduleEntry[], from: string, to: string): number {
  let n = 0;
  for (let t = Z(from); t < Z(to); t += MIN) if (isWithinSchedule(s, t)) n++;
  return n;
}

test('absolute windows: from inclusive, to exclusive, revocation ends them', () => {
  const g = held({ window: { from: '2026-06-15T08:00:00Z', to: '2026-06-15T12:00:00+02:00' } });
  assert.equal(isGrantActive(g, Z('2026-06-15T07:59:59.999Z')), false);
  assert.equal(isGrantActive(g, Z('2026-06-15T08:00:00Z')), true);
  assert.equal(isGrantActive(g, Z('2026-06-15T09:59:59.999Z')), true);
  assert.equal(isGrantActive(g, Z('2026-06-15T10:00:00Z')), false);
  const r = { ...g, revoked: { by: { uid: 1000, verified: true }, at: '2026-06-15T08:30:00Z', reason: 'done' } };
  assert.equal(isGrantActive(r, Z('2026-06-15T09:00:00Z')), false);
});

test('a 09:00-17:00 local window in five zones, winter and summer (UTC instants worked out by hand)', () => {
  // [tz, January start, January end, July start, July end] for 2026-01-14 and 2026-07-15 local dates.
  const table: [string, string, string, string, string][] = [
    ['UTC', '2026-01-14T09:00Z', '2026-01-14T17:00Z', '2026-07-15T09:00Z', '2026-07-15T17:00Z'],
    ['Europe/Berlin', '2026-01-14T08:00Z', '2026-01-14T16:00Z', '2026-07-15T07:00Z', '2026-07-15T15:00Z'], // CET +1, CEST +2
    ['America/New_York', '2026-01-14T14:00Z', '2026-01-14T22:00Z', '2026-07-15T13:00Z', '2026-07-15T21:00Z'], // EST -5, EDT -4
    ['Australia/Sydney', '2026-01-13T22:00Z', '2026-01-14T06:00Z', '2026-07-14T23:00Z', '2026-07-15T07:00Z'], // AEDT +11, AEST +10
    ['Asia/Kolkata', '2026-01-14T03:30Z', '2026-01-14T11:30Z', '2026-07-15T03:30Z', '2026-07-15T11:30Z'], // IST +5:30
  ];
  for (const [tz, ...edges] of table) {
    const s: ScheduleEntry[] = [{ days: ALL_DAYS, from: '09:00', to: '17:00', tz }];
    for (let k = 0; k < 4; k += 2) {
      const start = Z(edges[k]!.replace('Z', ':00Z'));
      const end = Z(edges[k + 1]!.replace('Z', ':00Z'));
      assert.equal(isWithinSchedule(s, start - 1), false, `${tz} just before ${edges[k]}`);
      assert.equal(isWithinSchedule(s, start), true, `${tz} at ${edges[k]}`);
      assert.equal(isWithinSchedule(s, end - 1), true, `${tz} just before ${edges[k + 1]}`);
      assert.equal(isWithinSchedule(s, end), false, `${tz} at ${edges[k + 1]}`);
    }
  }
});

test('an 08:00-17:00 Europe/Berlin window is 06:00-15:00Z in summer and 07:00-16:00Z in winter', () => {
  const s: ScheduleEntry[] = [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '08:00', to: '17:00', tz: 'Europe/Berlin' }];
  assert.equal(minutesInside(s, '2026-07-15T00:00:00Z', '2026-07-16T00:00:00Z'), 9 * 60);
  assert.equal(isWithinSchedule(s, Z('2026-07-15T06:00:00Z')), true);
  assert.equal(isWithinSchedule(s, Z('2026-07-15T15:00:00Z')), false);
  assert.equal(isWithinSchedule(s, Z('2026-01-14T07:00:00Z')), true);
  assert.equal(isWithinSchedule(s, Z('2026-01-14T06:59:00Z')), false);
  assert.equal(isWithinSchedule(s, Z('2026-01-14T16:00:00Z')), false);
  assert.equal(isWithinSchedule(s, Z('2026-07-18T08:00:00Z')), false, 'Saturday');
});

test('spring forward: a window across the gap is an hour shorter, one inside it does not happen', () => {
  // Berlin 2026-03-29: 02:00 CET (01:00Z) jumps to 03:00 CEST.
  const across: ScheduleEntry[] = [{ days: ['sun'], from: '01:30', to: '03:30', tz: 'Europe/Berlin' }];
  assert.equal(isWithinSchedule(across, Z('2026-03-29T00:29:59Z')), false);
  assert.equal(isWithinSchedule(across, Z('2026-03-29T00:30:00Z')), true, '01:30 CET');
  assert.equal(isWithinSchedule(across, Z('2026-03-29T01:00:00Z')), true, '03:00 CEST');
  assert.equal(isWithinSchedule(across, Z('2026-03-29T01:30:00Z')), false, '03:30 CEST');
  assert.equal(minutesInside(across, '2026-03-28T12:00:00Z', '2026-03-29T12:00:00Z'), 60);
  const gap: ScheduleEntry[] = [{ days: ['sun'], from: '02:00', to: '02:30', tz: 'Europe/Berlin' }];
  assert.equal(minutesInside(gap, '2026-03-28T12:00:00Z', '2026-03-29T12:00:00Z'), 0);
  assert.equal(minutesInside(gap, '2026-04-04T12:00:00Z', '2026-04-05T12:00:00Z'), 30, 'a week later it happens');
  // New York 2026-03-08: 02:00 EST (07:00Z) jumps to 03:00 EDT.
  const ny: ScheduleEntry[] = [{ days: ['sun'], from: '01:30', to: '03:30', tz: 'America/New_York' }];
  assert.equal(isWithinSchedule(ny, Z('2026-03-08T06:30:00Z')), true);
  assert.equal(isWithinSchedule(ny, Z('2026-03-08T07:29:59Z')), true);
  assert.equal(isWithinSchedule(ny, Z('2026-03-08T07:30:00Z')), false);
  assert.equal(minutesInside(ny, '2026-03-08T00:00:00Z', '2026-03-09T00:00:00Z'), 60);
  assert.equal(minutesInside([{ days: ['sun'], from: '02:00', to: '02:30', tz: 'America/New_York' }], '2026-03-08T00:00:00Z', '2026-03-09T00:00:00Z'), 0);
  // Sydney 2026-10-04: 02:00 AEST (16:00Z on the 3rd) jumps to 03:00 AEDT.
  assert.equal(minutesInside([{ days: ['sun'], from: '02:00', to: '02:30', tz: 'Australia/Sydney' }], '2026-10-03T00:00:00Z', '2026-10-04T12:00:00Z'), 0);
});

test('fall back: a window over the repeated hour holds during both occurrences', () => {
  // Berlin 2026-10-25: 03:00 CEST (01:00Z) falls back to 02:00 CET; 02:00-02:59 happens twice.
  const berlin: ScheduleEntry[] = [{ days: ['sun'], from: '02:00', to: '03:00', tz: 'Europe/Berlin' }];
  assert.equal(isWithinSchedule(berlin, Z('2026-10-24T23:59:59Z')), false);
  assert.equal(isWithinSchedule(berlin, Z('2026-10-25T00:00:00Z')), true, '02:00 CEST');
  assert.equal(isWithinSchedule(berlin, Z('2026-10-25T01:00:00Z')), true, '02:00 CET, the second time');
  assert.equal(isWithinSchedule(berlin, Z('2026-10-25T02:00:00Z')), false, '03:00 CET');
  assert.equal(minutesInside(berlin, '2026-10-24T12:00:00Z', '2026-10-25T12:00:00Z'), 120);
  // New York 2026-11-01: 02:00 EDT (06:00Z) falls back to 01:00 EST.
  const ny: ScheduleEntry[] = [{ days: ['sun'], from: '01:00', to: '02:00', tz: 'America/New_York' }];
  assert.equal(isWithinSchedule(ny, Z('2026-11-01T05:00:00Z')), true, '01:00 EDT');
  assert.equal(isWithinSchedule(ny, Z('2026-11-01T06:30:00Z')), true, '01:30 EST');
  assert.equal(isWithinSchedule(ny, Z('2026-11-01T07:00:00Z')), false, '02:00 EST');
  assert.equal(minutesInside(ny, '2026-11-01T00:00:00Z', '2026-11-02T00:00:00Z'), 120);
});

test('windows spanning midnight belong to the day they start; 24:00 ends the day', () => {
  // Friday 2026-06-19 22:00 Berlin (20:00Z) to Saturday 06:00 (04:00Z).
  const night: ScheduleEntry[] = [{ days: ['fri'], from: '22:00', to: '06:00', tz: 'Europe/Berlin' }];
  assert.equal(isWithinSchedule(night, Z('2026-06-19T19:59:59Z')), false);
  assert.equal(isWithinSchedule(night, Z('2026-06-19T20:00:00Z')), true);
  assert.equal(isWithinSchedule(night, Z('2026-06-20T03:59:59Z')), true, 'Saturday morning is still Friday night');
  assert.equal(isWithinSchedule(night, Z('2026-06-20T04:00:00Z')), false);
  assert.equal(isWithinSchedule(night, Z('2026-06-20T21:00:00Z')), false, 'Saturday night is not listed');
  assert.equal(isWithinSchedule(night, Z('2026-06-19T01:00:00Z')), false, 'Friday morning belongs to Thursday');
  const evening: ScheduleEntry[] = [{ days: ['sat'], from: '20:00', to: '24:00', tz: 'UTC' }];
  assert.equal(isWithinSchedule(evening, Z('2026-06-20T23:59:59.999Z')), true);
  assert.equal(isWithinSchedule(evening, Z('2026-06-21T00:00:00Z')), false);
  assert.equal(minutesInside(evening, '2026-06-15T00:00:00Z', '2026-06-22T00:00:00Z'), 240);
});

test('window and schedule together: both must hold', () => {
  const g = held({ window: { from: '2026-06-16T00:00:00Z', to: '2026-06-18T00:00:00Z' }, schedule: [{ days: ALL_DAYS, from: '10:00', to: '11:00', tz: 'UTC' }] });
  assert.equal(isGrantActive(g, Z('2026-06-15T10:30:00Z')), false);
  assert.equal(isGrantActive(g, Z('2026-06-16T10:30:00Z')), true);
  assert.equal(isGrantActive(g, Z('2026-06-16T11:30:00Z')), false);
  assert.equal(isGrantActive(g, Z('2026-06-18T10:30:00Z')), false);
});

test('nextChange names window edges and schedule boundaries', () => {
  const w = held({ window: { from: '2026-06-16T00:00:00Z', to: '2026-06-17T00:00:00Z' } });
  assert.equal(nextChange(w, Z('2026-06-15T00:00:00Z')), Z('2026-06-16T00:00:00Z'));
  assert.equal(nextChange(w, Z('2026-06-16T05:00:00Z')), Z('2026-06-17T00:00:00Z'));
  assert.equal(nextChange(w, Z('2026-06-17T00:00:00Z')), undefined);
  assert.equal(nextChange({ ...w, revoked: { by: { uid: 0, verified: true }, at: '2026-06-16T01:00:00Z', reason: 'x' } }, Z('2026-06-16T05:00:00Z')), undefined);
  const s = held({ schedule: [{ days: ['wed'], from: '08:00', to: '17:00', tz: 'Europe/Berlin' }] });
  assert.equal(nextChange(s, Z('2026-01-14T10:00:00Z')), Z('2026-01-14T16:00:00Z'));
  assert.equal(nextChange(s, Z('2026-01-14T16:00:00Z')), Z('2026-01-21T07:00:00Z'), 'next Wednesday');
});

test('following nextChange never skips a change, across DST shifts in several zones', () => {
  const zones = ['Europe/Berlin', 'America/New_York', 'Australia/Sydney', 'Asia/Kolkata', 'UTC'];
  const windows: [string, string][] = [['01:30', '03:30'], ['02:00', '02:30'], ['22:00', '02:30'], ['01:00', '02:00'], ['02:30', '24:00']];
  const spans: [string, string][] = [['2026-03-06T00:00:00Z', '2026-03-10T00:00:00Z'], ['2026-03-27T00:00:00Z', '2026-03-31T00:00:00Z'], ['2026-10-02T00:00:00Z', '2026-10-06T00:00:00Z'], ['2026-10-23T00:00:00Z', '2026-10-27T00:00:00Z'], ['2026-10-30T00:00:00Z', '2026-11-03T00:00:00Z']];
  for (const tz of zones) {
    for (const [from, to] of windows) {
      const g = held({ schedule: [{ days: ['sat', 'sun'], from, to, tz }] });
      for (const [a, b] of spans) {
        // Between two consecutive change points, activity is constant: check it every 5 minutes.
        let t = Z(a);
        while (t < Z(b)) {
          const next = nextChange(g, t)!;
          assert.ok(next > t, 'nextChange moves forward');
          const state = isGrantActive(g, t);
          for (let u = t; u < Math.min(next, Z(b)); u += 5 * MIN) assert.equal(isGrantActive(g, u), state, `${tz} ${from}-${to}: changed at ${new Date(u).toISOString()} before ${new Date(next).toISOString()}`);
          assert.equal(isGrantActive(g, next - 1), state);
          t = next;
        }
      }
    }
  }
});

test('a window ending inside the spring-forward gap ends when the clock jumps', () => {
  const g = held({ schedule: [{ days: ['sat'], from: '22:00', to: '02:30', tz: 'Europe/Berlin' }] });
  let t = Z('2026-03-28T22:00:00Z'); // Saturday 23:00 CET, inside
  assert.equal(isGrantActive(g, t), true);
  while (isGrantActive(g, t)) t = nextChange(g, t)!;
  assert.equal(t, Z('2026-03-29T01:00:00Z'), '02:00 CET becomes 03:00 CEST, past 02:30');
});
