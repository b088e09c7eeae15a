// The demo site's AI-agent half: what the MCP front door (site-mcp.yaml) needs, made in the demo folder
// at each start: a CA and the door's TLS certificate (openssl), the demo identity provider's signing key
// pair (the private key stays in DIR/mcp, mode 0600; the door reads only the public JWKS), and a 10-minute
// token for the agent, written to a 0600 file that the printed command reads (so the token is not on the
// command line of the demo or the daemon).
//
//   node scripts/demo/mcp-demo.ts token [--dir DIR] [--port PORT]
// mints a fresh token into the same file (the demo's default folder and MCP port unless given).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT, exportJWK, exportPKCS8, generateKeyPair, importPKCS8 } from 'jose';
import { demoDir } from './opcua-demo.ts';

export const DEMO_MCP_LISTENER = 'mcp-demo';
export const DEMO_AGENT = 'tuning-agent';
/** The demo identity provider: an OIDC issuer, or a SPIRE server issuing JWT-SVIDs, at a real site. */
export const DEMO_ISSUER = 'https://idp.demo-solar-park.example';
/** The agent's workload identity: its tokens' `sub` (principal credentials.token_subjects). */
export const DEMO_AGENT_SUBJECT = 'spiffe://demo-solar-park.example/agent/tuning-agent';
/** The work order the agent's tokens name in their task claim. */
export const DEMO_AGENT_TASK = 'WO-4411';
export const DEMO_MCP_PORT = 8443;
const TOKEN_SECONDS = 600;
const KEY_ID = 'demo-idp-1';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface DemoMcpFiles {
  root: string;
  /** The CA a client must trust for the door's certificate (NODE_EXTRA_CA_CERTS). */
  caCert: string;
  tlsCert: string;
  tlsKey: string;
  /** The identity provider's public keys: the listener's issuers[].jwks_file. */
  jwks: string;
  /** Its private key (0600): only the demo (and `mcp-demo.ts token`) signs with it. */
  signingKey: string;
  /** The agent's current bearer token (0600). */
  tokenFile: string;
}

export function demoMcpFiles(dir: string): DemoMcpFiles {
  const r = join(dir, 'mcp');
  return {
    root: r,
    caCert: join(r, 'ca.crt'),
    tlsCert: join(r, 'gateway.crt'),
    tlsKey: join(r, 'gateway.key'),
    jwks: join(r, 'jwks.json'),
    signingKey: join(r, 'idp-signing-key.pem'),
    tokenFile: join(r, 'agent.token'),
  };
}

export const demoResource = (port: number): string => `https://127.0.0.1:${port}/mcp`;

function openssl(args: string[], cwd: string): void {
  // Without OPENSSL_CONF: node-opcua's certificate tools (the demo's OPC UA client) set it in this process
  // to a configuration of their own, which this openssl must not read.
  const { OPENSSL_CONF: _theirs, ...env } = process.env;
  try {
    execFileSync('openssl', args, { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const why = String((err as { stderr?: unknown }).stderr ?? '').trim().split('\n').at(-1);
    throw new Error(`openssl ${args[0]} failed${why ? `: ${why}` : ''}`);
  }
}

/** A CA and a certificate for the door on 127.0.0.1 (made once; openssl, as an operator would). */
function makeTls(f: DemoMcpFiles): void {
  if (existsSync(f.tlsCert) && existsSync(f.tlsKey) && existsSync(f.caCert)) return;
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-days', '365', '-subj', '/CN=Penstock demo CA', '-keyout', 'ca.key', '-out', 'ca.crt',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], f.root);
  openssl(['req', ...ec, '-subj', '/CN=penstock-demo-mcp', '-keyout', 'gateway.key', '-out', 'gateway.csr'], f.root);
  writeFileSync(join(f.root, 'gateway.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(['x509', '-req', '-in', 'gateway.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '365',
    '-out', 'gateway.crt', '-extfile', 'gateway.ext'], f.root);
}

/** A token for the agent, valid 10 minutes, audience the door's resource URI, into the 0600 token file; its expiry. */
export async function mintAgentToken(f: DemoMcpFiles, port: number): Promise<Date> {
  const key = await importPKCS8(readFileSync(f.signingKey, 'utf8'), 'ES256');
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ task: DEMO_AGENT_TASK })
    .setProtectedHeader({ alg: 'ES256', kid: KEY_ID, typ: 'JWT' })
    .setIssuer(DEMO_ISSUER)
    .setSubject(DEMO_AGENT_SUBJECT)
    .setAudience(demoResource(port))
    .setIssuedAt(now)
    .setNotBefore(now - 5)
    .setExpirationTime(now + TOKEN_SECONDS)
    .sign(key);
  writeFileSync(f.tokenFile, `${token}\n`, { mode: 0o600 });
  return new Date((now + TOKEN_SECONDS) * 1000);
}

