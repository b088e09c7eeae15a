// Smoke test of `npm run demo` (scripts/demo.ts), run as a person runs it: a child process with its own
// folder and ports, driven with the tools its printed instructions name (mbpoll for Modbus, the demo's
// OPC UA client, OpenSSH ssh and sftp, the MCP Inspector's CLI), asserting on the simulated devices' side
// that a refused write never arrived, on the SSH target's files and on the journal, then stopped with
// Ctrl-C (SIGINT).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeJwt } from 'jose';
import { descendants, freePort, tempDir, until } from '../support.ts';
import { adminRequest } from '../../src/admin/client.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const mbpoll = ['/usr/bin/mbpoll', '/usr/local/bin/mbpoll'].find((p) => existsSync(p));
const sshd = ['/usr/sbin/sshd', '/usr/local/sbin/sshd'].find((p) => existsSync(p));
const noSsh = sshd ? false : 'sshd is not installed (apt-get install openssh-server)';
const inspectorCli = process.env.PENSTOCK_INSPECTOR_CLI || join(root, 'node_modules/.bin/mcp-inspector-cli');
// A devDependency: missing means a broken install, which fails the file at once.
if (!existsSync(inspectorCli)) throw new Error(`no MCP Inspector CLI at ${inspectorCli}: run npm ci (devDependency @modelcontextprotocol/inspector-cli), or set PENSTOCK_INSPECTOR_CLI=PATH`);

let tmp: { dir: string; cleanup: () => void };
let demo: ChildProcess;
let ports: number[];
let stdout = '';
let stderr = '';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: root, timeout: 20_000 }, (err, out, errOut) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout: out, stderr: errOut });
    });
  });
}

/** The demo's OPC UA client, as the printed instructions run it (with the test's demo folder). */
function opcuaClient(...args: string[]): Promise<Run> {
  return run(process.execPath, [join(root, 'scripts/demo/opcua-client.ts'), '--dir', tmp.dir, ...args]);
}


