// CreateMonitoredItems with per-item enforcement. node-opcua checks no permission when a monitored item
// is created (and its onCreateMonitoredItem hook cannot refuse one), so the gateway answers this service
// itself: each item on a gateway variable's Value becomes an Action `subscribe`; a refused item gets
// BadUserAccessDenied in its result while the others are created. An accepted item is fed by a local
// watch shared by every item on the node, itself fed by ONE upstream monitored item (gateway.ts).
// The data changes each subscription actually sends are counted per session and node into the
// session's read aggregate (kind: notification), from the subscription's own `notification` event.
//
// This replaces OPCUAServer#_on_CreateMonitoredItemsRequest on the gateway's server instance only; the
// body mirrors node-opcua 2.186's own (validation, limits, pre/post create), with the check inserted.
import {
  AttributeIds,
  CreateMonitoredItemsResponse,
  DataChangeNotification,
  MonitoredItemCreateResult,
  StatusCodes,
  TimestampsToReturn,
  type MonitoredItemCreateRequest,
  type NotificationMessage,
  type OPCUAServer,
  type StatusCode,
} from 'node-opcua';
import type { Authorization, WireRequest } from '../../core/core.ts';
import type { Action } from '../../policy/types.ts';
import type { OpcuaGateway } from './gateway.ts';
import { refusalStatusName } from './refusals.ts';

interface MonitoredItemLike {
  clientHandle: number;
}

interface SubscriptionLike {
  /** The node-opcua session the subscription belongs to now (TransferSubscriptions can move it). */
  $session?: object;
  preCreateMonitoredItem(addressSpace: unknown, ts: TimestampsToReturn, req: MonitoredItemCreateRequest): { monitoredItem?: MonitoredItemLike; createResult: MonitoredItemCreateResult };
  postCreateMonitoredItem(item: MonitoredItemLike, req: MonitoredItemCreateRequest, result: MonitoredItemCreateResult): void;
  on(event: 'removeMonitoredItem', fn: (item: MonitoredItemLike) => void): void;
  on(event: 'notification', fn: (message: NotificationMessage) => void): void;
}

/**
 * One subscription's items on gateway variables, for counting what it delivers to its session — the
 * session it belongs to when it delivers: node-opcua lets the same user move a subscription to another
 * session (TransferSubscriptions), which is then another Penstock session.
 */
class DeliveryCounter {
  readonly #gw: OpcuaGateway;
  readonly #subscription: SubscriptionLike;
  readonly #items = new Map<MonitoredItemLike, Action>();

  constructor(gw: OpcuaGateway, subscription: SubscriptionLike) {
    this.#gw = gw;
    this.#subscription = subscription;
  }

  add(item: MonitoredItemLike, action: Action): void {
    this.#items.set(item, action);
  }

  remove(item: MonitoredItemLike): void {
    this.#items.delete(item);
  }

