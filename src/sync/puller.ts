// The reference puller central PAM integrators copy. One call of `pull`:
//
//  1. fetch the latest checkpoint and verify its signature against the PINNED appliance key
//     (never a key fetched from the appliance);
//  2. if a checkpoint is already held: a smaller tree is a rollback, a different root at the same
//     size or a failed consistency proof is a fork — refuse, name the sizes, keep nothing;
//  3. fetch events from the local cursor in pages, each exactly the next seq; extend the compact
//     Merkle state with their leaf hashes and prove the new prefix is part of the signed tree
//     (a consistency proof from the prefix size to the checkpoint size, or the root itself at the
//     end) BEFORE anything is written; on a mismatch, narrow it down to the first bad seq;
//  4. append the page to the JSON-lines files, fsync, then advance state.json atomically;
//  5. acknowledge what is durably held, so the appliance's retention may move on.
//
// Anything the appliance sends is untrusted until proven against the pinned key. A transport failure
// (appliance gone, restarted mid-pull) throws a retryable PS_SYNC_UNAVAILABLE; calling pull again
// resumes from state.json without re-reading what is held.
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { PenstockError } from '../common/errors.ts';
import { equalBytes, leafHash, verifyConsistency } from '../journal/merkle.ts';
import type { TreeBuilder } from '../journal/merkle.ts';
import { SyncClient } from './client.ts';
import { pemOrFile } from './pem.ts';
import { DEFAULT_EVENTS_PER_FILE, PullStore } from './store.ts';
import { checkVkey, verifyCheckpointNote } from './verify.ts';
import type { VerifiedCheckpoint } from './verify.ts';
import type { WireCheckpoint } from './types.ts';

export interface PullOptions {
  /** Appliance base URL, https://host:port */
  url: string;
  /** Client certificate, key and the CA that signed the appliance's server certificate: PEM text or paths. */
  cert: string;
  key: string;
  ca: string;
  outDir: string;
  /** The appliance's note verifier key (C2SP vkey), pinned out of band. */
  vkey: string;
  log?: Logger;
  /** Events per request (the appliance caps it with its own page size). */
  pageSize?: number;
  /** Events per JSON-lines file; fixed when the directory is first used. */
  eventsPerFile?: number;
  timeoutMs?: number;
  /** Called after each page is durably stored (progress; tests stop a pull here). */
  onPage?: (p: { cursor: number; treeSize: number }) => void;
  /** Stop cleanly after this many pages (the rest is fetched by the next pull). */
  maxPages?: number;
}

export interface PullSummary {
  /** Events pulled by this call. */
  pulled: number;
  /** Events held in outDir (seq 0 .. cursor-1). */
  cursor: number;
  /** Size of the newest verified checkpoint. */
  treeSize: number;
  checkpoint: { size: number; rootHash: string; note: string };
  /** The appliance's acknowledged position after our ack (undefined when nothing is held yet). */
  acknowledged: number | undefined;
  /** True when events up to the checkpoint are all held. */
  complete: boolean;
}

const noopLog = { info: () => {}, warn: () => {}, debug: () => {} } as unknown as Logger;

function b64(h: Uint8Array): string {
  return Buffer.from(h).toString('base64');
}

