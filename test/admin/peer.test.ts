// Parsing the kernel's socket table as `ss -xpn` prints it, and choosing the operator.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { identifyOperator, parseSsUnix } from '../../src/admin/peer.ts';

// Captured from iproute2 6.1 `ss -xpn` (one admin connection, plus unrelated lines).
const SS_OUTPUT = `Netid State  Recv-Q Send-Q                   Local Address:Port  Peer Address:Port Process
u_str ESTAB  0      0                                    * 29277            * 29278 users:(("penstockctl",pid=8122,fd=21))
u_str ESTAB  0      0           /run/penstock/admin.sock 29278            * 29277 users:(("node",pid=700,fd=31))
u_str ESTAB  0      0       /tmp/dir with space/adm.sock 40001            * 40002 users:(("node",pid=701,fd=9),("node",pid=702,fd=9))
u_dgr UNCONN 0      0                                    * 1654             * 0
u_seq LISTEN 0      4096            /run/udev/control 15 * 0 users:(("systemd-udevd",pid=1,fd=3))
`;

describe('parseSsUnix', () => {
  it('finds both ends of a connection and the processes holding them', () => {
    const t = parseSsUnix(SS_OUTPUT);
    const server = t.get(29278)!;
    assert.equal(server.peer, 29277);
    assert.deepEqual(server.users, [{ command: 'node', pid: 700, fd: 31 }]);
    assert.deepEqual(t.get(29277)!.users, [{ command: 'penstockctl', pid: 8122, fd: 21 }]);
  });

  it('copes with a path holding spaces, shared sockets and sockets nobody is shown holding', () => {
    const t = parseSsUnix(SS_OUTPUT);
    assert.equal(t.get(40001)!.peer, 40002);
    assert.deepEqual(t.get(40001)!.users.map((u) => u.pid), [701, 702]);
    assert.deepEqual(t.get(1654), { inode: 1654, peer: 0, users: [] });
    assert.equal(t.get(15)!.peer, 0);
    assert.equal(t.size, 5, 'the header is not a socket');
  });
});

describe('identifyOperator', () => {
  it('prefers the kernel over the claim, and marks a claim unverified', async () => {
    assert.deepEqual(await identifyOperator({ uid: 0, pid: 1 }, { uid: 4242, user: 'mallory' }), { uid: 0, user: 'root', verified: true });
    assert.deepEqual(await identifyOperator({ failure: 'no ss' }, { uid: 1000, user: 'ana' }), { uid: 1000, user: 'ana', verified: false });
    assert.equal(await identifyOperator({ failure: 'no ss' }, undefined), undefined);
  });
});
