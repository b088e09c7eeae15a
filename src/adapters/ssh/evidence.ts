// How an SSH action reads: the journal's `ssh` block (field names as SIEM rules for SSH sensors know
// them: channel, command, path, direction, bytes) and one short line for people in penstockctl.
import type { Action } from '../../policy/types.ts';
import type { SshObject } from './rules.ts';

/** The journal's block for an SSH action object. */
export function renderSshObject(o: SshObject): Record<string, unknown> {
  return {
    channel: o.channel,
    command: o.commandLine,
    argv: o.argv,
    metacharacters: o.metacharacters,
    pty: o.pty,
    tunnel: o.tunnel,
    path: o.path,
    direction: o.direction,
    bytes: o.bytes,
  };
}

/** `exec systemctl status bridge`, `shell`, `tunnel raw`, `upload /opt/fw/fw.bin (1024 bytes)`. */
export function describeSshAction(a: Action & { object: SshObject }): string {
  const o = a.object;
  switch (o.channel) {
    case 'exec':
      return `exec ${o.commandLine ?? (o.argv ?? []).join(' ')}`;
    case 'tunnel':
      return o.tunnel === undefined ? 'tunnel' : `tunnel ${o.tunnel}`;
    case 'sftp':
      return `${o.direction ?? 'sftp'} ${o.path ?? '?'}${o.bytes !== undefined ? ` (${o.bytes} bytes)` : ''}`;
    default:
      return o.channel;
  }
}
