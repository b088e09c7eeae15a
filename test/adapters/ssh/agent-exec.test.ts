// `ssh_exec`, the SSH agent tool, in-process against real peers: a real OpenSSH sshd target logged in
// to with the vault's key, the real core and LMDB journal, each call made as the MCP door makes it
// (testAgentCall). Assertions on the far side: files on the target, its process table, the journal.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import { z } from 'zod';
import { Vault } from '../../../src/vault/vault.ts';
import type { Session } from '../../../src/sessions/registry.ts';
import type { AgentCall, AgentToolResult, FrontDoor } from '../../../src/adapters/types.ts';
import { protocolModule } from '../../../src/adapters/registry.ts';
import { sshModule } from '../../../src/adapters/ssh/module.ts';
import { commandLineOf, parseCommandLine } from '../../../src/adapters/ssh/argv.ts';
import { sshAction } from '../../../src/adapters/ssh/dry-run.ts';
import type { SshRuleConfig } from '../../../src/adapters/ssh/rules.ts';
import { startTestCore, testAgentCall, type TestCore } from '../../core-harness.ts';
import { ensureTestUser, keygen, run, Sshd, sshSkipReason, targetFolder, tempDir, until } from './harness.ts';

const skip = sshSkipReason();
/** Unique digits for the sleeps this file starts, so pgrep finds only ours. */
const RUN = String(randomInt(100_000, 999_999));
const SLEEP_PATTERN = `^sleep 10[0-9][0-9]\\.${RUN}$`;

let tmp: { dir: string; cleanup: () => void };
let sshd: Sshd;
let t: TestCore;
let door: FrontDoor;
let target: string;

before(async () => {
  if (skip) return;
  ensureTestUser();
  tmp = tempDir('penstock-ssh-agent-');
  const login = keygen(join(tmp.dir, 'penstock_to_rtu'));
  const bogus = keygen(join(tmp.dir, 'bogus_host'));
  sshd = await Sshd.start(tmp.dir, [login.pub]);
  target = targetFolder(tmp.dir);
  Vault.createKeyFile(join(tmp.dir, 'vault.key'));
  Vault.open(join(tmp.dir, 'vault.json'), join(tmp.dir, 'vault.key')).set('rtu-7', readFileSync(login.key, 'utf8'));
  t = await startTestCore(tmp.dir, `
appliance: { id: gw-ssh-agent, site: test, zone: plant, state_dir: ${tmp.dir}/state }
vault: { file: ${tmp.dir}/vault.json, key_file: ${tmp.dir}/vault.key }
approvals: { timeout_seconds: 60 }
principals:
  - { id: vendor-a, kind: vendor, owner: ACME Automation, purpose: RTU maintenance }
  - { id: agent-7, kind: agent, owner: ACME Automation, purpose: log collection, acting_for: vendor-a }
targets:
  - { id: rtu-7, protocol: ssh, zone: plant, host: 127.0.0.1, port: ${sshd.port}, username: penstocktest, credential: vault:rtu-7, host_keys: ["[127.0.0.1]:${sshd.port} ${sshd.hostKeyLine}"] }
  - { id: rtu-bogus, protocol: ssh, zone: plant, host: 127.0.0.1, port: ${sshd.port}, username: penstocktest, credential: vault:rtu-7, host_keys: ["${bogus.pub}"] }
  - { id: plc-1, protocol: modbus, zone: plant, host: 127.0.0.1, port: 1502 }
grants:
  - id: g-agent
    principal: agent-7
    targets: [rtu-7, rtu-bogus]
    task: { ticket: WO-4412 }
    rules:
      - ssh: { exec: [printf, "<%s>", "..."] }
      - ssh: { exec: [mkdir, "*"] }
      - ssh: { exec: [cat] }
      - ssh: { exec: [cat, "*"] }
      - ssh: { exec: [seq, "*"] }
      - ssh: { exec: [sh, -c, "*"] }
      - ssh: { exec: [touch, ${target}/allowed-marker] }
      - ssh: { command_line: "id -un" }
      - ssh: { effect: approve, exec: [touch, -a, "*"] }
      - ssh: { effect: deny, exec: [rm, "..."] }
`);
  door = await protocolModule('ssh')!.load();
});

