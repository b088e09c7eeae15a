// The check a grant issued at run time passes (over the admin socket, or from an envelope): the config
// grant shape, then the same cross-checks the config file gets (principal, targets, rule protocol vs
// target, profile points), as if the grant were appended to the file's list.
import { PenstockError } from '../common/errors.ts';
import { checkConfig } from '../config/load.ts';
import { grantSchema, type GrantConfig } from '../config/schema.ts';
import type { LoadedConfig } from '../config/types.ts';
import { protocols } from '../adapters/registry.ts';

export function validateRuntimeGrant(config: LoadedConfig, input: unknown): GrantConfig {
  const parsed = grantSchema.safeParse(input);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new PenstockError('PS_GRANT_INVALID', `grant ${first?.path.join('.') || '(root)'}: ${first?.message ?? 'invalid'}`);
  }
  const g = parsed.data;
  if (!config.principals.has(g.principal)) throw new PenstockError('PS_GRANT_INVALID', `grant.principal: no principal ${g.principal}`);
  for (const t of g.targets) if (!config.targets.has(t)) throw new PenstockError('PS_GRANT_INVALID', `grant.targets: no target ${t}`);
  // Validate the config as it would be with this grant added, and refuse on any error of the grant's.
  const { issues } = checkConfig(config.file, protocols, { extraGrants: [input] });
  const errors = issues.filter((i) => i.severity === 'error' && i.field.startsWith(`grants[${config.grants.length}]`));
  if (errors.length > 0) throw new PenstockError('PS_GRANT_INVALID', errors.map((e) => `${e.field.replace(/^grants\[\d+\]/, 'grant')}: ${e.message}`).join('; '));
  return g;
}
