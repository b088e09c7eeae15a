// What SSH puts in the config and in an action: the rule body of a grant (`- ssh: {…}`), the action
// object a request becomes (channel, command line, path…), and the keys SSH adds to a principal's
// credentials. The TypeScript types are derived from these schemas, so the two cannot drift apart.
import { z } from 'zod';
import type { PrincipalConfig } from '../../config/schema.ts';
import { effect, id, nonEmpty } from '../../config/schema-parts.ts';

/** A tunnel that carries bytes as they are, to one of the target's `tunnel_ports`. */
export const RAW_TUNNEL = 'raw';

/**
 * What a tunnel carries: `raw`, or the name of a protocol whose front door serves tunnelled streams
 * (every request in the tunnel is then decided by that protocol's rules). The syntax is checked here;
 * that the name is a registered protocol that serves streams is the config cross-check's job.
 */
export const tunnelKindSchema = id;

/**
 * An SSH rule. `exec` is an argv pattern (argv-pattern.ts): literal words, `*` for one operand
 * (never an option), `--NAME=*` for that option with any value, a final `...` for any operands; `-*`
 * (any option) and a final `-...` (any tail) admit options. It is matched against the argv parsed with
 * POSIX shell quoting, never a regex over the raw string. `command_line` names one exact command line,
 * and is the only way to allow shell metacharacters. `shell`, `tunnel` and `sftp` grant those channel
 * kinds. `pty: true` on an exec or command_line rule lets the command run with a terminal when the
 * client asks for one (`ssh -t`); without it the command runs without one (a pager or editor on a
 * terminal is a shell).
 */
export const sshRuleSchema = z.strictObject({
  effect,
  exec: z.array(nonEmpty).min(1).optional(),
  command_line: nonEmpty.optional(),
  pty: z.literal(true).optional(),
  shell: z.literal(true).optional(),
  tunnel: tunnelKindSchema.optional(),
  sftp: z.strictObject({
    paths: z.array(nonEmpty).min(1),
    direction: z.enum(['download', 'upload', 'both']),
    max_bytes: z.number().int().positive().optional(),
  }).optional(),
}).superRefine((r, ctx) => {
  const kinds = ['exec', 'command_line', 'shell', 'tunnel', 'sftp'].filter((k) => (r as Record<string, unknown>)[k] !== undefined);
  if (kinds.length !== 1) ctx.addIssue({ code: 'custom', message: `an ssh rule names exactly one of exec, command_line, shell, tunnel, sftp (found ${kinds.length ? kinds.join(', ') : 'none'})` });
  if (r.pty && !r.exec && r.command_line === undefined) ctx.addIssue({ code: 'custom', path: ['pty'], message: '`pty` applies to exec and command_line rules (a shell rule always gets the terminal the client asks for)' });
  const e = r.exec;
  if (e && e.slice(0, -1).some((w) => w === '...' || w === '-...')) ctx.addIssue({ code: 'custom', path: ['exec'], message: '`...` and `-...` may only be the last word of an exec pattern' });
});
export type SshRuleConfig = z.infer<typeof sshRuleSchema>;

export const sshChannels = ['exec', 'shell', 'tunnel', 'sftp'] as const;

/**
 * An SSH action object: what one channel or one file transfer asks for. The admin socket validates a
 * dry run's object with it; the front door builds the same shape from the client's requests.
 */
export const sshObjectSchema = z.strictObject({
  kind: z.literal('ssh'),
  channel: z.enum(sshChannels),
  /** The raw command line of an exec, as the client sent it. */
  commandLine: z.string().max(16384).optional(),
  /** The command line parsed with POSIX shell quoting; absent when it could not be parsed. */
  argv: z.array(z.string().max(16384)).max(4096).optional(),
  /** True when the command line holds shell metacharacters (; | & $( ) ` < > newline, globs). */
  metacharacters: z.boolean().optional(),
  /** An exec that asks to run with a terminal (the client requested a pty). */
  pty: z.boolean().optional(),
  /** What a tunnel carries (see tunnelKindSchema). */
  tunnel: tunnelKindSchema.optional(),
  /** A file transfer's absolute path on the target, its direction and size. */
  path: z.string().min(1).max(4096).optional(),
  direction: z.enum(['download', 'upload']).optional(),
  bytes: z.number().int().min(0).optional(),
});
export type SshObject = z.output<typeof sshObjectSchema>;

/** Keys SSH adds to a principal's `credentials`. */
export const sshCredentialSchemas = {
  /** OpenSSH public key lines (`ssh-ed25519 AAAA… comment`). */
  ssh_keys: z.array(nonEmpty).optional(),
  /** Names this principal answers to in OpenSSH certificates signed by a trusted CA. */
  ssh_cert_principals: z.array(nonEmpty).optional(),
} as const;

/** What a principal's `credentials` hold for this protocol (config/schema.ts adds the keys from sshCredentialSchemas). */
export type SshCredentials = { [K in keyof typeof sshCredentialSchemas]?: z.output<(typeof sshCredentialSchemas)[K]> };
export function sshCredentials(p: PrincipalConfig): SshCredentials {
  return p.credentials as SshCredentials;
}