after(async () => {
  if (skip) return;
  // Whatever a failed test left running on the target, by pid.
  const left = await run('pgrep', ['-u', 'penstocktest', '-f', SLEEP_PATTERN]);
  for (const pid of left.stdout.split('\n').filter(Boolean)) process.kill(Number(pid), 'SIGKILL');
  await t?.stop();
  await sshd?.stop();
  tmp?.cleanup();
});

function agentSession(): Session {
  return t.core.sessions.open({ principal: t.core.config().principals.get('agent-7')!, chain: ['agent-7', 'vendor-a'], listener: 'mcp-test', protocol: 'mcp', remote: '127.0.0.1:1', attributes: {} }, () => {});
}

function exec(args: Record<string, unknown>, call: AgentCall = testAgentCall(t.core, agentSession())): Promise<AgentToolResult> {
  return door.callAgentTool!('ssh_exec', { target: 'rtu-7', ...args }, call);
}

/** The result of a call that ran, checked against the tool's output schema (the agent's door declares it). */
function ran(r: AgentToolResult): Record<string, unknown> {
  assert.ok(r.ok, `expected a result, got ${JSON.stringify(r)}`);
  return sshModule.agentTools![0]!.output!.parse(r.result) as Record<string, unknown>;
}

function errorCode(r: AgentToolResult): string | undefined {
  return !r.ok && 'error' in r ? r.error.code : undefined;
}

const byCorrelation = (correlation: string) => t.events().filter((e) => (e.detail as { correlation?: unknown } | undefined)?.correlation === correlation);

async function sleepsOnTarget(): Promise<string[]> {
  return (await run('pgrep', ['-u', 'penstocktest', '-f', SLEEP_PATTERN])).stdout.split('\n').filter(Boolean);
}

