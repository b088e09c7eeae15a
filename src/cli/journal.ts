// penstockctl journal …: read, verify, export and prove the evidence journal, and the offline checks an
// auditor runs on what was exported or proved (no daemon, only the pinned appliance key).
import type { Command } from 'commander';
import { createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { UsageError, type Io } from './io.ts';
import type { JournalHealth } from '../journal/types.ts';

export interface JournalCliHelpers {
  io: Io;
  call(command: string, params?: unknown): Promise<unknown>;
  show(result: unknown, human: () => string): void;
  setExit(code: number): void;
}

interface EventRow {
  seq: number;
  event: { time?: string; event?: string; code?: string; principal?: string; target?: string; session?: string; decision?: { effect?: string; reason?: string } };
}

function intArg(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`${name} must be a whole number (got ${value})`);
  return Number(value);
}

/** Reads a vkey given inline or as a file path. */
function vkeyArg(value: string): string {
  return existsSync(value) ? readFileSync(value, 'utf8').trim() : value.trim();
}

/** journal.verify params for a kept checkpoint: the note file is read here, with the caller's own rights. */
function keptArgs(o: { checkpoint?: string; treeSize?: string; root?: string }): Record<string, unknown> {
  if (o.checkpoint !== undefined) {
    if (o.treeSize !== undefined || o.root !== undefined) throw new UsageError('give --checkpoint, or --tree-size with --root, not both');
    return { checkpoint: readFileSync(o.checkpoint, 'utf8') };
  }
  if ((o.treeSize === undefined) !== (o.root === undefined)) throw new UsageError('--tree-size and --root go together');
  if (o.treeSize === undefined) return {};
  const root = /^[0-9a-fA-F]{64}$/.test(o.root!) ? Buffer.from(o.root!, 'hex') : Buffer.from(o.root!, 'base64');
  if (root.length !== 32 || (!/^[0-9a-fA-F]{64}$/.test(o.root!) && root.toString('base64') !== o.root)) throw new UsageError('--root must be 32 bytes as 64 hex digits or base64');
  return { tree_size: intArg('--tree-size', o.treeSize), root: root.toString('base64') };
}

function renderEvent(r: EventRow): string {
  const e = r.event;
  const decision = e.decision ? ` ${e.decision.effect}${e.decision.reason ? ` (${e.decision.reason})` : ''}` : '';
  return `${String(r.seq).padStart(7)}  ${e.time ?? ''}  ${e.code ?? ''} ${e.event ?? ''}${e.principal ? `  principal=${e.principal}` : ''}${e.target ? ` target=${e.target}` : ''}${decision}`;
}

