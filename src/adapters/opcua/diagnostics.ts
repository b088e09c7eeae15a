// The per-session and per-subscription diagnostics node-opcua publishes under Server/ServerDiagnostics,
// taken out of the front door's address space:
//   - memory: for every session node-opcua instantiates a SessionDiagnostics object (~110 nodes, ~0.8 MiB
//     of heap), and for every subscription a SubscriptionDiagnostics variable (~64 nodes, ~0.4 MiB);
//     with 20 sessions, each with a subscription, that was ~24 MiB of the daemon's heap and RSS;
//   - privacy: every authenticated principal could browse the other sessions' entries and read the
//     subscriptions of all of them (SubscriptionDiagnosticsArray), whoever had opened them.
// node-opcua itself skips both when the nodes are absent (it deletes SamplingIntervalDiagnosticsArray the
// same way); the server-wide summary (ServerDiagnosticsSummary: counts of sessions, requests) stays.
// Penstock's own view of the sessions is `penstockctl sessions` and the journal.
import { NodeId, NodeIdType, ObjectIds, VariableIds } from 'node-opcua';

interface DeletableAddressSpace {
  findNode(nodeId: NodeId): object | null;
  deleteNode(node: object): void;
}

const PER_SESSION_DIAGNOSTICS = [
  ObjectIds.Server_ServerDiagnostics_SessionsDiagnosticsSummary,
  VariableIds.Server_ServerDiagnostics_SubscriptionDiagnosticsArray,
].map((id) => new NodeId(NodeIdType.NUMERIC, id, 0));

/** Remove the nodes under which node-opcua would add each session's and subscription's diagnostics. */
export function dropPerSessionDiagnostics(addressSpace: DeletableAddressSpace): void {
  for (const id of PER_SESSION_DIAGNOSTICS) {
    const node = addressSpace.findNode(id);
    if (node) addressSpace.deleteNode(node);
  }
}
