import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkConfig, loadConfig, formatIssue } from '../../src/config/load.ts';
import { MAX_CONFIG_BYTES } from '../../src/config/limits.ts';
import { isPenstockError } from '../../src/common/errors.ts';
import type { ConfigIssue } from '../../src/config/types.ts';
import { ISSUE_CODES } from '../../src/config/yaml-issues.ts';
import { testProtocols } from './protocols.ts';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const GOOD = fixture('good.yaml');
const goodText = readFileSync(GOOD, 'utf8');
/** Inside g-curtail's window and before bob's expiry. */
const clock = { now: () => Date.parse('2026-11-25T10:00:00Z') };

/** good.yaml with one exact piece of text replaced (the piece must be there exactly once). */
function mutate(...pairs: [string, string][]): string {
  let text = goodText;
  for (const [from, to] of pairs) {
    assert.equal(text.split(from).length, 2, `fixture must contain ${JSON.stringify(from)} exactly once`);
    text = text.replace(from, to);
  }
  return text;
}

function check(text: string) {
  return checkConfig(GOOD, testProtocols, { text, clock });
}

/** 1-based line of the first occurrence of `needle`. */
function lineOf(text: string, needle: string): number {
  const at = text.indexOf(needle);
  assert.ok(at >= 0, `text contains ${JSON.stringify(needle)}`);
  return text.slice(0, at).split('\n').length;
}

function issue(issues: ConfigIssue[], field: string, severity: ConfigIssue['severity'] = 'error'): ConfigIssue {
  const found = issues.filter((i) => i.field === field && i.severity === severity);
  assert.equal(found.length, 1, `exactly one ${severity} at ${field}; got:\n${issues.map(formatIssue).join('\n')}`);
  return found[0]!;
}

function errors(issues: ConfigIssue[]): ConfigIssue[] {
  return issues.filter((i) => i.severity === 'error');
}

test('the good config loads with every default filled in one place', () => {
  const c = loadConfig(GOOD, testProtocols, { clock });
  assert.equal(c.file, GOOD);
  assert.deepEqual(c.warnings, []);
  // hardware profile arm-rs485-gateway supplies the map size the file does not set
  assert.equal(c.hardware?.name, 'arm-rs485-gateway');
  assert.equal(c.raw.journal.map_size_mib, 512);
  assert.equal(c.appliance.admin_socket, '/run/penstock/admin.sock');
  assert.equal(c.appliance.journal_path, '/var/lib/penstock/journal');
  assert.equal(c.appliance.signing_key, '/var/lib/penstock/keys/appliance-ed25519.pem');
  assert.equal(c.appliance.vault_file, '/var/lib/penstock/vault.json');
  assert.equal(c.appliance.vault_key_file, '/etc/penstock/vault.key');
  assert.equal(c.raw.admin.group, 'penstock-admin');
  // schema defaults and the protocol schemas' own defaults
  assert.equal(c.raw.sessions.idle_seconds, 900);
  assert.equal(c.targets.get('inverter-1')?.unit, 1);
  assert.equal(c.targets.get('der-1')?.unit, 3);
  assert.equal(c.targets.get('plc-ssh')?.port, 22);
  assert.equal(c.listeners.find((l) => l.id === 'mb-front')?.host, '127.0.0.1');
  assert.equal(c.listeners.find((l) => l.id === 'ua-front')?.host, '127.0.0.1');
  assert.deepEqual([...c.principals.keys()], ['alice', 'vendor-tech-bob', 'agent-curtail']);
  assert.deepEqual([...c.profiles.keys()].sort(), ['fronius-symo-intsf', 'sunspec-der-1547']);
  assert.equal(c.grants.length, 4);
  assert.deepEqual(c.grants[1]?.rules[1], { modbus: { effect: 'allow', access: 'read', addresses: [{ from: 40000, to: 40001 }, { from: 40069, to: 40069 }] } });
});

test('a loaded snapshot is immutable', () => {
  const c = loadConfig(GOOD, testProtocols, { clock });
  assert.throws(() => { (c.appliance as { id: string }).id = 'x'; }, TypeError);
  assert.throws(() => c.targets.set('evil', c.targets.get('der-1')!), TypeError);
  assert.throws(() => c.principals.delete('alice'), TypeError);
  assert.throws(() => { (c.grants as unknown[]).push({}); }, TypeError);
  assert.equal(c.targets.size, 4);
});

