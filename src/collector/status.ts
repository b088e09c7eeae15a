// Lag per appliance as JetStream sees it: messages on the appliance's subject after the stored
// position. The durable consumer's counts when it exists; otherwise unknown (null).
import type { CollectorConfig } from './config.ts';
import { connectNats } from './connect.ts';
import { jetstreamManager } from '@nats-io/jetstream';
import { consumerName } from './worker.ts';

/** Messages pending (not yet delivered + delivered but not acknowledged) per appliance; absent when unknown. */
export async function applianceLag(config: CollectorConfig): Promise<Map<string, number>> {
  const nc = await connectNats(config, `penstock-collector ${config.collector.id} status`);
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5000 });
    const out = new Map<string, number>();
    for (const a of config.appliances) {
      try {
        const info = await jsm.consumers.info(config.stream.name, consumerName(a.id));
        out.set(a.id, info.num_pending + info.num_ack_pending);
      } catch {
        // No consumer yet (the appliance was never taken): unknown.
      }
    }
    return out;
  } finally {
    await nc.close();
  }
}
