// Config schemas of SSH listeners and targets (validated by config/load.ts through the registry).
import { z } from 'zod';
import { listenerBaseSchema, targetBaseSchema } from '../../config/schema-parts.ts';
import { parseAuthorizedKeyLine } from './keys.ts';
import { parseKnownHostsLine } from './upstream-keys.ts';

const publicKeyLine = z.string().min(1).superRefine((line, ctx) => {
  try {
    parseAuthorizedKeyLine(line);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `not an OpenSSH public key line: ${(err as Error).message}` });
  }
});

const knownHostsLine = z.string().min(1).superRefine((line, ctx) => {
  try {
    parseKnownHostsLine(line);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `not a known_hosts line ("[host]:port TYPE BASE64" or "TYPE BASE64"): ${(err as Error).message}` });
  }
});

/**
 * An SSH target: a device Penstock logs in to itself, as `username` with the vault `credential`
 * (a password, or a private key in OpenSSH/PEM form). Its host keys are pinned: a key not listed
 * here refuses the connection.
 */
export const sshTargetSchema = targetBaseSchema.extend({
  protocol: z.literal('ssh'),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(22),
  username: z.string().min(1).max(64),
  /** known_hosts lines of the target's host keys (`ssh-keyscan` output works as is). */
  host_keys: z.array(knownHostsLine).min(1),
  connect_timeout_ms: z.number().int().min(100).max(120_000).default(10_000),
  /** Ports on `host` that `tunnel: raw` rules may reach with `ssh -L`; none by default. */
  tunnel_ports: z.array(z.number().int().min(1).max(65535)).min(1).optional(),
}).strict().superRefine((t, ctx) => {
  if (t.credential === undefined) ctx.addIssue({ code: 'custom', path: ['credential'], message: 'an ssh target needs `credential: vault:NAME` (the password or private key Penstock logs in with)' });
});
export type SshTargetConfig = z.infer<typeof sshTargetSchema>;

/** The SSH front door. The host key is a private key file (OpenSSH or PEM), readable only by penstock. */
export const sshListenerSchema = listenerBaseSchema.extend({
  protocol: z.literal('ssh'),
  host_key: z.string().min(1),
  /** Certificate authorities whose user certificates are accepted (public key lines). */
  trusted_user_ca_keys: z.array(publicKeyLine).min(1).optional(),
  max_connections: z.number().int().min(1).default(64),
  /** Connections not yet authenticated at once; more are dropped at once (slow-handshake floods). */
  max_unauthenticated: z.number().int().min(1).default(16),
  /** A connection that has not authenticated this long after connecting is closed. */
  login_grace_seconds: z.number().int().min(1).max(600).default(30),
  /** Authentication attempts one connection may make before it is disconnected. */
  max_auth_tries: z.number().int().min(1).max(100).default(10),
  /** Failed logins per source address and per principal within `window_seconds` before more are refused. */
  auth_rate: z.strictObject({
    window_seconds: z.number().int().min(1).default(60),
    per_source: z.number().int().min(1).default(30),
    per_principal: z.number().int().min(1).default(10),
  }).default({ window_seconds: 60, per_source: 30, per_principal: 10 }),
  /** Channels (exec, shell, sftp, tunnels) one connection may have open at once. */
  max_channels: z.number().int().min(1).max(1024).default(10),
  /** Recordings directory. Default: STATE_DIR/recordings. */
  recordings_dir: z.string().min(1).optional(),
  /** A recording stops taking content beyond this size (the journal still gets the byte counts). */
  max_recording_mib: z.number().int().min(1).max(4096).default(64),
  /** SFTP uploads are held on the gateway until decided; this bounds the spool per file. */
  max_upload_mib: z.number().int().min(1).max(65536).default(1024),
}).strict();
export type SshListenerConfig = z.infer<typeof sshListenerSchema>;