test('explicit directories and map size win over the hardware profile', () => {
  const c = loadConfig(GOOD, testProtocols, {
    clock,
    text: mutate(['  hardware: arm-rs485-gateway\n', '  hardware: arm-rs485-gateway\n  state_dir: /srv/penstock\n  runtime_dir: /run/pst\n'])
      + 'journal:\n  map_size_mib: 2048\nvault:\n  key_file: /mnt/keys/vault.key\n',
  });
  assert.equal(c.raw.journal.map_size_mib, 2048);
  assert.equal(c.appliance.journal_path, '/srv/penstock/journal');
  assert.equal(c.appliance.admin_socket, '/run/pst/admin.sock');
  assert.equal(c.appliance.vault_file, '/srv/penstock/vault.json');
  assert.equal(c.appliance.vault_key_file, '/mnt/keys/vault.key');
});

test('without a hardware profile the schema defaults apply', () => {
  const c = loadConfig(GOOD, testProtocols, { clock, text: mutate(['  hardware: arm-rs485-gateway\n', '']) });
  assert.equal(c.hardware, undefined);
  assert.equal(c.raw.journal.map_size_mib, 1024);
});

test('unknown key: located at the key, named by its path', () => {
  const text = mutate(['  zone: plant-dmz\n', '  zone: plant-dmz\n  colour: red\n']);
  const r = check(text);
  assert.equal(r.config, undefined);
  const i = issue(r.issues, 'appliance.colour');
  assert.equal(i.line, lineOf(text, 'colour: red'));
  assert.equal(i.column, 3);
  assert.equal(i.code, ISSUE_CODES.unknownField);
});

test('unknown key deep inside a rule', () => {
  const text = mutate(['points: [controls.WMaxLimPct], min: 0', 'points: [controls.WMaxLimPct], minimum: 0']);
  const i = issue(check(text).issues, 'grants[1].rules[0].modbus.minimum');
  assert.equal(i.line, lineOf(text, 'minimum: 0'));
});

test('wrong type: one issue at the value, even though two schemas check the field', () => {
  const text = mutate(['    port: 15020', '    port: "15020"']);
  const r = check(text);
  const i = issue(r.issues, 'listeners[0].port');
  assert.equal(i.line, lineOf(text, 'port: "15020"'));
  assert.equal(i.column, 11);
  assert.equal(i.code, ISSUE_CODES.wrongType);
});

test('missing required field points at the parent map', () => {
  const text = mutate(['    owner: Plant operations\n', '']);
  const i = issue(check(text).issues, 'principals[0].owner');
  assert.equal(i.line, lineOf(text, '- id: alice') );
  assert.equal(i.code, ISSUE_CODES.missingField);
});

test('dangling references: grant to a missing target and a missing principal, acting_for to nobody', () => {
  const text = mutate(
    ['targets: [plc-ssh]', 'targets: [plc-sshh]'],
    ['principal: alice\n', 'principal: carol\n'],
    ['acting_for: alice', 'acting_for: alicia'],
  );
  const r = check(text);
  assert.equal(issue(r.issues, 'grants[2].targets[0]').line, lineOf(text, 'targets: [plc-sshh]'));
  assert.equal(issue(r.issues, 'grants[3].principal').line, lineOf(text, 'principal: carol'));
  const d = issue(r.issues, 'principals[1].acting_for');
  assert.equal(d.line, lineOf(text, 'acting_for: alicia'));
  assert.match(d.message, /alicia/);
  assert.equal(errors(r.issues).length, 3);
});

test('delegation cycle is refused; external KIND:REF is accepted', () => {
  const text = mutate(['    purpose: Shift lead\n', '    purpose: Shift lead\n    acting_for: vendor-tech-bob\n']);
  const r = check(text);
  const cycles = errors(r.issues).filter((i) => /cycle/.test(i.message));
  assert.equal(cycles.length, 1);
  assert.equal(cycles[0]!.field, 'principals[0].acting_for');
  assert.equal(cycles[0]!.line, lineOf(text, 'acting_for: vendor-tech-bob'));
  // agent-curtail acts for work-order:WO-4411 in the good config and passes
  assert.equal(r.issues.some((i) => i.field === 'principals[2].acting_for'), false);
});

