// penstockctl watch: follow sessions, decisions and alerts as they happen (the admin socket's
// events.follow stream). On a terminal it redraws one screen (live sessions on top, the newest events
// below) and quits on q or Ctrl-C, leaving the terminal as it found it; piped, it prints one line per
// event; with --json, the stream's lines as they come (one JSON object per line).
import type { Command } from 'commander';
import { adminFollow, type AdminFollow } from '../admin/client.ts';
import type { SessionView } from '../sessions/types.ts';
import { UsageError, type Io } from './io.ts';
import { lineText, renderScreen, whoText, type ScreenState, type WatchLine } from './watch-screen.ts';

const KINDS = ['session', 'decision', 'alert', 'grant', 'admin', 'other'] as const;
const SEVERITIES = ['info', 'warning', 'critical'] as const;
/** Events kept for the screen: more than any terminal shows. */
const KEPT_EVENTS = 500;

export interface WatchHelpers {
  io: Io;
  socket(): string;
  json(): boolean;
  timeoutMs(): number;
  setExit(code: number): void;
}

interface WatchOptions {
  principal?: string;
  target?: string;
  severity?: string;
  events?: string;
}

export function addWatchCommand(program: Command, h: WatchHelpers): void {
  program.command('watch')
    .description('follow live sessions, decisions and alerts as they happen (q or Ctrl-C quits)')
    .option('--principal <id>', 'only this principal, or sessions acting for it')
    .option('--target <id>', 'only this target')
    .option('--severity <level>', `events at least this severe: ${SEVERITIES.join(', ')} (a denial is a warning)`)
    .option('--events <kinds>', `comma-separated: ${KINDS.join(', ')}, or all (default session,decision,alert,grant)`)
    .action(async (o: WatchOptions) => {
      const params = followParams(o);
      const json = h.json();
      const out = process.stdout;
      const mode = json ? new JsonView(h.io) : out.isTTY && process.stdin.isTTY ? new ScreenView(title(o)) : new PlainView(h.io, title(o));
      let follow: AdminFollow | undefined;
      let quitByUser = false;
      const quit = (): void => {
        quitByUser = true;
        follow?.close();
      };
      const stopSignals = onSignals(quit);
      try {
        follow = adminFollow(h.socket(), 'events.follow', params, { onHeader: (header) => mode.begin(quit, header as FollowHeader), onLine: (l) => mode.line(l as WatchLine) }, { timeoutMs: h.timeoutMs() });
        out.on('error', quit); // a closed pipe (| head) ends the watch
        await follow.done;
        mode.end();
        if (!quitByUser) {
          // The daemon ended the stream (it stopped): say so, as for any unreachable daemon.
          h.io.err('penstockctl: the daemon closed the event stream (stopped or restarted?)');
          h.setExit(4);
        }
      } finally {
        mode.end();
        stopSignals();
        out.off('error', quit);
      }
    });
}

function title(o: WatchOptions): string {
  const f = [o.principal && `principal ${o.principal}`, o.target && `target ${o.target}`, o.severity && `≥ ${o.severity}`, o.events && `events ${o.events}`].filter(Boolean);
  return f.length > 0 ? f.join(', ') : 'everything';
}

export function followParams(o: WatchOptions): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  if (o.principal !== undefined) p.principal = o.principal;
  if (o.target !== undefined) p.target = o.target;
  if (o.severity !== undefined) {
    if (!(SEVERITIES as readonly string[]).includes(o.severity)) throw new UsageError(`--severity must be one of ${SEVERITIES.join(', ')} (got ${o.severity})`);
    p.severity = o.severity;
  }
  if (o.events !== undefined) {
    const kinds = o.events === 'all' ? [...KINDS] : o.events.split(',').map((k) => k.trim()).filter(Boolean);
    const bad = kinds.filter((k) => !(KINDS as readonly string[]).includes(k));
    if (kinds.length === 0 || bad.length > 0) throw new UsageError(`--events takes ${KINDS.join(', ')} or all (got ${o.events})`);
    p.kinds = [...new Set(kinds)];
  }
  return p;
}

/** SIGINT, SIGTERM and SIGHUP end the watch as q does; returns what removes the handlers. */
function onSignals(quit: () => void): () => void {
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const s of signals) process.on(s, quit);
  return () => {
    for (const s of signals) process.off(s, quit);
  };
}

/** The answer to events.follow. */
interface FollowHeader {
  next_seq?: number;
}

