// What the pull API counts per source (connections held, common/per-key-limit.ts; refusals folded). A source is an IPv4 address,
// or an IPv6 /64 (one host usually holds a whole /64, so counting single IPv6 addresses bounds nothing).
import { isIPv6 } from 'node:net';

/** The source an address counts against: IPv4 (also IPv4-mapped IPv6) as is, IPv6 by its /64 prefix. */
export function sourceKey(address: string | undefined): string {
  if (!address) return '?';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  const [head, tail = ''] = address.split('%')[0]!.split('::') as [string, string?];
  const left = head ? head.split(':') : [];
  const right = address.includes('::') && tail ? tail.split(':') : [];
  // Embedded IPv4 in the last 32 bits never reaches the first 64: no need to expand it.
  const groups = address.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => Number.parseInt(g || '0', 16).toString(16)).join(':')}::/64`;
}