test('bad windows: end before start, unknown time zone, empty schedule window', () => {
  const text = mutate(
    ['to: 2026-11-25T18:00:00Z', 'to: 2026-11-25T07:00:00Z'],
    ['tz: Europe/Berlin', 'tz: Europe/Gotham'],
  ) + '';
  const r = check(text);
  const w = issue(r.issues, 'grants[1].window.to');
  assert.equal(w.line, lineOf(text, 'window: {'));
  assert.equal(w.code, ISSUE_CODES.windowReversed);
  assert.equal(issue(r.issues, 'grants[2].schedule[0].tz').line, lineOf(text, 'tz: Europe/Gotham'));

  const same = mutate(['to: "02:00"', 'to: "22:00"']);
  const s = issue(check(same).issues, 'grants[2].schedule[0].to');
  assert.equal(s.line, lineOf(same, 'days: [tue, thu]'));
  assert.equal(s.code, ISSUE_CODES.windowEmpty);
});

test('overlapping and inverted address ranges are located per list item', () => {
  const text = mutate(['      - modbus: { access: read, addresses: ["40000-40001", 40069] }', '      - modbus:\n          access: read\n          addresses:\n            - "100-110"\n            - "105-120"\n            - { from: 9, to: 3 }']);
  const r = check(text);
  const overlap = issue(r.issues, 'grants[1].rules[1].modbus.addresses[1]');
  assert.equal(overlap.line, lineOf(text, '"105-120"'));
  assert.equal(overlap.code, ISSUE_CODES.rangeOverlap);
  const inverted = issue(r.issues, 'grants[1].rules[1].modbus.addresses[2]');
  assert.equal(inverted.line, lineOf(text, '{ from: 9, to: 3 }'));
  assert.equal(inverted.code, ISSUE_CODES.rangeInverted);
});

test('a malformed range names the accepted forms', () => {
  const text = mutate(['"40000-40001", 40069', '"40000..40001", 40069']);
  const i = issue(check(text).issues, 'grants[1].rules[1].modbus.addresses[0]');
  assert.match(i.message, /FROM-TO/);
});

test('rule protocol must match every target of the grant', () => {
  const text = mutate(['      - ssh: { exec: [systemctl, status, "*"] }', '      - modbus: { preset: readonly }']);
  const i = issue(check(text).issues, 'grants[2].rules[0].modbus');
  assert.equal(i.line, lineOf(text, 'modbus: { preset: readonly }'));
  assert.match(i.message, /plc-ssh/);
});

test('a rule with no known protocol key says which keys are allowed', () => {
  const text = mutate(['      - opcua: { verbs', '      - opcuaa: { verbs']);
  const i = issue(check(text).issues, 'grants[3].rules[0]');
  assert.match(i.message, /modbus, opcua, ssh/);
  assert.equal(i.line, lineOf(text, 'opcuaa'));
});

test('profile points must exist in the profile of every target the grant names', () => {
  const text = mutate(['points: [controls.WMaxLimPct]', 'points: [controls.WMaxLimPct, controls.Nope]'], ['points: ["common.*"]', 'points: ["inverter.*"]']);
  const r = check(text);
  const nope = errors(r.issues).filter((i) => i.field === 'grants[1].rules[0].modbus.points[1]');
  assert.equal(nope.length, 2, 'one per target');
  assert.equal(nope[0]!.line, lineOf(text, 'controls.Nope'));
  // inverter.* exists for the Fronius inverter, not for the 1547 DER
  const inv = issue(r.issues, 'grants[0].rules[0].modbus.points[0]');
  assert.match(inv.message, /sunspec-der-1547/);
  assert.match(inv.message, /der-1/);
});

test('unknown protocol names the known ones', () => {
  const text = mutate(['    protocol: opcua\n    port: 0', '    protocol: dnp3\n    port: 0']);
  const i = issue(check(text).issues, 'listeners[2].protocol');
  assert.equal(i.line, lineOf(text, 'protocol: dnp3'));
  assert.match(i.message, /dnp3/);
  assert.match(i.message, /modbus, opcua, ssh/);
});