describe('ssh_exec', { skip }, () => {
  it('runs an allowed argv on the target and returns its output; decision and outcome carry the call\'s correlation id', async () => {
    const call = testAgentCall(t.core, agentSession(), { correlation: 'corr-allowed-1' });
    const r = ran(await exec({ argv: ['printf', '<%s>', 'hello', 'world'] }, call));
    assert.equal(r.stdout, '<hello><world>');
    assert.equal(r.exit_code, 0);
    assert.equal(r.truncated, false);
    assert.equal(r.timed_out, false);
    await t.core.recorded();
    const events = byCorrelation('corr-allowed-1');
    assert.deepEqual(events.map((e) => e.event), ['action.allowed', 'action.outcome']);
    const [allowed, outcome] = events as unknown as { action: { verb: string; ssh: { command: string; argv: string[]; metacharacters: boolean } }; outcome: Record<string, unknown> }[];
    assert.equal(allowed!.action.verb, 'exec');
    assert.deepEqual(allowed!.action.ssh.argv, ['printf', '<%s>', 'hello', 'world']);
    assert.equal(allowed!.action.ssh.command, "printf '<%s>' hello world");
    // `penstockctl policy check … ssh exec -- WORDS` asks about the very same action.
    assert.equal(sshAction(['exec', 'printf', '<%s>', 'hello', 'world']).object.commandLine, allowed!.action.ssh.command);
    assert.equal(allowed!.action.ssh.metacharacters, false);
    assert.equal(outcome!.outcome.ok, true);
    assert.equal(outcome!.outcome.exit_code, 0);
    assert.equal(outcome!.outcome.stdout_bytes, 14);
    // The recording the outcome names is on disk, as a front-door exec's is.
    const recording = outcome!.outcome.recording as { sha256: string; path: string };
    assert.match(readFileSync(recording.path, 'utf8'), /<hello><world>/);
  });

  it('hostile argv items arrive verbatim: quotes, $( ), ;, globs, newlines are data, and nothing else runs', async () => {
    const hostile = ['$(touch ' + target + '/pwned-1)', '`touch ' + target + '/pwned-2`', '; touch ' + target + '/pwned-3', "it's", '"dq"', '*', '~', '#c', 'a\nb', '', ' sp ace ', '\\', '$HOME', '|', '&&', '>' + target + '/pwned-4', '{a,b}', '!x', 'é€'];
    const r = ran(await exec({ argv: ['printf', '<%s>', ...hostile] }));
    assert.equal(r.stdout, hostile.map((w) => `<${w}>`).join(''));
    assert.equal(r.exit_code, 0);
    // A file named with hostile characters is created with exactly that name.
    const name = "$(id);'x\n*`";
    ran(await exec({ argv: ['mkdir', join(target, name)] }));
    assert.ok(readdirSync(target).includes(name), `target folder holds ${JSON.stringify(readdirSync(target))}`);
    for (const p of ['pwned-1', 'pwned-2', 'pwned-3', 'pwned-4']) assert.equal(existsSync(join(target, p)), false, p);
  });

  it('stdin reaches the program, and a non-zero exit with stderr is a result, not an error', async () => {
    const r = ran(await exec({ argv: ['cat'], stdin: 'line one\nline two\n' }));
    assert.equal(r.stdout, 'line one\nline two\n');
    const failed = ran(await exec({ argv: ['sh', '-c', 'echo oops >&2; exit 3'] }));
    assert.equal(failed.exit_code, 3);
    assert.equal(failed.stderr, 'oops\n');
  });

  it('a denied argv never runs: no marker on the target, action.denied with the correlation id, no outcome', async () => {
    const marker = join(target, 'denied-marker');
    const call = testAgentCall(t.core, agentSession(), { correlation: 'corr-denied-1' });
    const r = await exec({ argv: ['touch', marker] }, call);
    assert.ok(!r.ok && 'refused' in r);
    assert.equal(r.refused.effect, 'deny');
    assert.equal(r.refused.reason, 'object_not_granted');
    const denied = await exec({ argv: ['rm', '-rf', target] });
    assert.ok(!denied.ok && 'refused' in denied && denied.refused.reason === 'rule_denies');
    // An option where the rule has `...`: refused as the SSH door refuses it.
    const option = await exec({ argv: ['printf', '<%s>', '-v', 'x'] });
    assert.ok(!option.ok && 'refused' in option && option.refused.reason === 'object_not_granted');
    // What looks like shell in a word is a file name for cat: it fails, and runs nothing.
    const data = ran(await exec({ argv: ['cat', `$(touch ${marker})`] }));
    assert.notEqual(data.exit_code, 0);
    await t.core.recorded();
    assert.equal(existsSync(marker), false);
    assert.equal(existsSync(target), true);
    assert.deepEqual(byCorrelation('corr-denied-1').map((e) => e.event), ['action.denied']);
  });

  it('a rule written for the SSH door matches the agent\'s argv: exec patterns word by word, command_line when the line is the one the tool sends', async () => {
    const r = ran(await exec({ argv: ['id', '-un'] }));
    assert.equal(r.stdout, 'penstocktest\n');
    ran(await exec({ argv: ['touch', join(target, 'allowed-marker')] }));
    assert.equal(existsSync(join(target, 'allowed-marker')), true);
  });

  it('an approve rule answers at once with a pending approval, and nothing runs until a person approves; then the same call runs once', async () => {
    const marker = join(target, 'approve-marker');
    const session = agentSession();
    const call = testAgentCall(t.core, session, { correlation: 'corr-approve-1', binding: 'b'.repeat(64) });
    const r = await exec({ argv: ['touch', '-a', marker] }, call);
    assert.ok(!r.ok && 'refused' in r, JSON.stringify(r));
    assert.equal(r.refused.effect, 'approve');
    const id = r.refused.effect === 'approve' ? r.refused.approval?.id : undefined;
    assert.ok(id);
    // (core.recorded() would wait for the approval's answer: the journal is read as it stands.)
    assert.equal(existsSync(marker), false);
    assert.deepEqual(byCorrelation('corr-approve-1').map((e) => e.event), ['approval.requested']);
    t.core.approvals.approve(id, { uid: 0, user: 'shift-lead', verified: true });
    const again = await exec({ argv: ['touch', '-a', marker] }, testAgentCall(t.core, session, { correlation: 'corr-approve-2', binding: 'b'.repeat(64) }));
    assert.ok(again.ok, JSON.stringify(again));
    assert.equal(existsSync(marker), true);
    // Once: the approval is used up, the next identical call asks again.
    const third = await exec({ argv: ['touch', '-a', marker] }, testAgentCall(t.core, session, { correlation: 'corr-approve-3', binding: 'b'.repeat(64) }));
    assert.ok(!third.ok && 'refused' in third && third.refused.effect === 'approve' && third.refused.approval?.id !== id, JSON.stringify(third));
    t.core.approvals.deny(third.refused.approval!.id, { uid: 0, user: 'shift-lead', verified: true });
  });

  it('output is bounded: cut to max_output_bytes, truncated set, every byte counted', async () => {
    const full = execFileSync('seq', ['1', '100000']).length;
    const r = ran(await exec({ argv: ['seq', '100000'], max_output_bytes: 1000 }));
    assert.equal(r.stdout, execFileSync('seq', ['1', '100000']).subarray(0, 1000).toString());
    assert.equal(r.truncated, true);
    assert.equal(r.stdout_bytes, full);
    assert.equal(r.exit_code, 0);
  });

  it('the time-out kills the program on the target: gone from its process table, outcome says so', async () => {
    const call = testAgentCall(t.core, agentSession(), { correlation: 'corr-timeout-1' });
    const pending = exec({ argv: ['sh', '-c', `sleep 1001.${RUN} & sleep 1002.${RUN}; wait`], timeout_seconds: 2 }, call);
    await until(async () => (await sleepsOnTarget()).length === 2, 'both sleeps on the target');
    const r = ran(await pending);
    assert.equal(r.timed_out, true);
    assert.equal(r.signal, 'SIGKILL');
    assert.equal(r.exit_code, undefined);
    await until(async () => (await sleepsOnTarget()).length === 0, 'the killed sleeps to leave the target\'s process table', 5000);
    await t.core.recorded();
    const outcome = byCorrelation('corr-timeout-1').find((e) => e.event === 'action.outcome') as unknown as { outcome: Record<string, unknown> };
    assert.equal(outcome.outcome.timed_out, true);
  });

  it('an aborted call (session ended, call cancelled) kills the program on the target', async () => {
    const abort = new AbortController();
    const call = { ...testAgentCall(t.core, agentSession(), { correlation: 'corr-abort-1' }), signal: abort.signal };
    const pending = exec({ argv: ['sh', '-c', `sleep 1003.${RUN}`], timeout_seconds: 600 }, call);
    await until(async () => (await sleepsOnTarget()).length === 1, 'the sleep on the target');
    abort.abort();
    const r = await pending;
    assert.equal(errorCode(r), 'cancelled');
    await until(async () => (await sleepsOnTarget()).length === 0, 'the killed sleep to leave the target\'s process table', 5000);
    await t.core.recorded();
    const outcome = byCorrelation('corr-abort-1').find((e) => e.event === 'action.outcome') as unknown as { outcome: Record<string, unknown> };
    assert.equal(outcome.outcome.cancelled, true);
  });

  it('a program the gateway cannot record does not run', async () => {
    const recordings = join(tmp.dir, 'state', 'recordings');
    const marker = join(target, 'unrecorded-marker');
    mkdirSync(recordings, { recursive: true });
    renameSync(recordings, `${recordings}.away`);
    writeFileSync(recordings, 'not a folder');
    try {
      const call = testAgentCall(t.core, agentSession(), { correlation: 'corr-norec-1' });
      assert.equal(errorCode(await exec({ argv: ['mkdir', marker] }, call)), 'recording_failed');
    } finally {
      rmSync(recordings);
      renameSync(`${recordings}.away`, recordings);
    }
    assert.equal(existsSync(marker), false);
    await t.core.recorded();
    const outcome = byCorrelation('corr-norec-1').find((e) => e.event === 'action.outcome') as unknown as { outcome: Record<string, unknown> };
    assert.equal(outcome.outcome.started, false);
  });

  it('arguments that name nothing, or a target that is not what config pins, end with a stable error code', async () => {
    const call = () => testAgentCall(t.core, agentSession());
    assert.equal(errorCode(await door.callAgentTool!('ssh_nope', { target: 'rtu-7', argv: ['id'] }, call())), 'unknown_tool');
    assert.equal(errorCode(await exec({ target: 'rtu-9', argv: ['id'] })), 'unknown_target');
    assert.equal(errorCode(await exec({ target: 'plc-1', argv: ['id'] })), 'not_an_ssh_target');
    assert.equal(errorCode(await exec({ argv: [] })), 'invalid_arguments');
    assert.equal(errorCode(await exec({ argv: ['printf', 'a\0b'] })), 'invalid_arguments');
    assert.equal(errorCode(await exec({ argv: ['id'], shell: true })), 'invalid_arguments');
    assert.equal(errorCode(await exec({ argv: ['scp', '-t', '/tmp'] })), 'legacy_scp');
    assert.equal(errorCode(await exec({ argv: ['printf', '<%s>', ...Array.from({ length: 200 }, () => 'x'.repeat(100))] })), 'argv_too_long');
    // Allowed, but the target presents a host key config does not pin: nothing is sent, the outcome says why.
    const bogus = testAgentCall(t.core, agentSession(), { correlation: 'corr-bogus-1' });
    assert.equal(errorCode(await exec({ target: 'rtu-bogus', argv: ['printf', '<%s>', 'x'] }, bogus)), 'host_key_mismatch');
    await t.core.recorded();
    const outcome = byCorrelation('corr-bogus-1').find((e) => e.event === 'action.outcome') as unknown as { outcome: Record<string, unknown> };
    assert.equal(outcome.outcome.upstream, 'host_key_mismatch');
  });
});

