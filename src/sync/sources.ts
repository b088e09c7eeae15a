// What the pull API counts per source: connections held, refusals folded. A source is an IPv4 address,
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

/**
 * Open connections per source, bounded: one source cannot hold every connection slot (the server-wide
 * cap) and so lock out the real puller by opening idle connections.
 */
export class SourceConnections {
  readonly #limit: number;
  readonly #open = new Map<string, number>();

  constructor(limitPerSource: number) {
    this.#limit = limitPerSource;
  }

  /** Counts a new connection; false (and nothing counted) when its source already holds the limit. */
  admit(source: string): boolean {
    const n = this.#open.get(source) ?? 0;
    if (n >= this.#limit) return false;
    this.#open.set(source, n + 1);
    return true;
  }

  release(source: string): void {
    const n = (this.#open.get(source) ?? 0) - 1;
    if (n > 0) this.#open.set(source, n);
    else this.#open.delete(source);
  }

  held(source: string): number {
    return this.#open.get(source) ?? 0;
  }
}