test('protocol-specific fields are checked by that protocol\'s schema', () => {
  const text = mutate(['    endpoint: opc.tcp://10.20.1.6:4840', '    endpoint: http://10.20.1.6:4840\n    baud: 9600']);
  const r = check(text);
  assert.equal(issue(r.issues, 'targets[3].endpoint').line, lineOf(text, 'endpoint: http'));
  assert.equal(issue(r.issues, 'targets[3].baud').line, lineOf(text, 'baud: 9600'));
});

test('duplicate ids are refused at the second definition', () => {
  const text = mutate(['  - id: der-1\n', '  - id: inverter-1\n'], ['  - id: g-ua-browse', '  - id: g-curtail']);
  const r = check(text);
  const t = issue(r.issues, 'targets[1].id');
  assert.equal(t.line, lineOf(text, '  - id: inverter-1\n    protocol: modbus\n    zone: pv-field\n    profile: sunspec'));
  assert.match(t.message, new RegExp(`line ${lineOf(text, '- id: inverter-1')}`));
  assert.equal(issue(r.issues, 'grants[3].id').line, lineOf(text, '  - id: g-curtail\n    principal: alice'));
});

test('firmware profile: unknown name, or one for another protocol', () => {
  const text = mutate(['profile: sunspec-der-1547', 'profile: no-such-device']);
  assert.match(issue(check(text).issues, 'targets[1].profile').message, /no firmware profile no-such-device/);
  const ua = mutate(['    endpoint: opc.tcp://10.20.1.6:4840', '    endpoint: opc.tcp://10.20.1.6:4840\n    profile: sunspec-der-1547']);
  assert.match(issue(check(ua).issues, 'targets[3].profile').message, /is for modbus/);
});

test('a target whose profile file is invalid: the profile file\'s own errors, and the target\'s', () => {
  const text = mutate(['profile: sunspec-der-1547', 'profile: overlap']);
  const r = checkConfig(GOOD, testProtocols, { text, clock, profilesDir: fixture('bad-profiles') });
  assert.match(issue(r.issues, 'targets[1].profile').message, /could not be loaded/);
  const inProfile = r.issues.filter((i) => i.file.endsWith('overlap.yaml'));
  assert.deepEqual(inProfile.map((i) => [i.field, i.line]), [['points[1].address', 8], ['points[3].min', 10]]);
});

test('appliance.hardware must name a hardware profile', () => {
  const text = mutate(['hardware: arm-rs485-gateway', 'hardware: cray-1']);
  const i = issue(check(text).issues, 'appliance.hardware');
  assert.equal(i.line, lineOf(text, 'hardware: cray-1'));
});

test('YAML syntax error: file, line and column, and nothing else is validated', () => {
  const file = fixture('syntax-error.yaml');
  const r = checkConfig(file, testProtocols);
  assert.equal(r.issues.length, 1);
  assert.equal(r.issues[0]!.file, file);
  assert.equal(r.issues[0]!.line, 3);
  assert.match(formatIssue(r.issues[0]!), new RegExp(`^${file}:3:\\d+: YAML syntax`));
});

test('duplicate YAML keys are a syntax error, not a silent override', () => {
  const text = mutate(['  site: Riverside PV\n', '  site: Riverside PV\n  site: Elsewhere\n']);
  const r = check(text);
  assert.equal(r.issues.length, 1);
  assert.equal(r.issues[0]!.line, lineOf(text, 'site: Elsewhere'));
});

test('interpreter with free arguments is a warning, and the config still loads', () => {
  const text = mutate(['      - ssh: { exec: [systemctl, status, "*"] }', '      - ssh: { exec: [systemctl, status, "*"] }\n      - ssh: { exec: [/usr/bin/python3, "..."] }\n      - ssh: { exec: [sh, -c, "*"] }\n      - ssh: { effect: deny, exec: [bash, "..."] }']);
  const r = check(text);
  assert.ok(r.config, r.issues.map(formatIssue).join('\n'));
  const py = issue(r.issues, 'grants[2].rules[1].ssh.exec', 'warning');
  assert.equal(py.line, lineOf(text, '/usr/bin/python3'));
  assert.match(py.message, /^allows everything/);
  assert.match(formatIssue(py), /: warning: grants\[2\]\.rules\[1\]\.ssh\.exec: allows everything/);
  issue(r.issues, 'grants[2].rules[2].ssh.exec', 'warning');
  // a deny rule and a literal command get no warning
  assert.equal(r.issues.filter((i) => i.severity === 'warning').length, 2);
  assert.equal(r.config.warnings.length, 2);
});

