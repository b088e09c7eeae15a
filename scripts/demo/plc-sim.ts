// A simulated PLC for the demo site: serves a firmware profile's register map over Modbus/TCP with
// modbus-serial's ServerTCP (fine for a person trying things; the benchmarks use a libmodbus server).
// Live values drift so repeated reads show something; writes are kept and printed.
import { createRequire } from 'node:module';
import type { FirmwareProfile } from '../../src/config/types.ts';
import { modbusPoints } from '../../src/adapters/modbus/rules.ts';

const require = createRequire(import.meta.url);
const { ServerTCP } = require('modbus-serial') as typeof import('modbus-serial');

/** SunSpec model ids by the point-name prefix the profiles use. */
const MODEL_IDS: Record<string, number> = { common: 1, inverter: 103, controls: 123, settings: 702, measurements: 701 };

export interface SimulatedPlc {
  port: number;
  registers: Map<number, number>;
  close(): Promise<void>;
}

function putString(regs: Map<number, number>, address: number, words: number, text: string): void {
  const bytes = Buffer.alloc(words * 2);
  bytes.write(text.slice(0, words * 2), 'latin1');
  for (let i = 0; i < words; i++) regs.set(address + i, bytes.readUInt16BE(i * 2));
}

export function startSimulatedPlc(profile: FirmwareProfile, port: number, onWrite?: (address: number, values: number[]) => void): Promise<SimulatedPlc> {
  const regs = new Map<number, number>();
  for (const p of modbusPoints(profile)) {
    if (p.table !== 'holding_register' || p.address === undefined) continue;
    if (p.name === 'common.SID') {
      regs.set(p.address, 0x5375);
      regs.set(p.address + 1, 0x6e53); // "SunS"
    } else if (p.name === 'common.Mn') putString(regs, p.address, p.words, profile.vendor);
    else if (p.name === 'common.Md') putString(regs, p.address, p.words, profile.model.split(' ')[0] ?? 'demo');
    else if (p.name === 'common.SN') putString(regs, p.address, p.words, 'DEMO-0001');
    else if (p.type === 'string') putString(regs, p.address, p.words, '');
    else if (/\.ID$/.test(p.name)) regs.set(p.address, MODEL_IDS[p.name.split('.')[0]!] ?? 0);
    else if (p.min !== undefined && p.max !== undefined) regs.set(p.address, Math.max(0, Math.min(p.max, 100)));
  }
  // A sunny afternoon: about 6.2 kW, 230 V, 50 Hz (scale factors 0, -1, -2), drifting a little. The power
  // limit is in 0.01 % as on a Fronius (WMaxLimPct_SF = -2), at 100 %.
  const live: [RegExp, number, number][] = [[/\.W$/, 6200, 80], [/\.PhVphA$/, 2301, 15], [/\.Hz$/, 5000, 3]];
  const scale: [RegExp, number][] = [[/\.W_SF$/, 0], [/\.V_SF$/, -1], [/\.Hz_SF$/, -2], [/\.WMaxLimPct_SF$/, -2]];
  for (const p of modbusPoints(profile)) if (p.name.endsWith('.WMaxLimPct') && p.address !== undefined) regs.set(p.address, 10000);
  for (const p of modbusPoints(profile)) {
    const sf = scale.find(([re]) => re.test(p.name));
    if (sf && p.address !== undefined) regs.set(p.address, sf[1] & 0xffff);
  }
  const drifting = modbusPoints(profile).flatMap((p) => {
    const l = live.find(([re]) => re.test(p.name));
    return l && p.address !== undefined && p.access === 'R' ? [{ address: p.address, base: l[1], spread: l[2] }] : [];
  });
  const tickValues = () => {
    for (const d of drifting) regs.set(d.address, d.base + Math.round((Math.random() - 0.5) * d.spread));
  };
  tickValues();
  const drift = setInterval(tickValues, 1000);
  drift.unref();

  const server = new ServerTCP(
    {
      getHoldingRegister: (addr: number) => regs.get(addr) ?? 0,
      getMultipleHoldingRegisters: (addr: number, length: number) => Array.from({ length }, (_, i) => regs.get(addr + i) ?? 0),
      getInputRegister: (addr: number) => regs.get(addr) ?? 0,
      getCoil: () => false,
      getDiscreteInput: () => false,
      setRegister: (addr: number, value: number) => {
        regs.set(addr, value);
        onWrite?.(addr, [value]);
      },
      setRegisterArray: (addr: number, values: number[]) => {
        values.forEach((v, i) => regs.set(addr + i, v));
        onWrite?.(addr, values);
      },
      setCoil: () => {},
    },
    { host: '127.0.0.1', port, unitID: 255 },
  );
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.once('initialized', () =>
      resolve({
        port,
        registers: regs,
        close: () =>
          new Promise<void>((r) => {
            clearInterval(drift);
            server.close(() => r());
          }),
      }),
    );
  });
}
