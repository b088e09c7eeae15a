// A tiny OPC UA client for the demo site (Debian packages no OPC UA command-line client), built on
// node-opcua's client. It connects to the demo's OPC UA front door the way a vendor's UaExpert would:
// SignAndEncrypt with Basic256Sha256, the demo client's application certificate (the one the listener's
// trusted_clients lists), the gateway's certificate trusted explicitly, and the demo user's name and
// password.
//
//   opcua-client.ts [options] browse [PATH]            what the principal may see below PATH
//   opcua-client.ts [options] read PATH...              read values
//   opcua-client.ts [options] write PATH VALUE          write a number
//   opcua-client.ts [options] call METHOD-PATH [ARG...] call a method (its object is the parent path)
//   opcua-client.ts [options] watch PATH... [--seconds N] [--count N]   subscribe and print changes
// PATH is a browse path below the target's folder (Boiler/Drum/Level) or a node id (ns=1;s=…).
// Options: --dir DIR (the demo folder; default PENSTOCK_DEMO_DIR or the demo's default), --endpoint URL,
// --target ID, --user NAME, --password PW.
// Exit status: 0 when every item is Good, 1 when one was refused or failed, 2 for usage or connection errors.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  AttributeIds,
  BrowseDirection,
  ClientMonitoredItem,
  DataType,
  MessageSecurityMode,
  NodeClass,
  OPCUAClient,
  SecurityPolicy,
  TimestampsToReturn,
  UserTokenType,
  Variant,
  type ClientSession,
  type DataValue,
} from 'node-opcua';
import { DEMO_OPCUA_TARGET, DEMO_OPCUA_USER, demoClientFiles, demoDir, openDemoClientPki } from './opcua-demo.ts';

const USAGE = `usage: opcua-client.ts [--dir DIR] [--endpoint URL] [--target ID] [--user NAME] [--password PW]
         browse [PATH] | read PATH... | write PATH VALUE | call METHOD-PATH [ARG...] | watch PATH... [--seconds N] [--count N]`;

/** Long enough for a person to approve a call (the demo's approvals time out after 300 s). */
const CALL_TIMEOUT_MS = 330_000;

class UsageError extends Error {}

interface Options {
  dir: string;
  endpoint: string;
  target: string;
  user: string;
  password: string;
  seconds?: number;
  count?: number;
}

