// What an SSH login without a target is told: who it is, the targets its active grants reach now (with
// how to reach each through this gateway) and each grant's rules in words. Read-only: nothing is
// decided or journaled, and only the principal's own grants are shown.
import type { Core } from '../../core/core.ts';
import type { Session } from '../../sessions/registry.ts';
import { explainRule } from '../../policy/decide.ts';

/** The listing text; `port` is where this front door listens, for the hints. */
export function listing(core: Core, p: Session['principal'], port: number): string {
  const now = core.clock.now();
  const config = core.config();
  const held = core.grants.forPrincipal(p.id);
  const lines = [`Penstock: you are ${p.id} (${p.kind}, ${p.owner}).`, ''];
  const active = held.filter((g) => core.grants.isActive(g, now));
  if (active.length === 0) lines.push('You hold no active grant now.');
  else {
    lines.push('Targets you may reach now:');
    for (const g of active) {
      for (const t of g.targets) {
        const target = config.targets.get(t);
        const how = reachHint(target?.protocol, t, p.id, port);
        lines.push(`  ${t.padEnd(16)} ${String(target?.protocol ?? '?').padEnd(7)} grant ${g.id} (ticket ${g.task.ticket})${g.window ? ` until ${g.window.to}` : ''}${how ? `\n      ${how}` : ''}`);
      }
      g.rules.forEach((r, i) => lines.push(`      rule ${g.id}#${i}: ${explainRule(r)}`));
    }
  }
  const inactive = held.filter((g) => !core.grants.isActive(g, now));
  if (inactive.length > 0) lines.push('', `Grants not active now: ${inactive.map((g) => g.id).join(', ')}`);
  return `${lines.join('\n')}\n`;
}

/** A login to an SSH target runs commands; any other target is reached through a `-L` tunnel. */
function reachHint(protocol: string | undefined, target: string, principal: string, port: number): string {
  if (protocol === undefined) return '';
  if (protocol === 'ssh') return `ssh -p ${port} ${target}@GATEWAY 'COMMAND'`;
  return `ssh -N -L LOCAL_PORT:${target}:PORT -p ${port} ${principal}@GATEWAY`;
}