describe('ssh_exec spec', () => {
  const tool = sshModule.agentTools!.find((s) => s.name === 'ssh_exec')!;
  const rule = (r: Omit<SshRuleConfig, 'effect'>): SshRuleConfig => ({ effect: 'allow', ...r }) as SshRuleConfig;

  it('is listed by a rule granting exec: exec patterns, and command lines the tool can send; not by shell, sftp or tunnel rules', () => {
    assert.equal(tool.listedBy(rule({ exec: ['systemctl', 'status', '*'] })), true);
    assert.equal(tool.listedBy(rule({ exec: ['less', '*'], pty: true })), true);
    assert.equal(tool.listedBy(rule({ command_line: 'journalctl -u bridge --no-pager' })), true);
    assert.equal(tool.listedBy(rule({ command_line: "printf '<%s>' x" })), true);
    assert.equal(tool.listedBy(rule({ command_line: 'journalctl -u bridge | tail -50' })), false);
    assert.equal(tool.listedBy(rule({ command_line: 'echo "x"' })), false);
    assert.equal(tool.listedBy(rule({ shell: true })), false);
    assert.equal(tool.listedBy(rule({ tunnel: 'raw' })), false);
    assert.equal(tool.listedBy(rule({ sftp: { paths: ['/opt/**'], direction: 'both' } })), false);
  });

  it('has a strict input with a target, defaults and bounds, convertible to JSON Schema', () => {
    const parsed = tool.input.parse({ target: 'rtu-7', argv: ['id'] });
    assert.deepEqual(parsed, { target: 'rtu-7', argv: ['id'], timeout_seconds: 30, max_output_bytes: 65536 });
    assert.equal(tool.input.safeParse({ target: 'rtu-7', argv: ['id'], command: 'id' }).success, false);
    assert.equal(tool.input.safeParse({ target: 'rtu-7', argv: ['id'], timeout_seconds: 601 }).success, false);
    const schema = z.toJSONSchema(tool.input, { io: 'input' }) as { properties: Record<string, unknown>; required: string[] };
    assert.deepEqual(schema.required.sort(), ['argv', 'target']);
    assert.equal(tool.readOnly, false);
  });
});

