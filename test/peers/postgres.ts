// A real PostgreSQL (Debian's postgresql-15) started by a test: a fresh cluster in a temp folder, on a
// free loopback port, as the package's `postgres` user when the tests run as root (PostgreSQL refuses
// root). A server that cannot start fails the test at once with PostgreSQL's own log.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, tempDir } from '../support.ts';

/** The newest PostgreSQL server Debian installed (/usr/lib/postgresql/<major>/bin). */
export function postgresBin(): string {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((d) => existsSync(join(root, d, 'bin', 'postgres'))).sort((a, b) => Number(b) - Number(a)) : [];
  if (majors.length === 0) throw new Error('PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): install it with bash scripts/install-deps.sh');
  return join(root, majors[0]!, 'bin');
}

export interface Postgres {
  port: number;
  /** postgres://penstock@127.0.0.1:PORT/<database> */
  url(database?: string): string;
  /** Creates a database (owned by the test role) and returns its URL. */
  createDatabase(name: string): Promise<string>;
  readonly running: boolean;
  start(): Promise<void>;
  /** SIGKILL the postmaster (and so every backend) and wait. */
  kill(): Promise<void>;
  stop(): Promise<void>;
  log(): string;
}

const READY = /database system is ready to accept connections/;

export async function startPostgres(): Promise<Postgres> {
  const bin = postgresBin();
  const { dir, cleanup } = tempDir('penstock-pg-');
  const asRoot = process.getuid?.() === 0;
  const user = asRoot ? ['setpriv', '--reuid=postgres', '--regid=postgres', '--init-groups', '--'] : [];
  if (asRoot) execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  const data = join(dir, 'data');
  const sockets = join(dir, 'sockets');
  mkdirSync(sockets);
  if (asRoot) chownSync(sockets, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
  const run = (cmd: string, args: string[]) => {
    const [exe, ...rest] = [...user, cmd, ...args];
    return { exe: exe!, args: rest };
  };
  const init = run(join(bin, 'initdb'), ['-D', data, '-U', 'penstock', '--auth=trust', '-E', 'UTF8', '--no-sync', '--locale=C']);
  try {
    execFileSync(init.exe, init.args, { stdio: 'pipe' });
  } catch (err) {
    cleanup();
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`initdb failed: ${e.stderr?.toString() || e.message}`);
  }
  const port = await freePort();
  let proc: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = '';
  const start = (): Promise<void> => {
    if (proc) return Promise.resolve();
    const cmd = run(join(bin, 'postgres'), ['-D', data, '-p', String(port), '-k', sockets, '-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200', '-c', 'shared_buffers=64MB']);
    const p = spawn(cmd.exe, cmd.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    proc = p;
    exited = new Promise((resolve) => p.once('exit', () => {
      if (proc === p) proc = undefined;
      resolve();
    }));
    // Only this start's output counts: the log still holds the last start's "ready" line.
    const from = log.length;
    return new Promise((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        log += chunk.toString();
        if (READY.test(log.slice(from))) resolve();
      };
      p.stdout!.on('data', onData);
      p.stderr!.on('data', onData);
      p.once('error', (err) => reject(new Error(`postgres could not start: ${err.message}`)));
      p.once('exit', (code, signal) => reject(new Error(`postgres exited before it was ready (${signal ?? `code ${code}`}):\n${log.slice(-2000)}`)));
    });
  };
  const url = (database = 'postgres') => `postgres://penstock@127.0.0.1:${port}/${database}`;
  try {
    await start();
  } catch (err) {
    cleanup();
    throw err;
  }
  return {
    port,
    url,
    get running() {
      return proc !== undefined;
    },
    async createDatabase(name: string) {
      const client = new pg.Client({ connectionString: url() });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
      } finally {
        await client.end();
      }
      return url(name);
    },
    start,
    async kill() {
      proc?.kill('SIGKILL');
      await exited;
    },
    async stop() {
      // SIGINT: PostgreSQL's fast shutdown.
      proc?.kill('SIGINT');
      await exited;
      cleanup();
    },
    log: () => log,
  };
}
