// What penstockctl builds from its command line before anything reaches the daemon.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { UsageError } from '../../src/cli/io.ts';
import { parseModbusDryRun as modbusAction } from '../../src/adapters/modbus/dry-run.ts';
import { shellQuote, sshAction } from '../../src/adapters/ssh/dry-run.ts';
import { parseQuickRule, quickGrant } from '../../src/cli/grant-input.ts';
import { relative } from '../../src/cli/render.ts';
import { grantSchema } from '../../src/config/schema.ts';
import { parseCommandLine } from '../../src/adapters/ssh/argv.ts';

describe('modbus function codes from verb, table and quantity', () => {
  const cases: [string, string, string | undefined, number][] = [
    ['read', 'coil', undefined, 1],
    ['read', 'di', undefined, 2],
    ['read', 'holding_register', '10', 3],
    ['read', 'input_register', undefined, 4],
    ['write', 'coil', undefined, 5],
    ['write', 'coils', '8', 15],
    ['write', 'hr', undefined, 6],
    ['write', 'holding_register', '2', 16],
  ];
  for (const [verb, table, quantity, fc] of cases) {
    it(`${verb} ${table}${quantity ? ` x${quantity}` : ''} → fc ${fc}`, () => {
      const a = modbusAction([verb, table, '100'], quantity ? { quantity } : {});
      assert.equal(a.object.functionCode, fc);
      assert.equal(a.verb, verb);
    });
  }

  it('refuses writes to read-only tables, values that do not fit, and stray words', () => {
    assert.throws(() => modbusAction(['write', 'discrete_input', '1'], {}), UsageError);
    assert.throws(() => modbusAction(['write', 'coil', '1'], { values: '0,2' }), UsageError);
    assert.throws(() => modbusAction(['write', 'hr', '1'], { values: '1,2', quantity: '3' }), UsageError);
    assert.throws(() => modbusAction(['read', 'hr', '70000'], {}), UsageError);
    assert.throws(() => modbusAction(['read', 'hr', '1', 'extra'], {}), UsageError);
    assert.throws(() => modbusAction(['read', 'hr', '-1'], {}), UsageError);
  });

  it('--fc overrides the derived code', () => {
    assert.equal(modbusAction(['write', 'hr', '1'], { fc: '22' }).object.functionCode, 22);
  });
});

describe('ssh exec command lines', () => {
  it('several words are quoted so the shell would rebuild exactly that argv', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ minLength: 0, maxLength: 12 }).filter((w) => !w.includes('\0')), { minLength: 2, maxLength: 6 }), (words) => {
        const a = sshAction(['exec', ...words], parseCommandLine);
        assert.deepEqual(a.object.argv, words);
        assert.equal(a.object.metacharacters, false, 'quoted words never count as metacharacters');
      }),
    );
  });

  it('one word is the command line as a client would send it', () => {
    const a = sshAction(['exec', 'systemctl status plc; reboot'], parseCommandLine);
    assert.equal(a.object.commandLine, 'systemctl status plc; reboot');
    assert.equal(a.object.metacharacters, true);
    assert.equal(shellQuote("it's"), `'it'\\''s'`);
  });
});

describe('quick grant flags', () => {
  it('builds a grant the config schema accepts', () => {
    const g = quickGrant({ id: 'g1', principal: 'p1', target: ['t1'], ticket: 'WO-1', until: '2026-11-25T12:00:00Z', rule: ['modbus:preset=readonly,units=1 2', 'opcua:verbs=read browse,browse_paths=Objects/Boiler', 'ssh:shell=true'] }, Date.parse('2026-11-25T09:00:00Z'));
    const parsed = grantSchema.parse(g);
    assert.equal(parsed.window!.from, '2026-11-25T09:00:00.000Z');
    assert.deepEqual(parsed.rules[0], { modbus: { effect: 'allow', preset: 'readonly', units: [1, 2] } });
    assert.deepEqual(parsed.rules[1], { opcua: { effect: 'allow', verbs: ['read', 'browse'], browse_paths: ['Objects/Boiler'] } });
    assert.deepEqual(parsed.rules[2], { ssh: { effect: 'allow', shell: true } });
  });

  it('refuses a rule without protocol or KEY=VALUE', () => {
    assert.throws(() => parseQuickRule('preset=readonly'), UsageError);
    assert.throws(() => parseQuickRule('modbus:readonly'), UsageError);
  });
});

describe('relative times', () => {
  it('reads naturally both ways', () => {
    const now = Date.parse('2026-11-25T09:00:00Z');
    assert.equal(relative(now - 2_000, now), 'just now');
    assert.equal(relative(now - 3 * 60_000, now), '3m ago');
    assert.equal(relative(now + (2 * 3600 + 5 * 60) * 1000, now), 'in 2h 5m');
    assert.equal(relative(now - (26 * 3600) * 1000, now), '1d 2h ago');
  });
});