test('a principal that has expired is a warning', () => {
  const r = checkConfig(GOOD, testProtocols, { clock: { now: () => Date.parse('2027-07-01T00:00:00Z') } });
  assert.ok(r.config);
  const w = issue(r.issues, 'principals[1].expires', 'warning');
  assert.equal(w.line, lineOf(goodText, 'expires: 2027-06-30'));
});

test('loadConfig lists every error, not just the first, under PS_CONFIG_INVALID', () => {
  const text = mutate(
    ['  zone: plant-dmz\n', '  zone: plant-dmz\n  colour: red\n'],
    ['    port: 15020', '    port: "15020"'],
    ['targets: [plc-ssh]', 'targets: [plc-sshh]'],
    ['tz: Europe/Berlin', 'tz: Mars/Olympus'],
  );
  assert.throws(() => loadConfig(GOOD, testProtocols, { text, clock }), (err: unknown) => {
    assert.ok(isPenstockError(err, 'PS_CONFIG_INVALID'));
    const issues = (err.details as { issues: ConfigIssue[] }).issues;
    assert.deepEqual(errors(issues).map((i) => i.field).sort(), ['appliance.colour', 'grants[2].schedule[0].tz', 'grants[2].targets[0]', 'listeners[0].port']);
    assert.ok(issues.every((i) => i.file === GOOD && i.line > 0 && i.column > 0));
    const lines = issues.map((i) => i.line);
    assert.deepEqual(lines, [...lines].sort((a, b) => a - b), 'in file order');
    assert.match(err.message, /4 errors/);
    return true;
  });
});

test('extra grants issued at run time are checked against the file\'s principals, targets and profiles', () => {
  const ok = { id: 'g-new', principal: 'alice', targets: ['der-1'], task: { ticket: 'CHG-9' }, rules: [{ modbus: { access: 'read', points: ['ac.*'] } }] };
  const good = checkConfig(GOOD, testProtocols, { clock, extraGrants: [ok] });
  assert.equal(good.config?.grants.at(-1)?.id, 'g-new');
  const bad = { ...ok, id: 'g-curtail', targets: ['der-2'], rules: [{ modbus: { access: 'read', points: ['inverter.*'] } }] };
  const r = checkConfig(GOOD, testProtocols, { clock, extraGrants: [ok, bad] });
  assert.deepEqual(errors(r.issues).map((i) => i.field).sort(), ['grants[5].id', 'grants[5].targets[0]']);
  assert.equal(r.issues[0]!.line, lineOf(goodText, 'grants:'));
});

test('an unreadable file is PS_CONFIG_READ from loadConfig and an issue from checkConfig', () => {
  const missing = fixture('does-not-exist.yaml');
  assert.throws(() => loadConfig(missing, testProtocols), (err: unknown) => isPenstockError(err, 'PS_CONFIG_READ'));
  const r = checkConfig(missing, testProtocols);
  assert.equal(r.config, undefined);
  assert.equal(r.issues.length, 1);
  assert.match(formatIssue(r.issues[0]!), /does-not-exist\.yaml: cannot read file: ENOENT/);
});

test('checkConfig never throws on hostile input', () => {
  for (const text of ['', '42', '- a\n- b', 'appliance: null', 'a: &x [*x]', 'grants: [{rules: [1, null, {modbus: 7}]}]', 'targets: [{profile: "../../etc/passwd", protocol: modbus}]']) {
    const r = checkConfig(GOOD, testProtocols, { text });
    assert.equal(r.config, undefined, text);
    assert.ok(errors(r.issues).length > 0, text);
  }
});

// ---------------------------------------------------------------- size cap (issue 10)

