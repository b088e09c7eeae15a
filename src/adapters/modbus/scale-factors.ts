// Run-time scale factors for the bounds of a write. SunSpec devices scale many setpoints by another
// register of the device (`controls.WMaxLimPct_SF`: value = raw x 10^SF), so policy can only compare a
// written value with bounds in engineering units once the gateway knows the factor. Before a write that
// touches such a point is decided, the gateway reads the factor register itself, on the target's shared
// link (the principal never sees it), and hands the exponent to policy with the action; it is journaled
// with the decision. Factors are fixed per device and firmware, so each is read at most once a minute
// per link. A factor that cannot be read, or is not -10..10 (0x8000 is SunSpec's "not implemented"),
// stays unknown, and policy then refuses a bounded write to the point.
import type { FirmwareProfile } from '../../config/types.ts';
import { modbusPoints, type ModbusObject } from './rules.ts';
import type { GatewayRead, Upstream } from './upstream.ts';

const FRESH_MS = 60_000;

interface Known {
  exponent: number | undefined;
  atMs: number;
}

/** Per link: the factors read so far (by unit and factor point), so sessions on one target share them. */
const cache = new WeakMap<Upstream, Map<string, Known>>();

/** The factors the points this write touches are scaled by, read from the device when not fresh. */
export async function scaleFactorsFor(o: ModbusObject, profile: FirmwareProfile | undefined, upstream: Upstream, session: string, nowMs: number): Promise<Record<string, number> | undefined> {
  if (!profile || !o.values || o.table !== 'holding_register') return undefined;
  const from = o.address;
  const to = o.address + o.quantity - 1;
  const names = new Set(modbusPoints(profile).filter((p) => p.scale_factor && p.table === 'holding_register' && p.address! <= to && p.address! + p.words - 1 >= from).map((p) => p.scale_factor!));
  if (names.size === 0) return undefined;
  let known = cache.get(upstream);
  if (!known) cache.set(upstream, (known = new Map()));
  const out: Record<string, number> = {};
  for (const name of names) {
    const key = `${o.unit}:${name}`;
    let k = known.get(key);
    if (!k || nowMs - k.atMs >= FRESH_MS) {
      k = { exponent: await readExponent(profile, name, o.unit, upstream, session), atMs: nowMs };
      // A failed read is not remembered: the next write tries again.
      if (k.exponent !== undefined) known.set(key, k);
    }
    if (k.exponent !== undefined) out[name] = k.exponent;
  }
  return out;
}

async function readExponent(profile: FirmwareProfile, name: string, unit: number, upstream: Upstream, session: string): Promise<number | undefined> {
  const point = modbusPoints(profile).find((p) => p.name === name);
  if (!point || point.address === undefined) return undefined;
  const req: GatewayRead = { kind: 'read_registers', fc: 3, address: point.address, quantity: 1 };
  const reply = await upstream.gatewayRead(session, unit, req);
  if (!reply.ok || !('values' in reply.response) || !Array.isArray(reply.response.values)) return undefined;
  const raw = reply.response.values[0]!;
  const exponent = raw >= 0x8000 ? raw - 0x10000 : raw;
  return exponent >= -10 && exponent <= 10 ? exponent : undefined;
}
