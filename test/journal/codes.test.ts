import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EVENT_CODES } from '../../src/journal/codes.ts';

// Frozen: codes are evidence identifiers a SIEM matches on. Add new events at the end of their block
// and to this snapshot; never change or reuse a pair below.
const SNAPSHOT: Record<string, string> = {
  'daemon.started': 'PS1001I',
  'daemon.stopping': 'PS1002I',
  'config.loaded': 'PS1003I',
  'config.reloaded': 'PS1004I',
  'config.reload_refused': 'PS1005W',
  'checkpoint.signed': 'PS1006I',
  'session.opened': 'PS2001I',
  'session.closed': 'PS2002I',
  'session.killed': 'PS2003W',
  'auth.failed': 'PS2004W',
  'auth.rate_limited': 'PS2005W',
  'action.allowed': 'PS3001I',
  'action.denied': 'PS3002W',
  'action.outcome': 'PS3003I',
  'reads.aggregate': 'PS3004I',
  'action.malformed': 'PS3005W',
  'ssh.channel_refused': 'PS3006W',
  'grant.issued': 'PS4001I',
  'grant.revoked': 'PS4002W',
  'grant.expired': 'PS4003I',
  'approval.requested': 'PS4004I',
  'approval.granted': 'PS4005I',
  'approval.refused': 'PS4006W',
  'approval.timed_out': 'PS4007W',
  'alert.journal_unavailable': 'PS5001E',
  'alert.journal_recovered': 'PS5002I',
  'alert.denial_burst': 'PS5003W',
  'alert.out_of_window': 'PS5004W',
  'alert.delegation_mismatch': 'PS5005W',
  'alert.new_target': 'PS5006W',
  'alert.privilege_expansion': 'PS5007W',
  'alert.unexpected_delegation': 'PS5008W',
  'alert.probing': 'PS5009W',
  'alert.cross_zone': 'PS5010W',
  'alert.programming': 'PS5011W',
  'alert.unusual_write': 'PS5012W',
  'containment.applied': 'PS5013I',
  'containment.lifted': 'PS5014I',
  'mcp.session_refused': 'PS2006W',
  'mcp.tool_called': 'PS3007I',
  'mcp.tool_refused': 'PS3008W',
  'mcp.envelope_refused': 'PS4008W',
  'admin.request': 'PS6001I',
  'admin.refused': 'PS6002W',
  'sync.acknowledged': 'PS6003I',
  'sync.cosigned': 'PS6004I',
};

test('event codes have the form PS<4 digits><I|W|E>', () => {
  for (const [name, code] of Object.entries(EVENT_CODES)) assert.match(code, /^PS\d{4}[IWE]$/, name);
});

test('event names and codes are unique', () => {
  const codes = Object.values(EVENT_CODES);
  assert.equal(new Set(codes).size, codes.length, 'a code is used twice');
  const numbers = codes.map((c) => c.slice(2, 6));
  assert.equal(new Set(numbers).size, numbers.length, 'a number is used twice with different suffixes');
  for (const name of Object.keys(EVENT_CODES)) assert.match(name, /^[a-z]+(\.[a-z_]+)+$/, name);
});

test('no existing event was renumbered or removed', () => {
  for (const [name, code] of Object.entries(SNAPSHOT)) {
    assert.equal((EVENT_CODES as Record<string, string>)[name], code, `${name} must keep ${code}`);
  }
});

test('every event is in its block: the first digit is the block, new codes come after the snapshot', () => {
  const snapshotMax = new Map<string, number>();
  for (const code of Object.values(SNAPSHOT)) {
    const block = code[2]!;
    snapshotMax.set(block, Math.max(snapshotMax.get(block) ?? 0, Number(code.slice(2, 6))));
  }
  for (const [name, code] of Object.entries(EVENT_CODES)) {
    if (name in SNAPSHOT) continue;
    const max = snapshotMax.get(code[2]!);
    if (max !== undefined) assert.ok(Number(code.slice(2, 6)) > max, `${name} (${code}) must be added after ${max}`);
  }
});