export async function pull(opts: PullOptions): Promise<PullSummary> {
  const log = opts.log ?? noopLog;
  const pageSize = Math.max(1, Math.floor(opts.pageSize ?? 1000));
  checkVkey(opts.vkey);
  const client = new SyncClient({
    url: opts.url,
    cert: pemOrFile(opts.cert, '--cert'),
    key: pemOrFile(opts.key, '--key'),
    ca: pemOrFile(opts.ca, '--ca'),
    ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
  });
  let store: PullStore;
  try {
    store = PullStore.open(opts.outDir, opts.eventsPerFile ?? DEFAULT_EVENTS_PER_FILE);
  } catch (err) {
    client.close();
    throw err;
  }
  try {
    const served = await client.checkpoint();
    const cp = checkServedCheckpoint(served, opts.vkey);
    await checkAgainstHeld(client, store, cp);
    if (!store.state.checkpoint || store.state.checkpoint.size < cp.size) {
      store.saveCheckpoint({ size: cp.size, root_hash: b64(cp.rootHash), note: served.note }, cp.origin);
      log.info({ size: cp.size }, 'pull: new checkpoint verified');
    }

    let pulled = 0;
    let pages = 0;
    while (store.cursor < cp.size && (opts.maxPages === undefined || pages < opts.maxPages)) {
      const from = store.cursor;
      const want = Math.min(pageSize, cp.size - from);
      const page = await client.events(from, want);
      if (page.events.length === 0) {
        throw new PenstockError('PS_SYNC_BAD_RESPONSE', `appliance sent no events from seq ${from} although its checkpoint has ${cp.size}`, { seq: from, checkpointSize: cp.size });
      }
      // Only events the checkpoint covers; any beyond it wait for the next checkpoint.
      const events = page.events.slice(0, want);
      const texts: string[] = [];
      const tree = store.tree();
      for (const [i, e] of events.entries()) {
        const seq = from + i;
        if (e.seq !== seq) {
          throw new PenstockError('PS_SYNC_MISMATCH', `appliance sent seq ${e.seq} where seq ${seq} was next`, { seq, got: e.seq, checkpointSize: cp.size });
        }
        checkEventText(e.event, seq, cp.size);
        tree.push(leafHash(Buffer.from(e.event, 'utf8')));
        texts.push(e.event);
      }
      if (!(await prefixMatches(client, tree, cp))) {
        const bad = await firstBadSeq(client, store.tree(), texts, cp);
        throw new PenstockError('PS_SYNC_MISMATCH', `event seq ${bad} does not match the checkpoint of size ${cp.size}`, { seq: bad, checkpointSize: cp.size });
      }
      // Verified; now durable (files, then state.json).
      store.appendEvents(texts, tree);
      pulled += texts.length;
      pages++;
      opts.onPage?.({ cursor: store.cursor, treeSize: cp.size });
    }

    let acknowledged: number | undefined;
    if (store.cursor > 0) {
      const heldCp = store.state.checkpoint!;
      acknowledged = await client.ack(store.cursor - 1, heldCp.size);
    }
    log.info({ pulled, cursor: store.cursor, treeSize: cp.size }, 'pull: done');
    const held = store.state.checkpoint!;
    return {
      pulled,
      cursor: store.cursor,
      treeSize: cp.size,
      checkpoint: { size: held.size, rootHash: held.root_hash, note: held.note },
      acknowledged,
      complete: store.cursor === cp.size,
    };
  } finally {
    store.close();
    client.close();
  }
}

function checkServedCheckpoint(served: WireCheckpoint, vkey: string): VerifiedCheckpoint {
  const cp = verifyCheckpointNote(served.note, vkey);
  // The note is what is signed; the JSON fields beside it must say the same.
  if (served.size !== cp.size || served.root_hash !== b64(cp.rootHash)) {
    throw new PenstockError('PS_SYNC_BAD_RESPONSE', `checkpoint fields (size ${served.size}) differ from its signed note (size ${cp.size})`, { size: served.size, noteSize: cp.size });
  }
  if (cp.size === 0) throw new PenstockError('PS_SYNC_BAD_RESPONSE', 'appliance served a checkpoint of the empty tree', { size: 0 });
  return cp;
}