export function addJournalCommands(program: Command, h: JournalCliHelpers): void {
  const journal = program.command('journal').description('the signed evidence journal');

  journal.command('status')
    .description('size, free space, last checkpoint, upstream acknowledgement, appliance key')
    .action(async () => {
      const r = (await h.call('journal.status')) as { health: JournalHealth; size: number; first_retained: number; acknowledged: number; checkpoint?: { size: number; rootHash: string; time: string }; vkey: string };
      const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
      const { lmdb } = r.health;
      h.show(r, () => [
        `events       ${r.size} (retained from seq ${r.first_retained})`,
        `writable     ${r.health.writable ? 'yes' : `NO: ${r.health.failure ?? 'unknown'}`}`,
        `stored       ${mib(r.health.bytes)} of events and tree; free ${mib(r.health.freeBytes)}`,
        `data file    ${mib(r.health.fileBytes)}: ${mib(r.health.usedBytes)} in use of ${mib(r.health.capacityBytes)} capacity, ${lmdb.freePages} of ${lmdb.pages} pages free for reuse, ${lmdb.readers} read transaction(s) open`,
        `checkpoint   ${r.checkpoint ? `size ${r.checkpoint.size}, root ${r.checkpoint.rootHash}, ${r.checkpoint.time}` : 'none yet'}`,
        `acknowledged ${r.acknowledged < 0 ? 'nothing yet' : `up to seq ${r.acknowledged}`}`,
        `appliance key ${r.vkey}`,
      ].join('\n'));
    });

  journal.command('key')
    .description('print the appliance verifier key, to pin it out of band in central PAM')
    .action(async () => {
      const r = (await h.call('journal.status')) as { vkey: string };
      h.show({ vkey: r.vkey }, () => r.vkey);
    });

  journal.command('tail')
    .description('the last events')
    .option('-n, --count <n>', 'how many', '20')
    .action(async (o: { count: string }) => {
      const r = (await h.call('journal.tail', { count: intArg('--count', o.count) })) as { events: EventRow[] };
      h.show(r, () => r.events.map(renderEvent).join('\n') || '(journal is empty)');
    });

  journal.command('show')
    .description('one event in full')
    .argument('<seq>')
    .action(async (seq: string) => {
      const r = await h.call('journal.show', { seq: intArg('seq', seq) });
      h.show(r, () => JSON.stringify(r, null, 2));
    });

  journal.command('verify')
    .description('recompute every hash, the tree and every checkpoint signature on the gateway; names the first bad spot')
    .option('--checkpoint <file>', 'also prove the journal extends this signed checkpoint you kept elsewhere (catches a rollback)')
    .option('--tree-size <n>', 'the same with a tree size you kept elsewhere (with --root)')
    .option('--root <hex|base64>', 'the root hash of that tree size')
    .action(async (o: { checkpoint?: string; treeSize?: string; root?: string }) => {
      const kept = keptArgs(o);
      const r = (await h.call('journal.verify', kept)) as { ok: boolean; code?: string; size?: number; seq?: number; problem?: string; seconds: number; kept?: { size: number } };
      const against = r.kept ? `, consistent with the kept checkpoint of size ${r.kept.size}` : '';
      h.show(r, () => (r.ok ? `journal OK: ${r.size} events verified in ${r.seconds.toFixed(2)} s${against}` : `journal BAD at seq ${r.seq} (${r.code}): ${r.problem}`));
      if (!r.ok) h.setExit(1);
    });

  journal.command('export')
    .description('write events as JSON lines (canonical event + leaf_hash) and the signed checkpoint that covers them')
    .option('--from <seq>', 'first seq', '0')
    .option('--to <seq>', 'last seq (default: the last covered by a checkpoint)')
    .requiredOption('--out <file>', 'JSON-lines file to write; the checkpoint goes to FILE.checkpoint')
    .action(async (o: { from: string; to?: string; out: string }) => {
      let from = intArg('--from', o.from)!;
      const to = intArg('--to', o.to);
      const out = createWriteStream(o.out, { mode: 0o640 });
      let checkpoint = '';
      let written = 0;
      let first: number | undefined;
      for (;;) {
        const count = to === undefined ? 2000 : Math.min(2000, to - from + 1);
        if (count <= 0) break;
        const page = (await h.call('journal.export', { from, count })) as { first: number; lines: string[]; checkpoint: string };
        first ??= page.first;
        checkpoint = page.checkpoint;
        for (const line of page.lines) if (!out.write(line)) await once(out, 'drain');
        written += page.lines.length;
        if (page.lines.length < count) break;
        from = page.first + page.lines.length;
      }
      out.end();
      await once(out, 'finish');
      writeFileSync(`${o.out}.checkpoint`, checkpoint);
      h.show({ file: o.out, first, events: written, checkpoint: `${o.out}.checkpoint` }, () => `${written} events from seq ${first ?? from} written to ${o.out}; checkpoint in ${o.out}.checkpoint`);
    });

  journal.command('prove')
    .description('an offline proof bundle (event, inclusion proof, signed checkpoint) an auditor can check without the gateway')
    .argument('<seq>')
    .option('--out <file>', 'write the bundle here instead of printing it')
    .action(async (seq: string, o: { out?: string }) => {
      const bundle = await h.call('journal.prove', { seq: intArg('seq', seq) });
      const text = JSON.stringify(bundle, null, 2);
      if (o.out) writeFileSync(o.out, `${text}\n`);
      h.show(bundle, () => (o.out ? `proof bundle for seq ${seq} written to ${o.out}` : text));
    });

  journal.command('verify-bundle')
    .description('offline: check a proof bundle against the pinned appliance key')
    .argument('<file>')
    .requiredOption('--vkey <key|file>', 'the appliance key you pinned')
    .action(async (file: string, o: { vkey: string }) => {
      const { verifyBundle } = await import('../journal/verify.ts');
      const r = verifyBundle(JSON.parse(readFileSync(file, 'utf8')), vkeyArg(o.vkey));
      h.show(r, () => (r.ok ? 'bundle OK: the event is in the journal the signed checkpoint commits to' : `bundle BAD: ${r.problem}`));
      if (!r.ok) h.setExit(1);
    });

  journal.command('verify-export')
    .description('offline: check exported or pulled JSON lines against a signed checkpoint and the pinned key')
    .argument('<file>')
    .requiredOption('--vkey <key|file>', 'the appliance key you pinned')
    .option('--checkpoint <file>', 'signed checkpoint (default FILE.checkpoint)')
    .option('--start <seq>', 'seq of the first line', '0')
    .action(async (file: string, o: { vkey: string; checkpoint?: string; start: string }) => {
      const { verifyExport } = await import('../journal/verify.ts');
      const r = verifyExport({
        lines: readFileSync(file, 'utf8').split('\n'),
        checkpointNote: readFileSync(o.checkpoint ?? `${file}.checkpoint`, 'utf8'),
        vkey: vkeyArg(o.vkey),
        startSeq: intArg('--start', o.start)!,
      });
      h.show(r, () => (r.ok ? 'export OK: every event present, in order, unaltered' : `export BAD${'seq' in r && r.seq !== undefined ? ` at seq ${r.seq}` : ''}: ${r.problem}`));
      if (!r.ok) h.setExit(1);
    });

  journal.command('pull')
    .description('pull from an appliance over mutual TLS, verify every proof and signature, append to JSON-lines files; resumes')
    .argument('<url>', 'e.g. https://gateway:8443')
    .requiredOption('--cert <file>', 'client certificate (PEM)')
    .requiredOption('--key <file>', 'client key (PEM)')
    .requiredOption('--ca <file>', 'CA that signed the appliance certificate')
    .requiredOption('--out <dir>', 'output directory (state.json, events-NNNNNN.jsonl, checkpoints/)')
    .requiredOption('--vkey <key|file>', 'the appliance key you pinned out of band')
    .option('--page-size <n>', 'events per request')
    .action(async (url: string, o: { cert: string; key: string; ca: string; out: string; vkey: string; pageSize?: string }) => {
      const { runPullCommand } = await import('../sync/puller.ts');
      const pageSize = intArg('--page-size', o.pageSize);
      const r = await runPullCommand({ url, cert: o.cert, key: o.key, ca: o.ca, out: o.out, vkey: o.vkey, ...(pageSize !== undefined ? { pageSize } : {}) });
      h.show(r, () => `pulled ${r.pulled} events; holding ${r.cursor} of ${r.treeSize}, verified against checkpoint size ${r.checkpoint.size}${r.complete ? '' : ' (more to pull)'}`);
    });
}
