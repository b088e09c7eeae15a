// A real nats-server (Debian's) with JetStream, started by a test on loopback: one node, or a cluster of
// three with a replicated stream in mind. Ports are free-picked, the store is in a temp folder, and a
// node that cannot start fails the test at once with nats-server's own error. Nodes can be stopped,
// killed and started again on the same ports and store (link outages, a node lost under load).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, tempDir, until } from '../support.ts';

export const NATS_SERVER = 'nats-server';

export interface NatsNode {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  /** Running now. */
  readonly running: boolean;
  readonly pid: number | undefined;
  /** Starts it again (same ports, same store); resolves when it says it is ready. */
  start(): Promise<void>;
  /** SIGTERM (lame duck off: nats-server exits at once) and wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** What it printed (stderr): its log. */
  log(): string;
}

export interface NatsOptions {
  /** 1 (default) or 3 nodes in one cluster. */
  nodes?: 1 | 3;
  /**
   * More configuration, the same on every node (nats-server config syntax): an `authorization` or
   * `accounts` block, a `tls` block for clients.
   */
  extraConfig?: string;
  /** Largest JetStream file store per node (default 1G). */
  maxFileStore?: string;
}

export interface NatsCluster {
  nodes: NatsNode[];
  /** Client URLs of every node, nats://127.0.0.1:PORT. */
  urls: string[];
  dir: string;
  stop(): Promise<void>;
}

const READY = /Server is ready/;

export async function startNats(opts: NatsOptions = {}): Promise<NatsCluster> {
  const count = opts.nodes ?? 1;
  const { dir, cleanup } = tempDir('penstock-nats-');
  const ports = await Promise.all(Array.from({ length: count }, async () => ({ client: await freePort(), cluster: await freePort() })));
  const nodes = ports.map((p, i) => {
    const name = `n${i + 1}`;
    const store = join(dir, name, 'js');
    mkdirSync(store, { recursive: true });
    const routes = ports.filter((_, j) => j !== i).map((o) => `nats-route://127.0.0.1:${o.cluster}`);
    const conf = [
      `server_name: ${name}`,
      `listen: 127.0.0.1:${p.client}`,
      `jetstream { store_dir: "${store}", max_memory_store: 64M, max_file_store: ${opts.maxFileStore ?? '1G'} }`,
      ...(count > 1 ? [`cluster { name: penstock-test, listen: 127.0.0.1:${p.cluster}, routes: [${routes.join(', ')}] }`] : []),
      opts.extraConfig ?? '',
    ].join('\n');
    const file = join(dir, name, 'nats.conf');
    writeFileSync(file, `${conf}\n`);
    return new Node(name, p.client, file);
  });
  try {
    await Promise.all(nodes.map((n) => n.start()));
    // A cluster serves JetStream only once it has elected a metadata leader.
    if (count > 1) await until(() => nodes.some((n) => /JetStream cluster new metadata leader/.test(n.log())), 'a JetStream metadata leader', 30_000);
  } catch (err) {
    await Promise.all(nodes.map((n) => n.kill()));
    cleanup();
    throw err;
  }
  return {
    nodes,
    urls: nodes.map((n) => n.url),
    dir,
    stop: async () => {
      await Promise.all(nodes.map((n) => n.kill()));
      cleanup();
    },
  };
}

class Node implements NatsNode {
  #proc: ChildProcess | undefined;
  #log = '';
  #exited: Promise<void> = Promise.resolve();
  readonly name: string;
  readonly port: number;
  readonly #conf: string;

  constructor(name: string, port: number, conf: string) {
    this.name = name;
    this.port = port;
    this.#conf = conf;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#proc !== undefined;
  }

  get pid(): number | undefined {
    return this.#proc?.pid;
  }

  log(): string {
    return this.#log;
  }

  start(): Promise<void> {
    if (this.#proc) return Promise.resolve();
    const proc = spawn(NATS_SERVER, ['-c', this.#conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#proc = proc;
    this.#exited = new Promise((resolve) => proc.once('exit', () => {
      if (this.#proc === proc) this.#proc = undefined;
      resolve();
    }));
    return new Promise((resolve, reject) => {
      let seen = '';
      const onData = (chunk: Buffer) => {
        const text = chunk.toString();
        this.#log += text;
        seen += text;
        if (READY.test(seen)) {
          seen = '';
          resolve();
        }
      };
      proc.stdout!.on('data', onData);
      proc.stderr!.on('data', onData);
      proc.once('error', (err) => reject(new Error(`${NATS_SERVER} could not start (${err.message}): install it with bash scripts/install-deps.sh`)));
      proc.once('exit', (code, signal) => reject(new Error(`${NATS_SERVER} ${this.name} exited before it was ready (${signal ?? `code ${code}`}):\n${this.#log.slice(-2000)}`)));
    });
  }

  async stop(): Promise<void> {
    this.#proc?.kill('SIGTERM');
    await this.#exited;
  }

  async kill(): Promise<void> {
    this.#proc?.kill('SIGKILL');
    await this.#exited;
  }
}