/** Still running: exists and is not a zombie (an exited process its parent has not reaped). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('npm run demo', { timeout: 180_000 }, () => {
  before(async () => {
    tmp = tempDir('penstock-demo-test-');
    ports = [];
    for (let i = 0; i < 8; i++) ports.push(await freePort());
    demo = spawn(process.execPath, [join(root, 'scripts/demo.ts')], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PENSTOCK_DEMO_DIR: tmp.dir, PENSTOCK_DEMO_PORTS: ports.join(','), PENSTOCK_LOG_LEVEL: 'warn' },
    });
    demo.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    demo.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    await until(() => {
      if (demo.exitCode !== null) throw new Error(`the demo exited with code ${demo.exitCode}:\n${stdout}\n${stderr}`);
      return stdout.includes('Penstock demo site is running');
    }, 'the demo banner', 120_000);
  });

  after(() => {
    // Only if a test failed before the demo was stopped: it must not outlive the run.
    if (demo && demo.exitCode === null && demo.signalCode === null) {
      for (const pid of descendants(demo.pid!)) process.kill(pid, 'SIGKILL');
      demo.kill('SIGKILL');
    }
    tmp?.cleanup();
  });

  it('prints instructions that use the ports and folder it was given', () => {
    assert.match(stdout, new RegExp(`mbpoll -m tcp -p ${ports[0]} -a 1 -r 40070`));
    assert.match(stdout, new RegExp(`OPC UA on opc\\.tcp://127\\.0\\.0\\.1:${ports[4]}, SignAndEncrypt`));
    assert.match(stdout, new RegExp(`opcua-client\\.ts --dir ${tmp.dir} read Boiler/Drum/Level`));
    assert.match(stdout, /password boiler-demo-5120/);
  });

  it('Modbus: mbpoll reads the inverter through the front door', { skip: mbpoll ? false : 'mbpoll is not installed (apt-get install mbpoll)' }, async () => {
    // -r 40001 -c 2 (1-based) is common.SID at address 40000, "SunS", as the simulated inverter serves it.
    const r = await run(mbpoll!, ['-m', 'tcp', '-p', String(ports[0]), '-a', '1', '-r', '40001', '-c', '2', '-1', '127.0.0.1']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^\[40001\]:\s+21365$/m);
    assert.match(r.stdout, /^\[40002\]:\s+28243$/m);
  });

  it('Modbus: the power limit is bounded in percent, scaled by the factor the gateway reads from the inverter', { skip: mbpoll ? false : 'mbpoll is not installed (apt-get install mbpoll)' }, async () => {
    // -r 40233 is WMaxLimPct at address 40232; the simulated inverter's WMaxLimPct_SF is -2 (0.01 %).
    const over = await run(mbpoll!, ['-m', 'tcp', '-p', String(ports[0]), '-a', '1', '-r', '40233', '-1', '127.0.0.1', '9500']);
    assert.notEqual(over.code, 0, '95 % is over the grant\'s 80 %');
    assert.match(over.stdout + over.stderr, /Illegal data value/i);
    const ok = await run(mbpoll!, ['-m', 'tcp', '-p', String(ports[0]), '-a', '1', '-r', '40233', '-1', '127.0.0.1', '5000']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    await until(() => stdout.includes('write reached the PLC: address 40232 <- 5000'), 'the 50 % write at the inverter');
    assert.doesNotMatch(stdout, /address 40232 <- 9500/, 'the refused write never reached the inverter');
  });

  it('OPC UA: the drum level is read; a write to the fuel valve is refused and never reaches the boiler', async () => {
    const level = await opcuaClient('read', 'Boiler/Drum/Level');
    assert.equal(level.code, 0, level.stdout + level.stderr);
    assert.match(level.stdout, /^Boiler\/Drum\/Level = \d+(\.\d+)? \(Good\)$/m);

    const fuel = await opcuaClient('write', 'Boiler/Burner/FuelValve', '100');
    assert.equal(fuel.code, 1, fuel.stdout + fuel.stderr);
    assert.match(fuel.stdout, /^Boiler\/Burner\/FuelValve <- 100: BadUserAccessDenied$/m);

    // A granted write after it reaches the boiler, which the demo prints: had the refused one been
    // forwarded, its line would have come first.
    const setpoint = await opcuaClient('write', 'Boiler/Setpoint', '60');
    assert.equal(setpoint.code, 0, setpoint.stdout + setpoint.stderr);
    assert.match(setpoint.stdout, /^Boiler\/Setpoint <- 60: Good$/m);
    await until(() => stdout.includes('[boiler] write reached the boiler: Boiler/Setpoint <- 60'), 'the setpoint write at the boiler');
    assert.doesNotMatch(stdout, /reached the boiler: Boiler\/Burner\/FuelValve/);
  });

  /** The demo's ssh_config and the exchange folder, as its instructions print them. */
  const sshSetup = () => {
    const config = /ssh -F (\S+ssh_config) rtu-demo@penstock-demo 'uname -a'/.exec(stdout)?.[1];
    const exchange = /only in (\S+): put FILE/.exec(stdout)?.[1];
    assert.ok(config && exchange, `the SSH instructions:\n${stdout}`);
    return { config, exchange };
  };
  const ssh = (config: string, ...command: string[]) => run('ssh', ['-F', config, '-o', 'BatchMode=yes', 'rtu-demo@penstock-demo', ...command]);

  it('SSH: an allowed command runs on the demo sshd; a refused one (an unnamed option, an ungranted file) does not', { skip: noSsh }, async () => {
    const { config, exchange } = sshSetup();
    assert.match(stdout, new RegExp(`the SSH front door is 127\\.0\\.0\\.1:${ports[5]}`));
    const name = await ssh(config, 'hostname');
    assert.equal(name.code, 0, name.stderr);
    assert.equal(name.stdout.trim(), hostname(), "the target's own output");
    const listed = await ssh(config, 'ls', '-l', exchange);
    assert.equal(listed.code, 0, listed.stderr);
    const option = await ssh(config, 'ls', '-la', exchange);
    assert.equal(option.code, 126, option.stderr);
    assert.match(option.stderr, /object_not_granted/);
    const shadow = await ssh(config, 'cat', '/etc/shadow');
    assert.equal(shadow.code, 126);
    assert.equal(shadow.stdout, '', 'nothing from the target');
  });

  it('SSH: sftp uploads into the exchange folder and nowhere else', { skip: noSsh }, async () => {
    const { config, exchange } = sshSetup();
    const local = join(tmp.dir, 'firmware-demo.bin');
    writeFileSync(local, 'demo firmware 1.2.3\n');
    const batch = join(tmp.dir, 'sftp-batch');
    writeFileSync(batch, `put ${local} ${exchange}/firmware.bin\n-put ${local} ${tmp.dir}/outside.bin\n`);
    const r = await run('sftp', ['-F', config, '-o', 'BatchMode=yes', '-b', batch, 'rtu-demo@penstock-demo']);
    assert.match(r.stderr, /Permission denied/, 'the put outside the folder is refused');
    assert.equal(readFileSync(join(exchange, 'firmware.bin'), 'utf8'), 'demo firmware 1.2.3\n');
    assert.equal(existsSync(join(tmp.dir, 'outside.bin')), false);
  });

  /** The agent's files, as the printed MCP instructions name them. */
  const mcpFiles = () => {
    const token = /bearer token from the demo identity provider in (\S+agent\.token) \(mode 0600/.exec(stdout)?.[1];
    const ca = /The gateway's CA is (\S+ca\.crt)\./.exec(stdout)?.[1];
    assert.ok(token && ca, `the MCP instructions:\n${stdout}`);
    return { token, ca };
  };

  it('MCP: the agent\'s token is a 10-minute JWT for the door\'s resource, in a 0600 file; the signing key stays private', () => {
    const resource = `https://127.0.0.1:${ports[7]}/mcp`;
    assert.match(stdout, new RegExp(`MCP front door ${resource.replaceAll('.', '\\.')}; you are agent tuning-agent`));
    const { token } = mcpFiles();
    assert.equal(statSync(token).mode & 0o777, 0o600);
    assert.equal(statSync(join(tmp.dir, 'mcp', 'idp-signing-key.pem')).mode & 0o777, 0o600);
    const claims = decodeJwt(readFileSync(token, 'utf8').trim());
    assert.equal(claims.aud, resource);
    assert.equal(claims.sub, 'spiffe://demo-solar-park.example/agent/tuning-agent');
    assert.equal(claims.exp! - claims.iat!, 600);
    // The config the daemon runs: the door and the agent's grant, approve on the power limit.
    const config = readFileSync(join(tmp.dir, 'penstock.yaml'), 'utf8');
    assert.match(config, /protocol: mcp/);
    assert.match(config, /points: \[controls\.WMaxLimPct\], max: 80, effect: approve/);
  });

  it('MCP: the printed Inspector command calls my_access as tuning-agent, over TLS; the journal has the call', async () => {
    const command = /^ {2}(\(cd .* --tool-name my_access\))$/m.exec(stdout)?.[1];
    assert.ok(command, `the printed Inspector command:\n${stdout}`);
    const r = await run('sh', ['-c', command]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const out = (JSON.parse(r.stdout) as { structuredContent: { principal: string; chain: string[]; grants: { id: string; targets: string[] }[] } }).structuredContent;
    assert.equal(out.principal, 'tuning-agent');
    assert.deepEqual(out.chain, ['tuning-agent', 'work-order:WO-4411']);
    assert.deepEqual(out.grants.map((g) => [g.id, g.targets]), [['g-wo-4411-agent', ['inverter-1']]]);
    // The far side: the daemon journaled the call, by that principal.
    const socket = join(tmp.dir, 'run', 'admin.sock');
    const called = await until(async () => {
      const tail = (await adminRequest(socket, 'journal.tail', { count: 200 })) as { events: { event: { event?: string; principal?: string } }[] };
      return tail.events.find((e) => e.event.event === 'mcp.tool_called');
    }, 'mcp.tool_called in the journal');
    assert.equal(called.event.principal, 'tuning-agent');
    // The token was read from its file by the shell: it is on no command line of the demo or the daemon.
    const token = readFileSync(mcpFiles().token, 'utf8').trim();
    for (const pid of [demo.pid!, ...descendants(demo.pid!)]) {
      assert.equal(readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(token), false, `the token is in the argv of ${pid}`);
    }
  });

  it('MCP: where this build has modbus_read, the printed command reads the inverter by point name', async (t) => {
    const command = /^ {2}(\(cd .* --tool-name modbus_read --tool-arg .*\))$/m.exec(stdout)?.[1];
    if (!command) return t.skip('modbus_read is not in this build (the demo prints no command for it)');
    const r = await run('sh', ['-c', command]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const result = JSON.parse(r.stdout) as { isError?: boolean };
    assert.notEqual(result.isError, true, r.stdout);
  });

  it('Ctrl-C stops the demo: exit status 0 and no process left behind', async () => {
    const children = descendants(demo.pid!);
    assert.ok(children.length >= 1, 'the daemon runs as a child of the demo');
    const exited = new Promise<number | null>((resolve) => demo.once('exit', (code) => resolve(code)));
    demo.kill('SIGINT');
    assert.equal(await exited, 0, stderr);
    assert.deepEqual(children.filter(running), [], 'every process the demo started has ended');
  });
});

describe('npm run demo without sshd', { timeout: 180_000 }, () => {
  it('says there is no SSH target, and runs the rest', async () => {
    const own = tempDir('penstock-demo-nossh-');
    const p: number[] = [];
    for (let i = 0; i < 8; i++) p.push(await freePort());
    let out = '';
    const child = spawn(process.execPath, [join(root, 'scripts/demo.ts')], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PENSTOCK_DEMO_DIR: own.dir, PENSTOCK_DEMO_PORTS: p.join(','), PENSTOCK_DEMO_SSHD: 'none', PENSTOCK_LOG_LEVEL: 'warn' },
    });
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await until(() => {
        if (child.exitCode !== null) throw new Error(`the demo exited with code ${child.exitCode}:\n${out}`);
        return out.includes('Penstock demo site is running');
      }, 'the demo banner', 120_000);
      assert.match(out, /demo: no OpenSSH sshd .*the rest of the demo runs without it/);
      assert.match(out, /SSH: no SSH target in this run/);
      assert.doesNotMatch(readFileSync(join(own.dir, 'penstock.yaml'), 'utf8'), /protocol: ssh/);
      const children = descendants(child.pid!);
      child.kill('SIGINT');
      assert.equal(await exited, 0, out);
      assert.deepEqual(children.filter(running), []);
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        for (const pid of descendants(child.pid!)) process.kill(pid, 'SIGKILL');
        child.kill('SIGKILL');
      }
      own.cleanup();
    }
  });
});
