// The two services besides Browse that tell a client what exists, held to what Browse shows:
//   - TranslateBrowsePathsToNodeIds: a target node the principal may not see is left out of the result,
//     and a path left with no target answers BadNoMatch, exactly as for a path that leads nowhere;
//   - RegisterNodes: node-opcua hands out an alias only for a node that exists, which would tell a
//     hidden node from a missing one; the gateway's nodes are never aliased (the spec lets a server
//     return the node id it was given), so Read/Write decide on the real node id as always.
//
// Like monitored.ts, this replaces OPCUAServer#_on_TranslateBrowsePathsToNodeIdsRequest on the gateway's
// server instance only; the body mirrors node-opcua 2.186's own, with the filter inserted.
import {
  BrowsePathResult,
  NodeId,
  StatusCodes,
  TranslateBrowsePathsToNodeIdsResponse,
  type BrowsePath,
  type OPCUAServer,
  type ServerSession,
  type StatusCode,
} from 'node-opcua';
import type { OpcuaGateway } from './gateway.ts';

interface ServerInternals {
  engine: {
    serverCapabilities: { operationLimits: { maxNodesPerTranslateBrowsePathsToNodeIds: number } };
    translateBrowsePaths(paths: BrowsePath[]): Promise<BrowsePathResult[]>;
  };
  _apply_on_SessionObject(
    responseClass: typeof TranslateBrowsePathsToNodeIdsResponse,
    message: { request: { browsePaths?: BrowsePath[] | null } },
    channel: unknown,
    action: (session: object, sendResponse: (r: TranslateBrowsePathsToNodeIdsResponse) => void, sendError: (s: StatusCode) => void) => Promise<void>,
  ): Promise<void>;
  _on_TranslateBrowsePathsToNodeIdsRequest(message: unknown, channel: unknown): void;
}

export function enforceDiscovery(server: OPCUAServer, gw: OpcuaGateway): void {
  const internals = server as unknown as ServerInternals;
  if (typeof internals._apply_on_SessionObject !== 'function' || typeof internals._on_TranslateBrowsePathsToNodeIdsRequest !== 'function') {
    throw new Error('node-opcua server internals changed: cannot hold TranslateBrowsePaths to what browse shows');
  }
  internals._on_TranslateBrowsePathsToNodeIdsRequest = function (message, channel) {
    const msg = message as Parameters<ServerInternals['_apply_on_SessionObject']>[1];
    const paths = msg.request.browsePaths ?? [];
    void internals._apply_on_SessionObject(TranslateBrowsePathsToNodeIdsResponse, msg, channel, async (serverSession, sendResponse, sendError) => {
      if (paths.length === 0) return sendError(StatusCodes.BadNothingToDo);
      const limit = internals.engine.serverCapabilities.operationLimits.maxNodesPerTranslateBrowsePathsToNodeIds;
      if (limit > 0 && paths.length > limit) return sendError(StatusCodes.BadTooManyOperations);
      let results: BrowsePathResult[];
      try {
        results = await internals.engine.translateBrowsePaths(paths);
      } catch {
        return sendError(StatusCodes.BadInternalError);
      }
      const session = gw.sessionOf({ session: serverSession });
      sendResponse(new TranslateBrowsePathsToNodeIdsResponse({ results: results.map((r) => visibleTargets(gw, session, r)), diagnosticInfos: null }));
    });
  };
}

function visibleTargets(gw: OpcuaGateway, session: ReturnType<OpcuaGateway['sessionOf']>, r: BrowsePathResult): BrowsePathResult {
  const targets = r.targets ?? [];
  const kept = targets.filter((t) => {
    const at = t.targetId.serverIndex || t.targetId.namespaceUri ? undefined : gw.locate(new NodeId(t.targetId.identifierType, t.targetId.value, t.targetId.namespace));
    return !at || (session !== undefined && gw.visible(session, at.node));
  });
  if (kept.length === targets.length) return r;
  return kept.length === 0 ? new BrowsePathResult({ statusCode: StatusCodes.BadNoMatch, targets: [] }) : new BrowsePathResult({ statusCode: r.statusCode, targets: kept });
}

/** Never alias a node of the gateway's own namespace (see above); other nodes keep node-opcua's aliases. */
export function neverAliasGatewayNodes(ss: ServerSession, gatewayNamespace: number): void {
  const register = ss.registerNode.bind(ss);
  ss.registerNode = (nodeId: NodeId) => (nodeId.namespace === gatewayNamespace ? nodeId : register(nodeId));
}
