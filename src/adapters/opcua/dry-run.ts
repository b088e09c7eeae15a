// `penstockctl policy check PRINCIPAL TARGET opcua VERB NODEID [options]`: the action the front door
// would build for one item of a request, so a dry run asks policy exactly what a real request would.
import { DryRunUsageError, type DryRunSyntax } from '../types.ts';
import { INTEGER_TEXT, opcuaVerbs, type OpcuaObject, type OpcuaVerb } from './rules.ts';

export interface OpcuaDryRunOptions {
  value?: string | undefined;
  browsePath?: string | undefined;
  attribute?: string | undefined;
  object?: string | undefined;
}

/**
 * A written value as the front door carries it: a number, or, for an integer a double cannot hold
 * exactly, its decimal text (as a 64-bit integer write is compared).
 */
function writtenValue(text: string): number | string {
  const t = text.trim();
  const n = Number(t);
  if (INTEGER_TEXT.test(t) && !Number.isSafeInteger(n)) return t;
  if (t === '' || !Number.isFinite(n)) throw new DryRunUsageError(`--value must be a number (got ${text})`);
  return n;
}

export function opcuaDryRunAction(args: string[], opts: OpcuaDryRunOptions): { verb: OpcuaVerb; object: OpcuaObject } {
  const [verb, nodeId, ...extra] = args;
  if (!verb || !(opcuaVerbs as readonly string[]).includes(verb)) throw new DryRunUsageError(`opcua: expected one of ${opcuaVerbs.join(', ')}, got ${verb ?? 'nothing'}`);
  if (!nodeId) throw new DryRunUsageError('opcua: NODEID is missing (e.g. "ns=1;s=Boiler/Drum/Level")');
  if (extra.length) throw new DryRunUsageError(`opcua: unexpected arguments: ${extra.join(' ')}`);
  const value = opts.value === undefined ? undefined : writtenValue(opts.value);
  return {
    verb: verb as OpcuaVerb,
    object: {
      kind: 'opcua',
      nodeId,
      ...(opts.browsePath !== undefined ? { browsePath: opts.browsePath } : {}),
      ...(opts.attribute !== undefined ? { attribute: opts.attribute } : {}),
      ...(value !== undefined ? { value } : {}),
      ...(opts.object !== undefined ? { objectId: opts.object } : {}),
    },
  };
}

export const opcuaDryRun: DryRunSyntax = {
  usage: [`opcua ${opcuaVerbs.join('|')} NODEID [--value V] [--browse-path P] [--attribute A] [--object NODEID]`],
  options: [
    { flags: '--value <v>', description: 'numeric value written (an integer beyond 2^53 is compared exactly)' },
    { flags: '--browse-path <path>', description: 'browse path of the node' },
    { flags: '--attribute <name>', description: 'attribute read' },
    { flags: '--object <nodeid>', description: 'object a method is called on' },
  ],
  help: 'OPC UA NODEID is the gateway node id (ns=1;s=<target>/<browse path>); rules may also name the browse path (--browse-path).',
  parse: (args, options) => opcuaDryRunAction(args, options),
};
