// penstockctl sessions replay ID [--speed N]: play a session's recordings (asciicast v2) in this
// terminal, at real speed or faster. Each file is fetched from the gateway in chunks and checked
// against the SHA-256 the journal holds for it before a byte is played.
import type { Command } from 'commander';
import { createHash } from 'node:crypto';
import { UsageError, type Io } from './io.ts';

interface RecordingInfo {
  seq: number;
  time?: string;
  session?: string;
  target?: string;
  verb?: string;
  command?: string;
  sha256: string;
  bytes: number;
}

export interface ReplayHelpers {
  io: Io;
  call(command: string, params?: unknown): Promise<unknown>;
  json(): boolean;
  setExit(code: number): void;
  /** Where the recording's bytes go (stdout by default). */
  write?: (text: string) => void;
  sleep?: (ms: number) => Promise<void>;
}

export function addReplayCommand(sessions: Command, h: ReplayHelpers): void {
  sessions.command('replay')
    .description("play a session's recordings (exec and shell output) in this terminal")
    .argument('<id>', 'session id, or the SHA-256 of one recording')
    .option('--speed <n>', 'play this many times faster than real time', '1')
    .option('--max-idle <seconds>', 'shorten pauses longer than this', '2')
    .option('--list', 'only list the recordings')
    .action(async (id: string, o: { speed: string; maxIdle: string; list?: boolean }) => {
      const speed = Number(o.speed);
      const maxIdle = Number(o.maxIdle);
      if (!(speed > 0)) throw new UsageError(`--speed must be a positive number (got ${o.speed})`);
      if (!(maxIdle > 0)) throw new UsageError(`--max-idle must be a positive number of seconds (got ${o.maxIdle})`);
      const { recordings } = (await h.call('sessions.replay', { id })) as { recordings: RecordingInfo[] };
      if (h.json() || o.list) {
        h.io.out(h.json() ? JSON.stringify(recordings, null, 2) : recordings.map((r) => `${r.time ?? ''}  ${r.verb ?? ''}  ${r.target ?? ''}  ${r.command ?? ''}  ${r.sha256}`).join('\n') || 'no recordings');
        return;
      }
      if (recordings.length === 0) {
        h.io.err(`penstockctl: no recordings for ${id}`);
        h.setExit(1);
        return;
      }
      const write = h.write ?? ((t: string) => void process.stdout.write(t));
      const sleep = h.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
      for (const r of recordings) {
        const text = await fetchRecording(h, r.sha256);
        h.io.err(`--- ${r.time ?? ''} ${r.verb ?? ''} on ${r.target ?? '?'}${r.command !== undefined ? `: ${r.command}` : ''} (${r.sha256.slice(0, 12)})`);
        await play(text, speed, maxIdle, write, sleep);
        h.io.err('--- end');
      }
    });
}

async function fetchRecording(h: ReplayHelpers, sha256: string): Promise<string> {
  const parts: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const c = (await h.call('sessions.recording', { sha256, offset })) as { data: string; done: boolean; total: number };
    const buf = Buffer.from(c.data, 'base64');
    parts.push(buf);
    offset += buf.length;
    if (c.done || buf.length === 0) break;
  }
  const all = Buffer.concat(parts);
  if (createHash('sha256').update(all).digest('hex') !== sha256) throw new UsageError(`recording ${sha256} does not match the hash the journal holds`);
  return all.toString('utf8');
}

async function play(text: string, speed: number, maxIdle: number, write: (t: string) => void, sleep: (ms: number) => Promise<void>): Promise<void> {
  let last = 0;
  for (const line of text.split('\n').slice(1)) {
    if (!line) continue;
    const [t, kind, data] = JSON.parse(line) as [number, string, string];
    if (kind !== 'o') continue;
    const wait = Math.min(t - last, maxIdle) / speed;
    last = t;
    if (wait > 0.001) await sleep(wait * 1000);
    write(data);
  }
}