/** Everything the MCP listener and the agent need, for a door on `port`; a fresh signing key at each start. */
export async function prepareDemoMcp(dir: string, port: number): Promise<{ files: DemoMcpFiles; tokenExpires: Date }> {
  const f = demoMcpFiles(dir);
  mkdirSync(f.root, { recursive: true, mode: 0o700 });
  makeTls(f);
  const keys = await generateKeyPair('ES256', { extractable: true });
  writeFileSync(f.signingKey, await exportPKCS8(keys.privateKey), { mode: 0o600 });
  writeFileSync(f.jwks, `${JSON.stringify({ keys: [{ ...(await exportJWK(keys.publicKey)), kid: KEY_ID, alg: 'ES256', use: 'sig' }] }, null, 2)}\n`);
  return { files: f, tokenExpires: await mintAgentToken(f, port) };
}

/** The MCP Inspector's CLI (PENSTOCK_INSPECTOR_CLI, else the repository's node_modules/.bin), resolved to its file, or undefined. */
export function findInspectorCli(): string | undefined {
  const bin = process.env.PENSTOCK_INSPECTOR_CLI || join(root, 'node_modules/.bin/mcp-inspector-cli');
  return existsSync(bin) ? realpathSync(bin) : undefined;
}

/**
 * One shell command that calls `tool` on the door with the MCP Inspector's CLI (inspector-cli 1.0.3).
 * It runs in the CLI's own folder because the CLI finds its package.json as ../package.json from the
 * working directory; the token is read from its file by the shell, so it is on the command line of the
 * short-lived CLI only, never of the demo or the daemon.
 */
export function inspectorCommand(cli: string, f: DemoMcpFiles, port: number, tool: string, args: string[] = []): string {
  return [
    `(cd ${dirname(cli)} && PATH=${dirname(process.execPath)}:$PATH NODE_EXTRA_CA_CERTS=${f.caCert}`,
    `node ${basename(cli)} --cli ${demoResource(port)} --transport http`,
    `--header "Authorization: Bearer $(cat ${f.tokenFile})" --method tools/call --tool-name ${tool}${args.length ? ` --tool-arg ${args.join(' ')}` : ''})`,
  ].join(' ');
}

if (import.meta.main) {
  const argv = process.argv.slice(2);
  const opt = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  if (argv[0] !== 'token') {
    console.error('usage: node scripts/demo/mcp-demo.ts token [--dir DIR] [--port PORT]');
    process.exit(2);
  }
  const f = demoMcpFiles(opt('--dir') ?? demoDir());
  if (!existsSync(f.signingKey)) {
    console.error(`no demo signing key in ${f.root}: start the demo (npm run demo) first`);
    process.exit(1);
  }
  const expires = await mintAgentToken(f, Number(opt('--port') ?? DEMO_MCP_PORT));
  console.log(`a new token for ${DEMO_AGENT} is in ${f.tokenFile} (until ${expires.toISOString()})`);
}