describe('commandLineOf', () => {
  const words = ['$(id)', '`id`', ';', "'", '"', '\\', 'a\nb', '*', '?', '[x]', '{a,b}', '~', '#', '', ' ', '\t', '&', '|', '<', '>', '(', ')', '!', '%', 'é'];

  it('quotes so that the policy parser and a real POSIX shell both get exactly the argv back', () => {
    for (const first of ['printf', 'if', 'time', '!', '{', 'A=1']) {
      const argv = [first, ...words];
      const line = commandLineOf(argv);
      assert.deepEqual(parseCommandLine(line), { argv, metacharacters: false }, line);
    }
    // The target's shell: dash (Debian's /bin/sh) prints each word it was given.
    const line = commandLineOf(['printf', '<%s>', ...words]);
    assert.equal(execFileSync('/bin/sh', ['-c', line]).toString(), words.map((w) => `<${w}>`).join(''));
  });

  it('quotes a first word the shell would read as syntax or an assignment, so it runs as a command', () => {
    assert.equal(commandLineOf(['if', 'x']), "'if' x");
    assert.equal(commandLineOf(['A=1', 'id']), "'A=1' id");
    assert.equal(commandLineOf(['systemctl', 'status', 'a=b']), 'systemctl status a=b');
    assert.equal(sshAction(['exec', 'A=1', 'id']).object.commandLine, "'A=1' id");
    const r = (() => {
      try {
        execFileSync('/bin/sh', ['-c', commandLineOf(['A=1', 'true'])], { stdio: 'pipe' });
        return 0;
      } catch (e) {
        return (e as { status: number }).status;
      }
    })();
    assert.equal(r, 127); // "A=1: not found": a command, not an assignment before `true`
  });
});
