// What one authenticated SSH connection (session.ts) lends the code that serves its channels (exec.ts
// for programs, tunnels.ts for `-L`): the session, the policy gate with its approval handling, the one
// refusal path, and the connection's bookkeeping (channel count, shutdown hooks, output to the client).
import type { PseudoTtyInfo, ServerChannel } from 'ssh2';
import type net from 'node:net';
import type { Core, Verdict } from '../../core/core.ts';
import type { Action } from '../../policy/types.ts';
import type { Session } from '../../sessions/registry.ts';
import type { Authenticated } from './auth.ts';
import type { ClientBackpressure } from './flow.ts';
import type { SshListenerConfig, SshTargetConfig } from './schema.ts';
import type { UpstreamConnection } from './upstream.ts';

/** Exit status of a command Penstock refused (a shell's "cannot execute"): the module's refusal table says it. */
export { REFUSED_EXIT_STATUS as EXIT_REFUSED } from './refusals.ts';
/** Exit status when the target could not be reached (what ssh itself uses for connection errors). */
export const EXIT_UPSTREAM = 255;

/**
 * Why the front door refused a channel or request before policy saw it: the stable `reason` of an
 * `ssh.channel_refused` event (with `kind`, the channel or request refused).
 */
export type ChannelRefusal =
  | 'approval_pending'
  | 'channel_limit'
  | 'second_program'
  | 'certificate_forbids_pty'
  | 'certificate_forbids_port_forwarding'
  | 'force_command_binds'
  | 'env_not_passed'
  | 'x11_not_offered'
  | 'agent_forwarding_not_offered'
  | 'remote_forwarding_not_offered'
  | 'streamlocal_not_offered'
  | 'subsystem_not_offered'
  | 'legacy_scp'
  | 'no_target'
  | 'tunnel_not_a_target'
  | 'tunnel_port_not_listed'
  | 'tunnel_not_served'
  | 'oversize_request';

export interface ConnectionOptions {
  listener: SshListenerConfig;
  recordingsDir: string;
  /** Where SFTP uploads wait for their decision. */
  spoolDir: string;
  remote: string;
  /** Where Penstock listens, for the hints in the listing. */
  port: number;
}

export interface ChannelHost {
  readonly session: Session;
  readonly core: Core;
  readonly who: Authenticated;
  readonly options: ConnectionOptions;
  /** Everything sent toward the client waits while its socket is full. */
  readonly toClient: ClientBackpressure;
  /** The connection is shutting down (or has): start nothing new. */
  readonly closed: boolean;
  /** core.authorize, telling `notify` when a person must approve, holding the connection still meanwhile. */
  authorize(action: Action, notify: ServerChannel | undefined): Promise<Verdict>;
  /** A refusal before policy, journaled through the core. */
  refused(kind: string, reason: ChannelRefusal, more?: Record<string, unknown>): void;
  /** Run `fn` when the connection shuts down; the function returned cancels it. */
  onShutdown(fn: () => void): () => void;
  channelOpened(): void;
  channelClosed(): void;
}

/** What programs (exec, shell) need besides. */
export interface ProgramHost extends ChannelHost {
  upstream(target: string): Promise<UpstreamConnection>;
  /** Say something on a channel (CR LF where the client has a terminal). */
  nl(stream: ServerChannel, text: string): string;
  /** A channel that can carry a goodbye message. */
  talk(stream: ServerChannel, pty?: PseudoTtyInfo): void;
  /** The channel's program has ended: no goodbye on it. */
  untalk(stream: ServerChannel): void;
  /** Write, exit with `code`, end (and no longer a talker). */
  finish(stream: ServerChannel, code: number, out: string, err?: string): void;
}

/** What tunnels need besides. */
export interface TunnelHost extends ChannelHost {
  /** Refuse a new channel while an approval is pending, or past the channel limit. */
  admit(kind: string): boolean;
  sshTarget(id: string): SshTargetConfig | undefined;
  /** A raw tunnel's socket to the target: paused while an approval is pending, destroyed at shutdown. */
  holdRaw(socket: net.Socket): () => void;
}
