// What the SSH front door tells a client when policy says no. An exec or shell gets the text on stderr
// and exit status 126 (a shell's "cannot execute"); an SFTP request gets status SSH_FX_PERMISSION_DENIED
// with the text as its message. The text leads with a coded reason, stable for scripts and tests; the
// decision's explanation may follow it (`penstock: denied by policy [object_not_granted]: …`), never the
// target's own words.
import type { DecisionReason } from '../../policy/types.ts';

/** Exit status of a command or shell Penstock refused. */
export const REFUSED_EXIT_STATUS = 126;
/** SFTP status of a refused file request (SSH_FX_PERMISSION_DENIED, draft-ietf-secsh-filexfer-02). */
export const SFTP_PERMISSION_DENIED = 3;

const denied = (reason: DecisionReason) => `penstock: denied by policy [${reason}]`;

export const sshRefusals: Readonly<Record<DecisionReason, string>> = {
  // Not refusals: listed so every reason has its text should one ever reach a client.
  rule_allows: denied('rule_allows'),
  rule_requires_approval: 'penstock: not approved [rule_requires_approval]',
  rule_denies: denied('rule_denies'),
  no_grant: denied('no_grant'),
  grant_not_active: denied('grant_not_active'),
  principal_expired: denied('principal_expired'),
  function_not_granted: denied('function_not_granted'),
  object_not_granted: denied('object_not_granted'),
  value_out_of_bounds: denied('value_out_of_bounds'),
  metacharacters: denied('metacharacters'),
  malformed: denied('malformed'),
  journal_unavailable: 'penstock: refused (the gateway cannot record it) [journal_unavailable]',
  session_limit: denied('session_limit'),
  approval_refused: 'penstock: not approved [approval_refused]',
};

/** The line a refused exec or shell writes to stderr: the coded text, then the decision's explanation. */
export function refusalLine(reason: DecisionReason, explanation: string): string {
  return `${sshRefusals[reason]}: ${explanation}\n`;
}