test('a config over MAX_CONFIG_BYTES is refused at once with PS_CONFIG_TOO_LARGE: load, check, and text', () => {
  const dir = mkdtempSync(join(tmpdir(), 'penstock-cap-'));
  try {
    const huge = join(dir, 'huge.yaml');
    // Valid YAML all the way (a long comment), so only the size can be the reason.
    writeFileSync(huge, `${goodText}\n# ${'x'.repeat(MAX_CONFIG_BYTES)}\n`);
    assert.throws(() => loadConfig(huge, testProtocols, { clock }), (err: unknown) => isPenstockError(err, 'PS_CONFIG_TOO_LARGE'));
    const r = checkConfig(huge, testProtocols, { clock });
    assert.equal(r.config, undefined);
    assert.equal(r.tooLarge, true);
    assert.deepEqual(r.issues.map((i) => i.code), ['PS_CONFIG_TOO_LARGE']);
    const t = checkConfig(GOOD, testProtocols, { clock, text: `${goodText}\n# ${'x'.repeat(MAX_CONFIG_BYTES)}\n` });
    assert.deepEqual(t.issues.map((i) => i.code), ['PS_CONFIG_TOO_LARGE']);
    // Refused before it is parsed: broken YAML over the bound gets the size issue and nothing about its syntax.
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, `appliance: [unclosed\n  : : {\n# ${'x'.repeat(MAX_CONFIG_BYTES)}\n`);
    assert.deepEqual(checkConfig(broken, testProtocols, { clock }).issues.map((i) => i.code), ['PS_CONFIG_TOO_LARGE']);
    const brokenSmall = checkConfig(GOOD, testProtocols, { clock, text: 'appliance: [unclosed\n  : : {\n' });
    assert.ok(brokenSmall.issues.length > 0 && !brokenSmall.issues.some((i) => i.code === 'PS_CONFIG_TOO_LARGE'), 'the same YAML under the bound is judged on its syntax');
    // Exactly at the bound is still read (and judged on its content).
    const atBound = join(dir, 'at-bound.yaml');
    const pad = MAX_CONFIG_BYTES - Buffer.byteLength(goodText) - 3;
    writeFileSync(atBound, `${goodText}# ${'x'.repeat(pad)}\n`);
    assert.equal(statSync(atBound).size, MAX_CONFIG_BYTES);
    assert.ok(loadConfig(atBound, testProtocols, { clock }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('devices and FIFOs are refused without being read: PS_CONFIG_READ', () => {
  assert.throws(() => loadConfig('/dev/zero', testProtocols), (err: unknown) => isPenstockError(err, 'PS_CONFIG_READ'));
  const dir = mkdtempSync(join(tmpdir(), 'penstock-fifo-'));
  try {
    const fifo = join(dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    // A FIFO with no writer would block a plain read forever.
    const r = checkConfig(fifo, testProtocols);
    assert.deepEqual(r.issues.map((i) => i.code), ['PS_CONFIG_READ']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file that is not a config is described by type, never quoted', () => {
  const secret = 'c2004ffb41a6d0e19b7a2c55e0f3a9d84b6c1e27f05a3d9c8b2e4f6a1d3c5e7f';
  for (const text of [`${secret}\n`, `appliance: ${secret}\n`, `appliance:\n  id: gw\n  site: s\n  zone: z\n  state_dir: 4711\nadmin: { group: true }\n`]) {
    const r = checkConfig(GOOD, testProtocols, { text });
    const all = r.issues.map(formatIssue).join('\n');
    assert.ok(!all.includes(secret.slice(0, 8)), all);
    assert.ok(!/4711|\btrue\b/.test(all), all);
  }
  assert.ok(checkConfig(GOOD, testProtocols, { text: `${secret}\n` }).issues.some((i) => /expected a map, got a string/.test(i.message)));
  // Files that parse as a map without one config key (a shadow file), or whose YAML errors would quote
  // the text (aliases, tags, directives, escapes): nothing of the text comes back.
  const hash = '$y$j9T$Fq3e1Zx0$s3cr3tH4shValue';
  for (const text of [`root:${hash}:20228:0:99999:7:::\nana:${hash}:20228:0:99999:7:::\n`, `k: *${secret}\n`, `k: !${secret} v\n`, `%${secret} x\n---\na: 1\n`, `"\\q${secret}"\n`]) {
    const r = checkConfig(GOOD, testProtocols, { text });
    assert.equal(r.config, undefined, text);
    const all = r.issues.map(formatIssue).join('\n');
    assert.ok(!all.includes(secret.slice(0, 8)) && !all.includes('s3cr3t') && !all.includes('ana'), all);
  }
  // A real config keeps the YAML library's detail.
  assert.match(check(mutate(['  site: Riverside PV\n', '  site: !weird Riverside PV\n'])).issues.map(formatIssue).join('\n'), /Unresolved tag: !weird/);
});

// ---------------------------------------------------------------- rules that allow everything (issue 10)

function warningCodes(text: string): { field: string; code: string | undefined }[] {
  const r = check(text);
  assert.ok(r.config, r.issues.map(formatIssue).join('\n'));
  return r.issues.filter((i) => i.severity === 'warning').map((i) => ({ field: i.field, code: i.code }));
}

const SSH_RULE = '      - ssh: { exec: [systemctl, status, "*"] }';

test('bash * keeps its warning, now with a code', () => {
  assert.deepEqual(warningCodes(mutate([SSH_RULE, '      - ssh: { exec: [bash, "*"] }'])), [{ field: 'grants[2].rules[0].ssh.exec', code: 'W_SSH_EXEC_INTERPRETER' }]);
});

test('exec whose program is a wildcard allows any command: W_SSH_EXEC_ANY_PROGRAM', () => {
  for (const exec of ['["*", "..."]', '["..."]', '["*"]']) {
    assert.deepEqual(warningCodes(mutate([SSH_RULE, `      - ssh: { exec: ${exec} }`])), [{ field: 'grants[2].rules[0].ssh.exec', code: 'W_SSH_EXEC_ANY_PROGRAM' }], exec);
  }
  assert.deepEqual(warningCodes(mutate([SSH_RULE, '      - ssh: { effect: deny, exec: ["..."] }'])), [], 'a deny rule takes nothing away');
  assert.deepEqual(warningCodes(goodText), [], 'systemctl status * names its program');
});

test('SFTP upload to /* or /** allows uploads anywhere: W_SFTP_UPLOAD_ANYWHERE', () => {
  for (const [paths, direction] of [['["/*"]', 'upload'], ['["/**"]', 'both'], ['["/srv/ok/*", "/**/authorized_keys"]', 'upload']] as const) {
    const codes = warningCodes(mutate([SSH_RULE, `      - ssh: { sftp: { paths: ${paths}, direction: ${direction} } }`]));
    assert.deepEqual(codes.map((c) => c.code), ['W_SFTP_UPLOAD_ANYWHERE'], paths);
    assert.match(codes[0]!.field, /^grants\[2\]\.rules\[0\]\.ssh\.sftp\.paths\[\d\]$/);
  }
  assert.deepEqual(warningCodes(mutate([SSH_RULE, '      - ssh: { sftp: { paths: ["/*"], direction: download } }'])), [], 'downloads are not this warning');
  assert.deepEqual(warningCodes(mutate([SSH_RULE, '      - ssh: { sftp: { paths: ["/srv/upload/*"], direction: upload } }'])), []);
});

test('Modbus writes over 0-65535, or with no addresses, are a warning: W_MODBUS_WRITE_ALL_ADDRESSES', () => {
  const CURTAIL = '      - modbus: { access: read, addresses: ["40000-40001", 40069] }';
  for (const rule of [
    '{ access: readwrite, addresses: ["0-65535"] }',
    '{ access: write, addresses: ["0-39999", "40000-65535"] }',
    '{ access: readwrite }',
    '{ preset: readwrite }',
    '{ function_codes: [3, 16] }',
  ]) {
    assert.deepEqual(warningCodes(mutate([CURTAIL, `      - modbus: ${rule}`])).map((w) => w.code), ['W_MODBUS_WRITE_ALL_ADDRESSES'], rule);
  }
  for (const rule of ['{ access: readwrite, addresses: ["0-65534"] }', '{ access: read }', '{ preset: readonly }', '{ effect: deny, access: write }']) {
    assert.deepEqual(warningCodes(mutate([CURTAIL, `      - modbus: ${rule}`])), [], rule);
  }
});
