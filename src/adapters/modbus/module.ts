// The Modbus protocol as the rest of Penstock sees it (adapters/types.ts): schemas, the rule matcher,
// journal rendering, refusals, dry runs and config checks. Light on purpose: the front door itself (the
// listeners, the stream server, the upstream links and the serial port library) is loaded by load() only
// when a listener or a tunnel uses it.
import type { ProtocolModule } from '../types.ts';
import { modbusAgentTools } from './agent-tools.ts';
import { checkModbusPoint, modbusPointFields, modbusRuleWarnings } from './checks.ts';
import { modbusDryRun } from './dry-run.ts';
import { MODBUS_REFUSALS } from './exceptions.ts';
import { modbusMatcher } from './policy.ts';
import { describeModbusAction, isModbusProgramming, modbusWrittenValues, renderModbusObject } from './render.ts';
import { modbusObjectSchema, modbusRuleSchema, type ModbusObject, type ModbusRuleConfig } from './rules.ts';
import { modbusListenerSchema, modbusTargetSchema } from './schema.ts';
import { suggestModbusRules } from './suggest.ts';

export const modbusModule: ProtocolModule<ModbusObject, ModbusRuleConfig> = {
  name: 'modbus',
  title: 'Modbus/TCP',
  listenerSchema: modbusListenerSchema,
  targetSchema: modbusTargetSchema,
  ruleSchema: modbusRuleSchema,
  objectSchema: modbusObjectSchema,
  profilePoint: { fields: modbusPointFields, check: checkModbusPoint },
  matcher: modbusMatcher,
  ruleWarnings: modbusRuleWarnings,
  renderObject: renderModbusObject,
  describeAction: describeModbusAction,
  isProgramming: isModbusProgramming,
  writtenValues: modbusWrittenValues,
  refusals: MODBUS_REFUSALS,
  dryRun: modbusDryRun,
  quickRule: {
    listKeys: ['units', 'tables', 'addresses', 'points', 'function_codes'],
    numberKeys: ['units', 'function_codes', 'min', 'max'],
    numericItemKeys: ['addresses'],
    examples: ['modbus:preset=readonly', 'modbus:access=write,tables=holding_register,addresses=100-110,max=500'],
  },
  // A tunnel another front door opened to a Modbus target is served here, with the same enforcement.
  servesStreams: true,
  // modbus_read / modbus_write on the agent front door (agent-tools.ts); the front door runs them (agent-calls.ts).
  agentTools: modbusAgentTools,
  // `penstockctl grants suggest`: rules from what the journal shows a principal did (suggest.ts).
  suggestRules: suggestModbusRules,
  load: async () => (await import('./adapter.ts')).modbusAdapter,
};