async function checkAgainstHeld(client: SyncClient, store: PullStore, cp: VerifiedCheckpoint): Promise<void> {
  const held = store.state.checkpoint;
  if (!held) return;
  if (store.state.origin !== null && store.state.origin !== cp.origin) {
    throw new PenstockError('PS_SYNC_FORK', `checkpoint origin "${cp.origin}" is not the origin held ("${store.state.origin}")`, { heldOrigin: store.state.origin, origin: cp.origin });
  }
  const heldRoot = new Uint8Array(Buffer.from(held.root_hash, 'base64'));
  if (cp.size < held.size) {
    throw new PenstockError('PS_SYNC_ROLLBACK', `appliance serves a tree of size ${cp.size}, smaller than the checkpoint of size ${held.size} already held`, { heldSize: held.size, servedSize: cp.size });
  }
  if (cp.size === held.size) {
    if (!equalBytes(heldRoot, cp.rootHash)) {
      throw new PenstockError('PS_SYNC_FORK', `checkpoint of size ${cp.size} has a different root than the one held`, { heldSize: held.size, servedSize: cp.size });
    }
    return;
  }
  const proof = await client.consistencyProof(held.size, cp.size);
  if (!verifyConsistency(held.size, cp.size, heldRoot, cp.rootHash, proof)) {
    throw new PenstockError('PS_SYNC_FORK', `checkpoint of size ${cp.size} is not consistent with the checkpoint of size ${held.size} already held`, { heldSize: held.size, servedSize: cp.size });
  }
}

/** Events become one line each: anything that is not a single line of JSON cannot be stored as such. */
function checkEventText(text: string, seq: number, checkpointSize: number): void {
  if (/[\n\r]/.test(text)) {
    throw new PenstockError('PS_SYNC_BAD_RESPONSE', `event seq ${seq} contains a line break`, { seq, checkpointSize });
  }
}

/** Does the tree of the held events plus this page form a prefix of the signed tree? */
async function prefixMatches(client: SyncClient, tree: TreeBuilder, cp: VerifiedCheckpoint): Promise<boolean> {
  if (tree.size === cp.size) return equalBytes(tree.root(), cp.rootHash);
  const proof = await client.consistencyProof(tree.size, cp.size);
  return verifyConsistency(tree.size, cp.size, tree.root(), cp.rootHash, proof);
}

/**
 * The page [start, start + texts.length) failed. The prefix up to `start` was proven earlier, so the
 * smallest m in (start, end] whose prefix fails says seq m-1 is the first bad event: binary search,
 * O(log page) proofs.
 */
async function firstBadSeq(client: SyncClient, base: TreeBuilder, texts: string[], cp: VerifiedCheckpoint): Promise<number> {
  const start = base.size;
  const leaves = texts.map((t) => leafHash(Buffer.from(t, 'utf8')));
  const prefixOk = async (m: number): Promise<boolean> => {
    const t = base.clone();
    for (let i = 0; i < m - start; i++) t.push(leaves[i]!);
    return prefixMatches(client, t, cp);
  };
  let lo = start + 1;
  let hi = start + texts.length; // known to fail
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (await prefixOk(mid)) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

export interface PullCommandArgs {
  url: string;
  cert: string;
  key: string;
  ca: string;
  out: string;
  /** The pinned vkey itself, or a path to a file holding it. */
  vkey: string;
  pageSize?: number;
  log?: Logger;
}

/** `penstockctl journal pull URL --cert … --key … --ca … --out DIR --vkey …`: returns data, prints nothing. */
export async function runPullCommand(args: PullCommandArgs): Promise<PullSummary> {
  return pull({
    url: args.url,
    cert: args.cert,
    key: args.key,
    ca: args.ca,
    outDir: args.out,
    vkey: vkeyOrFile(args.vkey),
    ...(args.pageSize === undefined ? {} : { pageSize: args.pageSize }),
    ...(args.log === undefined ? {} : { log: args.log }),
  });
}

const VKEY = /^[^\s+]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$/;

function vkeyOrFile(value: string): string {
  if (VKEY.test(value.trim())) return value.trim();
  let text: string;
  try {
    text = readFileSync(value, 'utf8').trim();
  } catch (err) {
    throw new PenstockError('PS_CONFIG_READ', `--vkey is neither a verifier key nor a readable file: ${value}`, { vkey: value }, { cause: err });
  }
  if (!VKEY.test(text)) throw new PenstockError('PS_CONFIG_INVALID', `${value} does not hold a verifier key (name+hash+key)`, { path: value });
  return text;
}
