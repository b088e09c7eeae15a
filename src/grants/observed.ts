// What a suggested rule's comment says of the observations it covers; shared by every protocol's
// suggestRules (adapters/<name>/suggest.ts), so all say it the same way.

/** `12 actions, first 2026-…, last 2026-…` of observations with counts and ISO times. */
export function coverageText(seen: readonly { count: number; first: string; last: string }[]): string {
  const n = seen.reduce((sum, a) => sum + a.count, 0);
  const first = seen.map((a) => a.first).sort()[0] ?? '?';
  const last = seen.map((a) => a.last).sort().at(-1) ?? '?';
  return `${n} action${n === 1 ? '' : 's'}, first ${first}, last ${last}`;
}
