// `ssh -L PORT:TARGET_ID:PORT`: a tunnel is itself a decided action, `tunnel` on the target, and what
// flows in it depends on the target's protocol:
//   an SSH target  → tunnel `raw`: bytes to a port the target lists in `tunnel_ports`, counted;
//   any other      → tunnel P (the target's protocol): the stream is handed to P's front door through
//                    the module table (FrontDoor.serveStream), which decides every request in it as
//                    its own listener would. A protocol whose front door serves no streams is refused.
// Either needs an ssh rule `tunnel: …` in an active grant for the target; the decision is journaled
// (action.allowed / action.denied), counted, and may wait for approval. The stream is opened only with
// the Authorization in hand; its opening and closing are journaled as the action's outcomes.
import net from 'node:net';
import type { ServerChannel, TcpipRequestInfo } from 'ssh2';
import { requireAuthorization } from '../../core/authorization.ts';
import type { Action } from '../../policy/types.ts';
import type { SshObject } from './rules.ts';
import { loadFrontDoor } from '../registry.ts';
import type { TunnelHost } from './host.ts';

/** A `-L` channel request from the client. */
export async function openTunnel(host: TunnelHost, accept: () => ServerChannel, reject: () => void, info: TcpipRequestInfo): Promise<void> {
  if (!host.admit('tunnel')) return reject();
  if (host.who.extensions && !host.who.extensions.has('permit-port-forwarding')) {
    host.refused('tunnel', 'certificate_forbids_port_forwarding');
    return reject();
  }
  const id = info.destIP;
  const target = host.core.config().targets.get(id);
  if (!target) {
    host.refused('tunnel', 'tunnel_not_a_target', { destination: String(id).slice(0, 255) });
    return reject();
  }
  if (target.protocol === 'ssh') return rawTunnel(host, accept, reject, id, info.destPort);
  return servedTunnel(host, accept, reject, id, target.protocol);
}

function tunnelAction(target: string, tunnel: string): Action {
  // The object's tunnel is the target's protocol name (or `raw`); the rule schema says which are known.
  return { target, verb: 'tunnel', object: { kind: 'ssh', channel: 'tunnel', tunnel: tunnel as SshObject['tunnel'] } };
}

/** A tunnel to a target of another protocol: its front door serves the stream, deciding every request. */
async function servedTunnel(host: TunnelHost, accept: () => ServerChannel, reject: () => void, target: string, protocol: string): Promise<void> {
  const { core, session } = host;
  const verdict = await host.authorize(tunnelAction(target, protocol), undefined);
  const auth = verdict.authorization;
  if (!auth) return reject();
  const action = auth.action;
  const serveStream = (await loadFrontDoor(protocol))?.serveStream;
  if (!serveStream) {
    host.refused('tunnel', 'tunnel_not_served', { tunnel: protocol });
    void core.recordOutcome(session, action, { tunnel: 'failed', error: 'tunnel_not_served' });
    return reject();
  }
  if (host.closed) {
    void core.recordOutcome(session, action, { tunnel: 'failed', error: 'session_ended' });
    return reject();
  }
  requireAuthorization(auth, session.id, { target, verb: 'tunnel' });
  host.channelOpened();
  const stream = accept();
  const opened = performance.now();
  void core.recordOutcome(session, action, { tunnel: 'opened' });
  const served = serveStream(stream, session, core, target);
  const cancel = host.onShutdown(() => served.close());
  void served.done.then((reason) => {
    cancel();
    host.channelClosed();
    void core.recordOutcome(session, action, { tunnel: 'closed', reason, duration_ms: Math.round(performance.now() - opened) });
  });
}

/** A tunnel to a port an SSH target lists: bytes both ways, counted, paused while an approval is pending. */
async function rawTunnel(host: TunnelHost, accept: () => ServerChannel, reject: () => void, targetId: string, port: number): Promise<void> {
  const { core, session } = host;
  const target = host.sshTarget(targetId);
  if (!target) return reject();
  if (!target.tunnel_ports?.includes(port)) {
    host.refused('tunnel', 'tunnel_port_not_listed', { port });
    return reject();
  }
  const verdict = await host.authorize(tunnelAction(targetId, 'raw'), undefined);
  const auth = verdict.authorization;
  if (!auth || host.closed) return reject();
  const action = auth.action;
  requireAuthorization(auth, session.id, { target: targetId, verb: 'tunnel' });
  const socket = net.connect({ host: target.host, port });
  const counts = { bytes_to_target: 0, bytes_from_target: 0 };
  const opened = performance.now();
  let stream: ServerChannel | undefined;
  // An allowed tunnel that never opens still gets its outcome.
  const notOpened = (error: string) => void core.recordOutcome(session, action, { tunnel: 'failed', port, error });
  socket.once('error', (err: Error) => {
    if (!stream) {
      reject();
      notOpened(`the target's port could not be reached (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    socket.destroy();
  });
  socket.once('connect', () => {
    if (host.closed) {
      notOpened('the session ended before the tunnel opened');
      return socket.destroy();
    }
    host.channelOpened();
    const ch = accept();
    stream = ch;
    const release = host.holdRaw(socket);
    ch.on('data', (d: Buffer) => {
      counts.bytes_to_target += d.length;
      session.counters.bytesIn += d.length;
    });
    socket.on('data', (d: Buffer) => {
      counts.bytes_from_target += d.length;
      session.counters.bytesOut += d.length;
    });
    ch.pipe(socket);
    host.toClient.forward(socket, ch);
    let done = false;
    const close = () => {
      if (done) return;
      done = true;
      host.channelClosed();
      release();
      socket.destroy();
      ch.destroy();
      void core.recordOutcome(session, action, { tunnel: 'closed', port, ...counts, duration_ms: Math.round(performance.now() - opened) });
    };
    ch.on('close', close);
    ch.on('error', close);
    socket.on('close', close);
  });
}
