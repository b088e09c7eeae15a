// Run-time scale factors for the bounds of a write. SunSpec devices scale many setpoints by another
// register of the device (`controls.WMaxLimPct_SF`: value = raw x 10^SF), so policy can only compare a
// written value with bounds in engineering units once the gateway knows the factor. Before a write that
// touches such a point is decided, the gateway reads the factor register itself, on the target's shared
// link (no client sees that read), and hands the exponent to policy with the action; it is journaled
// with the decision. The agent tools (agent-calls.ts) convert a point's value to and from engineering
// units with the same factors, and report the exponent they applied. Factors are fixed per device and firmware, so each is read at most once a minute
// per link. A factor that cannot be read, or is not -10..10 (0x8000 is SunSpec's "not implemented"),
// stays unknown: policy then refuses a bounded write to the point, and the agent tools give no value.
import type { FirmwareProfile } from '../../config/types.ts';
import type { ModbusAction } from './actions.ts';
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
  const out: Record<string, number> = {};
  for (const name of names) {
    const exponent = await scaleExponent(profile, name, o.unit, upstream, session, nowMs);
    if (exponent !== undefined) out[name] = exponent;
  }
  return out;
}

/** Before the writes of one request are decided: the factors each carries into policy (the actions are the request's own). */
export async function addScaleFactors(actions: readonly ModbusAction[], profile: FirmwareProfile | undefined, upstream: Upstream, session: string): Promise<void> {
  if (!profile) return;
  for (const action of actions) {
    if (action.verb === 'read') continue;
    const scaleFactors = await scaleFactorsFor(action.object, profile, upstream, session, Date.now());
    if (scaleFactors) action.object.scaleFactors = scaleFactors;
  }
}

/** The exponent of one factor point (`controls.WMaxLimPct_SF`) of `unit`, from the link's cache or read now; undefined while unreadable. */
export async function scaleExponent(profile: FirmwareProfile, name: string, unit: number, upstream: Upstream, session: string, nowMs: number): Promise<number | undefined> {
  let known = cache.get(upstream);
  if (!known) cache.set(upstream, (known = new Map()));
  const key = `${unit}:${name}`;
  const k = known.get(key);
  if (k && nowMs - k.atMs < FRESH_MS) return k.exponent;
  const exponent = await readExponent(profile, name, unit, upstream, session);
  // A failed read is not remembered: the next use tries again.
  if (exponent !== undefined) known.set(key, { exponent, atMs: nowMs });
  return exponent;
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
