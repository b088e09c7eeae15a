// RFC 5424 formatting and RFC 5425 octet counting: fields where the RFC puts them, lengths in octets (not
// characters), MSG plain ASCII JSON that parses back to the same strings, header fields kept printable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { asciiJson, formatSyslog, frame, syslogSeverity } from '../../src/siem/syslog.ts';

const base = { facility: 13, code: 'PS3002W', time: '2026-12-05T10:00:00.123Z', appliance: 'gw-1', seq: 7, event: 'action.denied', procid: 4242 };

test('an RFC 5424 message: PRI, VERSION, TIMESTAMP, HOSTNAME, APP-NAME, PROCID, MSGID, SD, MSG', () => {
  const m = formatSyslog({ ...base, body: { a: 1 } }).toString('utf8');
  assert.equal(m, '<108>1 2026-12-05T10:00:00.123Z gw-1 penstock 4242 PS3002W [penstock@32473 appliance="gw-1" seq="7" event="action.denied"] {"a":1}');
  assert.equal(syslogSeverity('PS5001E'), 3);
  assert.equal(syslogSeverity('PS1001I'), 6);
  assert.match(formatSyslog({ ...base, facility: 23, code: 'PS1001I', enterprise: 99999, body: {} }).toString(), /^<190>1 .* \[penstock@99999 /);
});

test('octet counting counts bytes: UTF-8 in structured data, escapes in SD values, non-ASCII and newlines in MSG', () => {
  const body = { note: 'line one\nline two\r\nü 🙂 "q" ] \\', n: 1 };
  const m = formatSyslog({ ...base, appliance: 'Wärme "Süd" ]1', body });
  const f = frame(m);
  const space = f.indexOf(0x20);
  const len = Number(f.subarray(0, space).toString('ascii'));
  assert.equal(len, f.length - space - 1);
  assert.equal(len, m.length);
  assert.notEqual(len, m.toString('utf8').length, 'the test needs multi-byte characters');
  const text = m.toString('utf8');
  assert.ok(text.includes('[penstock@32473 appliance="Wärme \\"Süd\\" \\]1" seq="7"'), text);
  assert.equal(text.split(' ')[2], 'W_rme_"S_d"_]1', 'HOSTNAME: printable ASCII only');
  const msg = text.slice(text.indexOf('] {') + 2);
  assert.match(msg, /^[\x20-\x7e]+$/, 'MSG is one line of printable ASCII');
  assert.deepEqual(JSON.parse(msg), body);
});

test('asciiJson escapes every non-ASCII code unit and parses back to the same value', () => {
  const v = { s: 'ü\u2028🙂\u007f', k: ['ä'] };
  const j = asciiJson(v);
  assert.match(j, /^[\x20-\x7e]+$/);
  assert.deepEqual(JSON.parse(j), v);
});