interface View {
  begin(quit: () => void, header: FollowHeader): void;
  line(l: WatchLine): void;
  end(): void;
}

/** --json: the stream's lines, as they come. */
class JsonView implements View {
  readonly #io: Io;
  constructor(io: Io) {
    this.#io = io;
  }
  begin(): void {}
  line(l: WatchLine): void {
    this.#io.out(JSON.stringify(l));
  }
  end(): void {}
}

/** Piped: one line per event; the live sessions once, at the start. */
class PlainView implements View {
  readonly #io: Io;
  readonly #title: string;
  #sawSessions = false;
  constructor(io: Io, title: string) {
    this.#io = io;
    this.#title = title;
  }
  begin(_quit: () => void, header: FollowHeader): void {
    this.#io.out(`-- following ${this.#title}${header.next_seq !== undefined ? ` from seq ${header.next_seq}` : ''} --`);
  }
  line(l: WatchLine): void {
    if (l.type === 'sessions') {
      if (this.#sawSessions) return;
      this.#sawSessions = true;
      for (const s of l.sessions) this.#io.out(`live session ${s.id} ${whoText(s.principal, s.chain)} → ${s.target ?? '-'} since ${s.started} (${s.counters.allowed} allowed, ${s.counters.denied} denied)`);
      return;
    }
    const text = lineText(l);
    if (text !== undefined) this.#io.out(text);
  }
  end(): void {}
}

const ESC = '\x1b[';

/** A terminal: the alternate screen, redrawn (at most every 50 ms, and each second for the clock). */
class ScreenView implements View {
  readonly #state: ScreenState;
  #drawTimer: NodeJS.Timeout | undefined;
  #clock: NodeJS.Timeout | undefined;
  #active = false;
  #quit: () => void = () => {};
  readonly #onKey = (data: Buffer): void => {
    // q, Q, Ctrl-C (raw mode: no SIGINT), Ctrl-D.
    if (data.includes(0x71) || data.includes(0x51) || data.includes(0x03) || data.includes(0x04)) {
      this.#quit();
    }
  };
  readonly #onResize = (): void => this.#draw();
  readonly #restoreOnExit = (): void => this.end();

  constructor(title: string) {
    this.#state = { sessions: [], events: [], title };
  }

  begin(quit: () => void): void {
    this.#quit = quit;
    this.#active = true;
    process.once('exit', this.#restoreOnExit);
    process.stdin.setRawMode(true);
    process.stdin.resume();
    process.stdin.on('data', this.#onKey);
    process.stdout.on('resize', this.#onResize); // SIGWINCH
    process.stdout.write(`${ESC}?1049h${ESC}?25l`); // alternate screen, cursor hidden
    this.#clock = setInterval(() => this.#draw(), 1000);
    this.#draw();
  }

  line(l: WatchLine): void {
    if (l.type === 'sessions') this.#state.sessions = l.sessions;
    else {
      if (l.type === 'event' && (l.event.event === 'session.closed' || l.event.event === 'session.killed')) {
        this.#state.sessions = this.#state.sessions.filter((s: SessionView) => s.id !== l.event.session);
      }
      const text = lineText(l);
      if (text !== undefined) {
        this.#state.events.push(text);
        if (this.#state.events.length > KEPT_EVENTS) this.#state.events.splice(0, this.#state.events.length - KEPT_EVENTS);
      }
    }
    this.#drawTimer ??= setTimeout(() => {
      this.#drawTimer = undefined;
      this.#draw();
    }, 50);
  }

  end(): void {
    if (!this.#active) return;
    this.#active = false;
    clearTimeout(this.#drawTimer);
    clearInterval(this.#clock);
    process.off('exit', this.#restoreOnExit);
    process.stdout.off('resize', this.#onResize);
    process.stdin.off('data', this.#onKey);
    if (process.stdin.isTTY) process.stdin.setRawMode(false);
    process.stdin.pause();
    process.stdout.write(`${ESC}?25h${ESC}?1049l`); // cursor shown, back to the normal screen
  }

  #draw(): void {
    if (!this.#active) return;
    const columns = process.stdout.columns || 80;
    const rows = process.stdout.rows || 24;
    const lines = renderScreen(this.#state, columns, rows, Date.now());
    process.stdout.write(`${ESC}H${lines.map((l) => `${l}${ESC}K`).join('\r\n')}${ESC}J`);
  }
}
