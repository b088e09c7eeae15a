// Refusals at the pull port (a handshake refused, a connection over the per-source cap, an unknown
// certificate) cost a journal event each unless folded: anyone who reaches the port could otherwise fill
// the journal, and a full journal refuses every privileged action. Per source and interval, the first
// refusal is reported at once; the rest are counted and reported as ONE event when the interval ends
// (`folded` says how many it stands for). A source still refused in the next interval stays folded, so a
// steady flood costs one event per source per interval. Sources tracked per interval are bounded too;
// beyond that, all new sources share one bucket. The daemon passes what is reported on to the core's
// rate-limited refusal journal (src/core/refusals.ts), which bounds the total per listener.

export interface FoldedRefusal {
  /** The source (sources.ts: an IPv4 address or an IPv6 /64), or `other` for the overflow bucket. */
  remote: string;
  /** The reason of this refusal, or the most frequent reason among those folded. */
  reason: string;
  /** The client name, when the certificate was one a configured client presented. */
  client?: string;
  /** How many refusals this report stands for beyond itself (0 for the first one reported at once). */
  folded: number;
  /** Counts per reason of the refusals folded into this report (absent when folded is 0). */
  reasons?: Record<string, number>;
}

interface SourceState {
  /** Refusals counted since the last report. */
  count: number;
  reasons: Map<string, number>;
  client: string | undefined;
}

export interface RefusalFoldOptions {
  intervalMs: number;
  /** Distinct sources tracked per interval before new ones share the `other` bucket. */
  maxSources: number;
  report: (r: FoldedRefusal) => void;
}

export const DEFAULT_FOLD = { intervalMs: 10_000, maxSources: 256 } as const;

export class RefusalFold {
  readonly #opts: RefusalFoldOptions;
  #sources = new Map<string, SourceState>();
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: RefusalFoldOptions) {
    this.#opts = opts;
  }

  refuse(source: string, reason: string, client?: string): void {
    let key = source;
    if (!this.#sources.has(key) && this.#sources.size >= this.#opts.maxSources) key = 'other';
    let state = this.#sources.get(key);
    this.#arm();
    if (!state) {
      state = { count: 0, reasons: new Map(), client };
      this.#sources.set(key, state);
      if (key !== 'other') {
        this.#opts.report({ remote: key, reason, ...(client ? { client } : {}), folded: 0 });
        return;
      }
    }
    state.count++;
    state.reasons.set(reason, (state.reasons.get(reason) ?? 0) + 1);
    state.client ??= client;
  }

  /** Reports everything counted so far (at the end of each interval, and on close). */
  flush(): void {
    const next = new Map<string, SourceState>();
    for (const [remote, s] of this.#sources) {
      if (s.count === 0) continue;
      const top = [...s.reasons].sort((a, b) => b[1] - a[1])[0]![0];
      this.#opts.report({ remote, reason: top, ...(s.client ? { client: s.client } : {}), folded: s.count, reasons: Object.fromEntries(s.reasons) });
      // Still refused last interval: this source's next refusals fold from the first one on.
      if (remote !== 'other') next.set(remote, { count: 0, reasons: new Map(), client: s.client });
    }
    this.#sources = next;
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.flush();
  }

  #arm(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      this.flush();
      // Nothing left to fold: stop ticking until the next refusal.
      if (this.#sources.size === 0 && this.#timer) {
        clearInterval(this.#timer);
        this.#timer = undefined;
      }
    }, this.#opts.intervalMs);
    this.#timer.unref();
  }
}
