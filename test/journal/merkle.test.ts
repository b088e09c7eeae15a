import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  MemoryTree,
  TreeBuilder,
  consistencyProof,
  frontierAt,
  inclusionProof,
  leafHash,
  nodeHash,
  rootAt,
  verifyConsistency,
  verifyInclusion,
} from '../../src/journal/merkle.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

// certificate-transparency (Go and C++) merkle test vectors.
const CT_LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(fromHex);
const CT_ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
// CT's inclusion vectors (leaf index, tree size, path).
const CT_INCLUSION: [number, number, string[]][] = [
  [0, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [5, 8, ['bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [2, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [0, 5, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
];
// CT's consistency vectors (old size, new size, proof).
const CT_CONSISTENCY: [number, number, string[]][] = [
  [1, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [6, 8, ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [2, 5, ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
];

test('RFC 6962 test vectors: roots of the certificate-transparency leaves for sizes 0..8', () => {
  const tree = new MemoryTree(CT_LEAVES.map(leafHash));
  assert.equal(hex(rootAt(tree, 0)), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  const builder = new TreeBuilder();
  CT_LEAVES.forEach((leaf, i) => {
    builder.push(leafHash(leaf));
    assert.equal(hex(rootAt(tree, i + 1)), CT_ROOTS[i], `root of size ${i + 1}`);
    assert.equal(hex(builder.root()), CT_ROOTS[i], `incremental root of size ${i + 1}`);
  });
});

test('RFC 6962 test vectors: inclusion and consistency proofs', () => {
  const tree = new MemoryTree(CT_LEAVES.map(leafHash));
  for (const [index, size, path] of CT_INCLUSION) {
    assert.deepEqual(inclusionProof(tree, index, size).map(hex), path, `PATH(${index}, ${size})`);
    assert.ok(verifyInclusion(index, size, leafHash(CT_LEAVES[index]!), path.map(fromHex), fromHex(CT_ROOTS[size - 1]!)));
  }
  for (const [m, n, proof] of CT_CONSISTENCY) {
    assert.deepEqual(consistencyProof(tree, m, n).map(hex), proof, `PROOF(${m}, ${n})`);
    assert.ok(verifyConsistency(m, n, fromHex(CT_ROOTS[m - 1]!), fromHex(CT_ROOTS[n - 1]!), proof.map(fromHex)));
  }
});

const N = 64;
const leaves = Array.from({ length: 300 }, (_, i) => leafHash(Buffer.from(`leaf-${i}`)));
const tree = new MemoryTree(leaves);

test('roots and proofs match an independent Python hashlib implementation for every pair up to 64', () => {
  const script = fileURLToPath(new URL('./fixtures/rfc6962.py', import.meta.url));
  const ref = JSON.parse(execFileSync('/usr/bin/python3', [script, String(N)], { maxBuffer: 64 * 1024 * 1024 }).toString()) as {
    roots: string[];
    inclusion: Record<string, string[]>;
    consistency: Record<string, string[]>;
  };
  for (let n = 0; n <= N; n++) assert.equal(hex(rootAt(tree, n)), ref.roots[n], `root ${n}`);
  let checked = 0;
  for (let n = 1; n <= N; n++) {
    for (let m = 0; m < n; m++) {
      assert.deepEqual(inclusionProof(tree, m, n).map(hex), ref.inclusion[`${m}/${n}`], `PATH(${m}, ${n})`);
      checked++;
    }
    for (let m = 1; m < n; m++) {
      assert.deepEqual(consistencyProof(tree, m, n).map(hex), ref.consistency[`${m}/${n}`], `PROOF(${m}, ${n})`);
      checked++;
    }
  }
  assert.equal(checked, (N * (N + 1)) / 2 + (N * (N - 1)) / 2);
});

function flip(proof: Uint8Array[], i: number): Uint8Array[] {
  return proof.map((p, j) => (j === i ? Uint8Array.from(p, (b, k) => (k === 0 ? b ^ 1 : b)) : p));
}

test('inclusion proofs verify for every leaf of every size up to 300 (all up to 64, sampled above) and wrong ones are refused', () => {
  for (let n = 1; n <= 300; n++) {
    const root = rootAt(tree, n);
    const indices = n <= N ? Array.from({ length: n }, (_, i) => i) : [0, 1, n >> 1, n - 2, n - 1, (n * 7) % n];
    for (const m of indices) {
      const proof = inclusionProof(tree, m, n);
      assert.ok(verifyInclusion(m, n, leaves[m]!, proof, root), `inclusion ${m}/${n}`);
      if (n > 1) {
        assert.ok(!verifyInclusion(m, n, leaves[(m + 1) % n]!, proof, root), `wrong leaf ${m}/${n}`);
        assert.ok(!verifyInclusion(m, n, leaves[m]!, flip(proof, proof.length - 1), root), `altered proof ${m}/${n}`);
        assert.ok(!verifyInclusion(m, n, leaves[m]!, proof.slice(0, -1), root), `short proof ${m}/${n}`);
        if ((m ^ 1) < n) assert.ok(!verifyInclusion(m ^ 1, n, leaves[m]!, proof, root), `wrong index ${m}/${n}`);
      }
    }
  }
});

test('consistency proofs verify for all pairs up to 64 and sampled pairs up to 300; wrong ones are refused', () => {
  const pairs: [number, number][] = [];
  for (let n = 1; n <= N; n++) for (let m = 1; m <= n; m++) pairs.push([m, n]);
  for (let n = N + 1; n <= 300; n += 7) for (const m of [1, 2, 31, 32, 33, 63, 64, n >> 1, n - 1, n]) pairs.push([m, n]);
  for (const [m, n] of pairs) {
    const proof = consistencyProof(tree, m, n);
    const a = rootAt(tree, m);
    const b = rootAt(tree, n);
    assert.ok(verifyConsistency(m, n, a, b, proof), `consistency ${m}/${n}`);
    if (m < n) {
      assert.ok(!verifyConsistency(m, n, a, rootAt(tree, n - 1), proof), `wrong new root ${m}/${n}`);
      assert.ok(!verifyConsistency(m, n, nodeHash(a, a), b, proof), `wrong old root ${m}/${n}`);
      assert.ok(!verifyConsistency(m, n, a, b, flip(proof, 0)), `altered proof ${m}/${n}`);
      assert.ok(!verifyConsistency(m, n, a, b, []), `empty proof ${m}/${n}`);
    }
  }
});

test('the incremental builder reports every perfect node and resumes from a frontier', () => {
  const stored = new Map<string, string>();
  const b = new TreeBuilder();
  for (let i = 0; i < 300; i++) {
    b.push(leaves[i]!, (level, index, h) => stored.set(`${level}:${index}`, hex(h)));
    if (i === 149) {
      const resumed = new TreeBuilder(150, frontierAt(tree, 150));
      assert.equal(hex(resumed.root()), hex(b.root()));
    }
  }
  for (const [key, h] of stored) {
    const [level, index] = key.split(':').map(Number) as [number, number];
    assert.equal(h, hex(tree.node(level, index)), `node ${key}`);
  }
  assert.equal(stored.size, 300 + 150 + 75 + 37 + 18 + 9 + 4 + 2 + 1);
  assert.equal(hex(b.root()), hex(rootAt(tree, 300)));
  assert.throws(() => new TreeBuilder(5, []), RangeError);
});