  /** Count the data changes of one notification message, by node (client handles can be modified). */
  count(message: NotificationMessage): void {
    const session = this.#gw.sessionOf({ session: this.#subscription.$session });
    if (this.#items.size === 0 || !session) return;
    let byHandle: Map<number, Action> | undefined;
    const counts = new Map<Action, number>();
    for (const data of message.notificationData ?? []) {
      if (!(data instanceof DataChangeNotification)) continue;
      for (const n of data.monitoredItems ?? []) {
        byHandle ??= new Map([...this.#items].map(([item, action]) => [item.clientHandle, action]));
        const action = byHandle.get(n.clientHandle);
        if (action) counts.set(action, (counts.get(action) ?? 0) + 1);
      }
    }
    for (const [action, n] of counts) this.#gw.core.recordDeliveries(session, action, n);
  }
}

interface ServerInternals {
  engine: { addressSpace: unknown; serverCapabilities: { operationLimits: { maxMonitoredItemsPerCall: number } } };
  _apply_on_Subscription(
    responseClass: typeof CreateMonitoredItemsResponse,
    message: { request: { timestampsToReturn: TimestampsToReturn; itemsToCreate?: MonitoredItemCreateRequest[] | null } },
    channel: unknown,
    action: (session: object, subscription: SubscriptionLike, sendResponse: (r: CreateMonitoredItemsResponse) => void, sendError: (s: StatusCode) => void) => Promise<void>,
  ): Promise<void>;
  _on_CreateMonitoredItemsRequest(message: unknown, channel: unknown): void;
}

const hooked = new WeakSet<object>();

export function enforceMonitoredItems(server: OPCUAServer, gw: OpcuaGateway): void {
  const internals = server as unknown as ServerInternals;
  if (typeof internals._apply_on_Subscription !== 'function' || typeof internals._on_CreateMonitoredItemsRequest !== 'function') {
    // Fail closed: without the hook, subscriptions would bypass policy.
    throw new Error('node-opcua server internals changed: cannot enforce policy on monitored items');
  }
  const releases = new WeakMap<object, () => void>();
  const counters = new WeakMap<object, DeliveryCounter>();
  internals._on_CreateMonitoredItemsRequest = function (message, channel) {
    const msg = message as Parameters<ServerInternals['_apply_on_Subscription']>[1];
    const request = msg.request;
    void internals._apply_on_Subscription(CreateMonitoredItemsResponse, msg, channel, async (serverSession, subscription, sendResponse, sendError) => {
      const addressSpace = internals.engine.addressSpace;
      if (request.timestampsToReturn === TimestampsToReturn.Invalid) return sendError(StatusCodes.BadTimestampsToReturnInvalid);
      const items = request.itemsToCreate ?? [];
      if (items.length === 0) return sendError(StatusCodes.BadNothingToDo);
      const limit = internals.engine.serverCapabilities.operationLimits.maxMonitoredItemsPerCall;
      if (limit > 0 && items.length > limit) return sendError(StatusCodes.BadTooManyOperations);
      const session = gw.sessionOf({ session: serverSession });
      if (!hooked.has(subscription)) {
        hooked.add(subscription);
        const counter = new DeliveryCounter(gw, subscription);
        counters.set(subscription, counter);
        subscription.on('removeMonitoredItem', (item) => {
          releases.get(item)?.();
          releases.delete(item);
          counter.remove(item);
        });
        subscription.on('notification', (message) => counter.count(message));
      }
      const results: MonitoredItemCreateResult[] = [];
      const wire: WireRequest = {};
      for (const req of items) {
        const at = gw.locate(req.itemToMonitor.nodeId);
        const feeds = at !== undefined && at.node.nodeClass === 'Variable' && req.itemToMonitor.attributeId === AttributeIds.Value;
        let auth: Authorization | undefined;
        if (at) {
          if (!session) {
            results.push(new MonitoredItemCreateResult({ statusCode: StatusCodes.BadUserAccessDenied }));
            continue;
          }
          if (feeds) {
            const verdict = await gw.core.authorize(session, gw.subscribeAction(at.node), { request: wire });
            if (!verdict.authorization) {
              results.push(new MonitoredItemCreateResult({ statusCode: StatusCodes[refusalStatusName(verdict.reason)] }));
              continue;
            }
            auth = verdict.authorization;
          } else if (!gw.visible(session, at.node)) {
            results.push(new MonitoredItemCreateResult({ statusCode: StatusCodes.BadUserAccessDenied }));
            continue;
          }
        }
        // The local watch first, so the item's initial value is a current one from upstream. It goes
        // upstream only with the item's Authorization; one that fails its check is a bug, and the item
        // is not created.
        let watch: ReturnType<OpcuaGateway['watchLocal']> | undefined;
        if (at && feeds && session) {
          try {
            watch = gw.watchLocal(at, session, auth!);
          } catch (err) {
            gw.core.log.error({ node: at.node.gatewayId, err: (err as Error).message }, 'opcua monitored item not forwarded');
            results.push(new MonitoredItemCreateResult({ statusCode: StatusCodes.BadInternalError }));
            continue;
          }
        }
        await watch?.first;
        let created: ReturnType<SubscriptionLike['preCreateMonitoredItem']>;
        try {
          created = subscription.preCreateMonitoredItem(addressSpace, request.timestampsToReturn, req);
        } catch (err) {
          watch?.release();
          throw err;
        }
        const { monitoredItem, createResult } = created;
        if (monitoredItem) {
          subscription.postCreateMonitoredItem(monitoredItem, req, createResult);
          if (at && watch) {
            releases.set(monitoredItem, watch.release);
            counters.get(subscription)?.add(monitoredItem, gw.subscribeAction(at.node));
          }
        } else {
          watch?.release();
        }
        results.push(createResult);
      }
      sendResponse(new CreateMonitoredItemsResponse({ responseHeader: { serviceResult: StatusCodes.Good }, results }));
    });
  };
}
