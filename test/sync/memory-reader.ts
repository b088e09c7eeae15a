// A small in-memory JournalReaderLike for sync tests that need a journal to misbehave (a fork with the
// same key, a byte flipped in transit). Built on the journal's own pure Merkle and note functions.
import { canonicalJson } from '../../src/journal/canonical.ts';
import { consistencyProof, inclusionProof, leafHash, MemoryTree, rootAt } from '../../src/journal/merkle.ts';
import { generateSigningKeyPem, NoteSigner } from '../../src/journal/checkpoint.ts';
import type { CheckpointInfo, JournalEventBytes, JournalReaderLike } from '../../src/sync/types.ts';

/** A fresh appliance signing key (Ed25519 PKCS#8 PEM). */
export function testSigningKeyPem(): string {
  return generateSigningKeyPem();
}

export function testSigner(name = 'gw-test.plant.example'): NoteSigner {
  return new NoteSigner(name, testSigningKeyPem());
}

export class MemoryJournal implements JournalReaderLike {
  readonly events: string[] = [];
  readonly tree = new MemoryTree();
  readonly checkpoints = new Map<number, CheckpointInfo>();
  readonly storedCosignatures: string[] = [];
  readonly acks: { seq: number; by: string }[] = [];
  readonly signer: NoteSigner;
  #latest: CheckpointInfo | undefined;
  #acknowledged = -1;

  constructor(signer: NoteSigner) {
    this.signer = signer;
  }

  /** Appends events with a distinguishing `tag` (forks differ by tag) and signs a checkpoint. */
  append(count: number, tag = 'main'): void {
    this.appendUnsigned(count, tag);
    this.checkpoint();
  }

  /** Appends events without signing a checkpoint (the tree runs ahead of the latest checkpoint). */
  appendUnsigned(count: number, tag = 'main'): void {
    for (let i = 0; i < count; i++) {
      const seq = this.events.length;
      const bytes = canonicalJson({ seq, event: 'admin.request', code: 'PS6001I', detail: { tag, n: seq, text: `ünïcode ${seq}` } });
      this.events.push(bytes);
      this.tree.leaves.push(leafHash(Buffer.from(bytes, 'utf8')));
    }
  }

  checkpoint(): CheckpointInfo {
    const size = this.events.length;
    const root = rootAt(this.tree, size);
    const cp = { size, rootHash: Buffer.from(root).toString('base64'), note: this.signer.checkpoint(size, root) };
    this.checkpoints.set(size, cp);
    this.#latest = cp;
    return cp;
  }

  size(): number {
    return this.events.length;
  }

  readEvents(fromSeq: number, limit: number): JournalEventBytes[] {
    return this.events.slice(fromSeq, fromSeq + limit).map((bytes, i) => ({ seq: fromSeq + i, bytes }));
  }

  inclusionProof(seq: number, treeSize: number): Uint8Array[] {
    return inclusionProof(this.tree, seq, treeSize);
  }

  consistencyProof(oldSize: number, newSize: number): Uint8Array[] {
    return consistencyProof(this.tree, oldSize, newSize);
  }

  latestCheckpoint(): CheckpointInfo | undefined {
    return this.#latest;
  }

  /** Serve an older checkpoint as the latest (rollback). */
  setLatest(size: number): void {
    this.#latest = this.checkpoints.get(size);
  }

  checkpointFor(size: number): CheckpointInfo | undefined {
    return this.checkpoints.get(size);
  }

  async acknowledge(seq: number, by: string): Promise<void> {
    this.acks.push({ seq, by });
    this.#acknowledged = Math.max(this.#acknowledged, seq);
  }

  acknowledged(): number {
    return this.#acknowledged;
  }

  addCosignature(note: string): void {
    this.storedCosignatures.push(note);
  }

  cosignatures(size: number): string[] {
    return this.storedCosignatures.filter((n) => n.split('\n')[1] === String(size));
  }

  firstRetained(): number {
    return 0;
  }

  publicKeyVkey(): string {
    return this.signer.vkey;
  }
}

/** Wraps a reader and flips one byte of the event at `seq` on its way out (tampering in transit). */
export function tamperingReader(inner: JournalReaderLike, seq: number): JournalReaderLike {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'readEvents') {
        return (from: number, limit: number) => target.readEvents(from, limit).map((e) => {
          if (e.seq !== seq) return e;
          // Change one character inside the event (keep it valid JSON: a digit in the text).
          const i = e.bytes.lastIndexOf(String(seq));
          const flipped = String.fromCharCode(e.bytes.charCodeAt(i) ^ 1);
          return { seq: e.seq, bytes: e.bytes.slice(0, i) + flipped + e.bytes.slice(i + 1) };
        });
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