function parse(argv: string[]): { command: string; args: string[]; opts: Options } {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      dir: { type: 'string' },
      endpoint: { type: 'string' },
      target: { type: 'string' },
      user: { type: 'string' },
      password: { type: 'string' },
      seconds: { type: 'string' },
      count: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...args] = positionals;
  if (values.help || !command) throw new UsageError('');
  const dir = values.dir ?? demoDir();
  let saved: { endpoint?: string; target?: string } = {};
  if (!values.endpoint) {
    try {
      saved = JSON.parse(readFileSync(demoClientFiles(dir).connectionFile, 'utf8')) as typeof saved;
    } catch {
      throw new UsageError(`no demo running in ${dir} (start it with \`npm run demo\`, or pass --dir or --endpoint)`);
    }
  }
  const number = (name: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a positive number`);
    return n;
  };
  const seconds = number('seconds', values.seconds);
  const count = number('count', values.count);
  return {
    command,
    args,
    opts: {
      dir,
      endpoint: values.endpoint ?? saved.endpoint!,
      target: values.target ?? saved.target ?? DEMO_OPCUA_TARGET,
      user: values.user ?? DEMO_OPCUA_USER.username,
      password: values.password ?? DEMO_OPCUA_USER.password,
      ...(seconds !== undefined ? { seconds } : {}),
      ...(count !== undefined ? { count } : {}),
    },
  };
}

/** `Boiler/Drum/Level` → the gateway's node id for it; a node id is taken as it is. */
function nodeIdOf(path: string, target: string): string {
  if (/^(ns=\d+;)?[isgb]=/.test(path)) return path;
  const clean = path.replace(/^\/+|\/+$/g, '');
  return clean ? `ns=1;s=${target}/${clean}` : `ns=1;s=${target}`;
}

function parentOf(nodeId: string): string {
  const i = nodeId.lastIndexOf('/');
  if (i < 0) throw new UsageError(`${nodeId}: a method path needs its object before it (e.g. Boiler/ResetTrip)`);
  return nodeId.slice(0, i);
}

function show(v: DataValue): string {
  const value = v.value?.value;
  return v.statusCode.isGood() ? `${JSON.stringify(value)} (${v.statusCode.name})` : v.statusCode.name;
}

/** Turn a command-line word into a Variant of the method argument's type. */
function argument(word: string, dataType: DataType | undefined): Variant {
  switch (dataType) {
    case DataType.Boolean:
      return new Variant({ dataType, value: word === 'true' || word === '1' });
    case DataType.Double:
    case DataType.Float:
    case DataType.Int16:
    case DataType.Int32:
    case DataType.UInt16:
    case DataType.UInt32:
    case DataType.Byte:
    case DataType.SByte:
      return new Variant({ dataType, value: Number(word) });
    default:
      return new Variant({ dataType: DataType.String, value: word });
  }
}

async function browse(session: ClientSession, path: string, opts: Options): Promise<number> {
  const start = nodeIdOf(path, opts.target);
  console.log(path || `Objects/${opts.target}`);
  let bad = 0;
  const walk = async (nodeId: string, indent: string, depth: number): Promise<void> => {
    const r = await session.browse({ nodeId, browseDirection: BrowseDirection.Forward, referenceTypeId: 'HierarchicalReferences', includeSubtypes: true, nodeClassMask: 0, resultMask: 63 });
    if (!r.statusCode.isGood()) {
      console.log(`${indent}${r.statusCode.name}`);
      bad++;
      return;
    }
    for (const ref of r.references ?? []) {
      const id = ref.nodeId.toString();
      const kind = NodeClass[ref.nodeClass];
      console.log(`${indent}${ref.browseName.name}  (${kind}${ref.nodeClass === NodeClass.Variable || ref.nodeClass === NodeClass.Method ? `, ${id}` : ''})`);
      if (ref.nodeClass === NodeClass.Object && depth < 8) await walk(id, `${indent}  `, depth + 1);
    }
  };
  await walk(start, '  ', 0);
  return bad ? 1 : 0;
}

async function read(session: ClientSession, paths: string[], opts: Options): Promise<number> {
  if (paths.length === 0) throw new UsageError('read needs at least one PATH');
  const values = await session.read(paths.map((p) => ({ nodeId: nodeIdOf(p, opts.target), attributeId: AttributeIds.Value })));
  values.forEach((v, i) => console.log(`${paths[i]} = ${show(v)}`));
  return values.every((v) => v.statusCode.isGood()) ? 0 : 1;
}

async function write(session: ClientSession, args: string[], opts: Options): Promise<number> {
  const [path, text] = args;
  const value = Number(text);
  if (!path || text === undefined || args.length !== 2 || !Number.isFinite(value)) throw new UsageError('write needs PATH and a number');
  const status = await session.write({ nodeId: nodeIdOf(path, opts.target), attributeId: AttributeIds.Value, value: { value: { dataType: DataType.Double, value } } });
  console.log(`${path} <- ${value}: ${status.name}`);
  return status.isGood() ? 0 : 1;
}

async function call(session: ClientSession, args: string[], opts: Options): Promise<number> {
  const [path, ...words] = args;
  if (!path) throw new UsageError('call needs METHOD-PATH');
  const methodId = nodeIdOf(path, opts.target);
  const defs = await session.getArgumentDefinition(methodId).catch(() => ({ inputArguments: [], outputArguments: [] }));
  const inputs = words.map((w, i) => argument(w, defs.inputArguments[i]?.dataType?.value as DataType | undefined));
  console.log(`calling ${path}(${words.map((w) => JSON.stringify(w)).join(', ')}); if the grant asks for approval this waits for a person (penstockctl approvals list / approve ID)`);
  const r = await session.call({ objectId: parentOf(methodId), methodId, inputArguments: inputs });
  const outputs = (r.outputArguments ?? []).map((v) => JSON.stringify(v.value));
  console.log(`${path}: ${r.statusCode.name}${outputs.length ? ` -> ${outputs.join(', ')}` : ''}`);
  return r.statusCode.isGood() ? 0 : 1;
}

async function watch(session: ClientSession, paths: string[], opts: Options): Promise<number> {
  if (paths.length === 0) throw new UsageError('watch needs at least one PATH');
  const sub = await session.createSubscription2({ requestedPublishingInterval: 500, requestedMaxKeepAliveCount: 20, requestedLifetimeCount: 120, publishingEnabled: true });
  let seen = 0;
  let bad = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  for (const path of paths) {
    const item = ClientMonitoredItem.create(sub, { nodeId: nodeIdOf(path, opts.target), attributeId: AttributeIds.Value }, { samplingInterval: 250, queueSize: 10 }, TimestampsToReturn.Both);
    item.on('changed', (v: DataValue) => {
      console.log(`${(v.sourceTimestamp ?? new Date()).toISOString()}  ${path} = ${show(v)}`);
      if (opts.count !== undefined && ++seen >= opts.count) done();
    });
    // A refused item (BadUserAccessDenied) does not stop the others.
    await new Promise<void>((resolve) => {
      item.once('initialized', () => resolve());
      item.once('err', (message: string) => {
        console.log(`${path}: ${message}`);
        bad++;
        resolve();
      });
    });
  }
  if (bad === paths.length) return 1;
  console.log(`watching ${paths.join(', ')}${opts.seconds ? ` for ${opts.seconds} s` : ''}; Ctrl-C stops`);
  const timer = opts.seconds ? setTimeout(done, opts.seconds * 1000) : undefined;
  process.once('SIGINT', done);
  process.once('SIGTERM', done);
  await finished;
  if (timer) clearTimeout(timer);
  await sub.terminate().catch(() => {});
  return bad ? 1 : 0;
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parse(argv);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      const message = (err as Error).message;
      console.error(message ? `opcua-client: ${message}\n${USAGE}` : USAGE);
      return 2;
    }
    throw err;
  }
  const { command, args, opts } = parsed;
  const commands: Record<string, (s: ClientSession, args: string[], o: Options) => Promise<number>> = {
    browse: (s, a, o) => browse(s, a[0] ?? '', o),
    read,
    write,
    call,
    watch,
  };
  const run = commands[command];
  if (!run) {
    console.error(`opcua-client: unknown command ${command}\n${USAGE}`);
    return 2;
  }
  const files = demoClientFiles(opts.dir);
  const pki = await openDemoClientPki(opts.dir);
  const client = OPCUAClient.create({
    applicationName: 'penstock-demo-opcua-client',
    applicationUri: files.applicationUri,
    certificateFile: files.certFile,
    privateKeyFile: files.keyFile,
    clientCertificateManager: pki,
    securityMode: MessageSecurityMode.SignAndEncrypt,
    securityPolicy: SecurityPolicy.Basic256Sha256,
    endpointMustExist: false,
    connectionStrategy: { maxRetry: 0, initialDelay: 100, maxDelay: 200 },
    // A call may wait minutes for a person: keep the session and the socket alive meanwhile (node-opcua
    // pings the server when nothing else is answered). A client that goes away leaves a session that
    // the server ends after a minute.
    requestedSessionTimeout: 60_000,
    keepSessionAlive: command === 'call' || command === 'watch',
    defaultTransactionTimeout: command === 'call' ? CALL_TIMEOUT_MS : 15_000,
    ...(command === 'call' ? { transportTimeout: CALL_TIMEOUT_MS } : {}),
  });
  let session: ClientSession | undefined;
  try {
    try {
      await client.connect(opts.endpoint);
    } catch (err) {
      console.error(`opcua-client: cannot open a secure channel to ${opts.endpoint}: ${(err as Error).message}`);
      return 2;
    }
    try {
      session = await client.createSession({ type: UserTokenType.UserName, userName: opts.user, password: opts.password });
    } catch (err) {
      console.error(`opcua-client: login as ${opts.user} refused: ${(err as Error).message.split('\n')[0]}`);
      return 2;
    }
    try {
      return await run(session, args, opts);
    } catch (err) {
      if (err instanceof UsageError) {
        console.error(`opcua-client: ${err.message}\n${USAGE}`);
        return 2;
      }
      console.error(`opcua-client: ${command} failed: ${(err as Error).message.split('\n')[0]}`);
      return 1;
    }
  } finally {
    await session?.close().catch(() => {});
    await client.disconnect().catch(() => {});
    await pki.dispose().catch(() => {});
  }
}

process.exitCode = await main(process.argv.slice(2));
