// The OPC UA tools an AI agent may call on the agents' front door (adapters/types.ts AgentToolSpec): their
// arguments as zod schemas, what the agent's model reads about them, and which rules list them. Light
// on purpose (module.ts loads it on every gateway): no OPC UA stack; agent-calls.ts runs the calls.
import { z } from 'zod';
import type { AgentToolSpec } from '../types.ts';
import type { OpcuaRuleConfig, OpcuaVerb } from './rules.ts';

/** Bounds of one call, in the descriptions and enforced by the schemas and agent-calls.ts. */
export const OPCUA_AGENT_LIMITS = {
  /** Nodes one opcua_read names. */
  readNodes: 50,
  /** References one opcua_browse returns (default and most). */
  browseDefault: 100,
  browseMax: 500,
  /** Elements of an array value returned (the rest is cut, `truncated: true`), and characters of a text. */
  arrayElements: 100,
  textChars: 1024,
  /** JSON bytes of the values of one opcua_read, all nodes together. */
  readBytes: 256 * 1024,
  /** Elements of an array written or passed as one argument; arguments of one call. */
  writeElements: 1024,
  callArguments: 32,
} as const;

/** Built-in types a value written or passed may be given as (OPC UA Part 6 names). */
export const opcuaAgentDataTypes = ['Boolean', 'SByte', 'Byte', 'Int16', 'UInt16', 'Int32', 'UInt32', 'Int64', 'UInt64', 'Float', 'Double', 'String', 'DateTime'] as const;
export type OpcuaAgentDataType = (typeof opcuaAgentDataTypes)[number];

/** Attributes opcua_read may ask for: the Value (read on the device) or what the mirror holds of a node. */
export const opcuaAgentAttributes = ['Value', 'DisplayName', 'Description', 'BrowseName', 'NodeClass', 'DataType', 'ValueRank', 'AccessLevel'] as const;

const NODE_HELP = 'a node of the target: its gateway node id as rules name it (`ns=1;s=<target>/<browse path>`, e.g. `ns=1;s=boiler-1/Boiler/Setpoint`; `nsu=<the gateway\'s namespace URI>;s=…` too) or its browse path (`Objects/Boiler/Setpoint`)';
const node = z.string().min(1).max(512).describe(NODE_HELP);
const target = z.string().min(1).max(128).describe('the target id (an OPC UA server behind the gateway)');
const scalar = z.union([z.number(), z.boolean(), z.string().max(4096)]);
/** A value written or passed: a scalar, or an array of scalars. 64-bit integers beyond 2^53 as decimal text. */
const value = z.union([scalar, z.array(scalar).max(OPCUA_AGENT_LIMITS.writeElements)]);

/**
 * Which verbs of a rule let each tool do something (deny rules are never asked). Browse shows what
 * `browse` rules make visible, as the front door's Browse does: a rule granting only `read` lets
 * opcua_read read its nodes by id, and opcua_browse would show nothing.
 */
const LISTED_BY: Record<string, readonly OpcuaVerb[]> = {
  opcua_browse: ['browse'],
  opcua_read: ['read'],
  opcua_write: ['write'],
  opcua_call: ['call'],
};

function listedBy(tool: string): (rule: OpcuaRuleConfig) => boolean {
  const verbs = LISTED_BY[tool]!;
  return (rule) => rule.verbs.some((v) => verbs.includes(v));
}

export const opcuaAgentTools: readonly AgentToolSpec<OpcuaRuleConfig>[] = [
  {
    name: 'opcua_browse',
    title: 'Browse an OPC UA target',
    description:
      'List the nodes below a node of an OPC UA target (default: the target\'s top folder), only those your grants let you see. ' +
      `Each reference has node (its id, for the other opcua tools), browse_path, name, node_class (Object, Variable, Method) and, for variables, writable (the device allows writing). ` +
      `At most max_references (default ${OPCUA_AGENT_LIMITS.browseDefault}, at most ${OPCUA_AGENT_LIMITS.browseMax}); truncated says more were left out. ` +
      'Example: {"target":"boiler-1"} then {"target":"boiler-1","node":"Objects/Boiler"}.',
    input: z.strictObject({
      target,
      node: node.optional(),
      max_references: z.number().int().min(1).max(OPCUA_AGENT_LIMITS.browseMax).optional(),
    }),
    readOnly: true,
    listedBy: listedBy('opcua_browse'),
  },
  {
    name: 'opcua_read',
    title: 'Read OPC UA nodes',
    description:
      `Read an attribute (default Value, read on the device now) of 1 to ${OPCUA_AGENT_LIMITS.readNodes} nodes of one OPC UA target. ` +
      'Returns results[] in the order asked, each with node, status (an OPC UA status name: Good, or BadUserAccessDenied for a node your grants do not allow, BadXxx from the device), ' +
      'value, data_type and source_timestamp. 64-bit integers beyond 2^53 come as decimal text; ' +
      `arrays are cut at ${OPCUA_AGENT_LIMITS.arrayElements} elements and texts at ${OPCUA_AGENT_LIMITS.textChars} characters, and past ${OPCUA_AGENT_LIMITS.readBytes / 1024} KiB of values in one call the rest are left out (truncated: true). ` +
      'Node ids in values name their namespace by URI (nsu=…). ' +
      'If no node may be read, the call is refused as a whole. ' +
      'Example: {"target":"boiler-1","nodes":["ns=1;s=boiler-1/Boiler/Drum/Level","Objects/Boiler/Setpoint"]}.',
    input: z.strictObject({
      target,
      nodes: z.array(node).min(1).max(OPCUA_AGENT_LIMITS.readNodes),
      attribute: z.enum(opcuaAgentAttributes).optional(),
    }),
    readOnly: true,
    listedBy: listedBy('opcua_read'),
  },
  {
    name: 'opcua_write',
    title: 'Write an OPC UA variable',
    description:
      'Write the Value of one variable of an OPC UA target. value is a number, boolean or text (or an array of them); ' +
      'data_type is the OPC UA built-in type to send it as (default: the variable\'s own type, when it is a built-in one). ' +
      'Rules may bound the value; a refused write reaches nothing. Returns status (Good) and the value read just before is journaled. ' +
      'Example: {"target":"boiler-1","node":"ns=1;s=boiler-1/Boiler/Setpoint","value":55.5}.',
    input: z.strictObject({
      target,
      node,
      value,
      data_type: z.enum(opcuaAgentDataTypes).optional(),
    }),
    readOnly: false,
    listedBy: listedBy('opcua_write'),
  },
  {
    name: 'opcua_call',
    title: 'Call an OPC UA method',
    description:
      'Call one method of an OPC UA target on its object (default: the object the method belongs to). arguments are the input arguments in order ' +
      `(at most ${OPCUA_AGENT_LIMITS.callArguments}), each a number, boolean or text (or an array of them), sent as the types the method declares. ` +
      'Returns status and outputs[] (the output arguments, bounded like opcua_read values). ' +
      'Example: {"target":"boiler-1","method":"Objects/Boiler/ResetTrip","arguments":["after inspection"]}.',
    input: z.strictObject({
      target,
      method: node,
      object: node.optional(),
      arguments: z.array(value).max(OPCUA_AGENT_LIMITS.callArguments).optional(),
    }),
    readOnly: false,
    listedBy: listedBy('opcua_call'),
  },
];
