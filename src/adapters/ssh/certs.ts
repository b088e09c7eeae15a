// OpenSSH user certificates (PROTOCOL.certkeys), verified offline: ssh2 has no certificate support, so
// the front door parses the certificate from the publickey request itself and checks, in order:
// the CA's signature over the body (the CA must be one the listener trusts), type user, the validity
// window against the injected clock, the principals (one must name the Penstock principal), and the
// critical options — force-command and source-address are honoured, any other critical option refuses
// the certificate (the spec says a verifier must refuse what it does not understand). Extensions
// (permit-pty, permit-port-forwarding, …) grant nothing by themselves; they only narrow what grants allow.
import net from 'node:net';
import { fingerprint, readKeyFields, verifySshSignature, type SshPublicKey } from './keys.ts';
import { SshReader, SshWireError } from './wire.ts';

const CERT_SUFFIX = '-cert-v01@openssh.com';
const USER_CERT = 1;
const FOREVER = 0xffff_ffff_ffff_ffffn;

export interface OpenSshCertificate {
  /** The certificate type name, e.g. `ssh-ed25519-cert-v01@openssh.com`. */
  type: string;
  /** The certified key (what the client signs with). */
  key: SshPublicKey;
  serial: bigint;
  certType: number;
  keyId: string;
  principals: string[];
  validAfter: bigint;
  validBefore: bigint;
  criticalOptions: Map<string, string>;
  extensions: Set<string>;
  /** The CA's public key blob. */
  signatureKey: Buffer;
  /** Everything the CA signed (the blob up to the signature). */
  signed: Buffer;
  signature: Buffer;
}

export function isCertificateType(algo: string): boolean {
  return algo.endsWith(CERT_SUFFIX);
}

/** Parse a certificate blob; throws SshWireError when it is not a well-formed OpenSSH certificate. */
export function parseCertificate(blob: Buffer): OpenSshCertificate {
  const r = new SshReader(blob);
  const type = r.text();
  if (!type.endsWith(CERT_SUFFIX)) throw new SshWireError(`${type} is not a certificate type`);
  const keyType = type.slice(0, -CERT_SUFFIX.length);
  r.bytes(); // nonce
  const keyStart = r.offset;
  const key = readKeyFields(keyType, r);
  // The certified key's own blob: its type name followed by the same fields.
  const keyFields = blob.subarray(keyStart, r.offset);
  const typeName = Buffer.from(keyType);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(typeName.length);
  const keyBlob = Buffer.concat([len, typeName, keyFields]);
  const serial = r.uint64();
  const certType = r.uint32();
  const keyId = r.text();
  const principals = readPacked(r.bytes(), 'principals').map((p) => p.toString('utf8'));
  const validAfter = r.uint64();
  const validBefore = r.uint64();
  const criticalOptions = readOptions(r.bytes(), 'critical options');
  const extensions = new Set(readOptions(r.bytes(), 'extensions').keys());
  r.bytes(); // reserved
  const signatureKey = r.bytes();
  const signed = blob.subarray(0, r.offset);
  const signature = r.bytes();
  r.end('certificate');
  return { type, key: { type: keyType, key, blob: keyBlob }, serial, certType, keyId, principals, validAfter, validBefore, criticalOptions, extensions, signatureKey, signed, signature };
}

function readPacked(buf: Buffer, what: string): Buffer[] {
  const r = new SshReader(buf);
  const out: Buffer[] = [];
  while (r.remaining > 0) {
    out.push(r.bytes());
    if (out.length > 256) throw new SshWireError(`too many ${what}`);
  }
  return out;
}

/** name/data pairs; data is itself a string holding the value (or empty). Names must be unique. */
function readOptions(buf: Buffer, what: string): Map<string, string> {
  const r = new SshReader(buf);
  const out = new Map<string, string>();
  while (r.remaining > 0) {
    const name = r.text();
    const data = r.bytes();
    if (out.has(name)) throw new SshWireError(`${what}: ${name} appears twice`);
    let value = '';
    if (data.length > 0) {
      const d = new SshReader(data);
      value = d.text();
      d.end(`${what} ${name}`);
    }
    out.set(name, value);
    if (out.size > 64) throw new SshWireError(`too many ${what}`);
  }
  return out;
}

export interface CertificateCheck {
  /** Trusted CA public key blobs. */
  cas: readonly SshPublicKey[];
  /** Wall time, ms. */
  now: number;
  /** The names that stand for the principal (its id and its ssh_cert_principals). */
  names: ReadonlySet<string>;
  /** Client address without port, for source-address. */
  address: string;
}

export type CertificateVerdict =
  | { ok: true; forceCommand?: string; extensions: ReadonlySet<string>; keyId: string; serial: string; ca: string }
  | { ok: false; reason: 'untrusted_ca' | 'bad_signature' | 'not_user' | 'expired' | 'not_yet_valid' | 'wrong_principal' | 'source_address' | 'unknown_critical_option'; detail: string };

/** Is this certificate, as presented, good for this principal now? (The client's signature is checked separately.) */
export function checkCertificate(cert: OpenSshCertificate, c: CertificateCheck): CertificateVerdict {
  const ca = c.cas.find((k) => k.blob.equals(cert.signatureKey));
  if (!ca) return { ok: false, reason: 'untrusted_ca', detail: `signed by ${fingerprint(cert.signatureKey)}, which this listener does not trust` };
  if (!verifySshSignature(ca, cert.signed, cert.signature)) return { ok: false, reason: 'bad_signature', detail: 'the CA signature over the certificate does not verify' };
  if (cert.certType !== USER_CERT) return { ok: false, reason: 'not_user', detail: 'a host certificate cannot log in' };
  const nowS = BigInt(Math.floor(c.now / 1000));
  if (nowS < cert.validAfter) return { ok: false, reason: 'not_yet_valid', detail: `valid from ${isoOf(cert.validAfter)}` };
  if (cert.validBefore !== FOREVER && nowS >= cert.validBefore) return { ok: false, reason: 'expired', detail: `expired at ${isoOf(cert.validBefore)}` };
  // An empty principal list means "anyone" to OpenSSH; Penstock requires the certificate to name someone.
  if (!cert.principals.some((p) => c.names.has(p))) {
    return { ok: false, reason: 'wrong_principal', detail: `names ${cert.principals.length ? cert.principals.join(', ') : 'no principal'}, not ${[...c.names].join(' or ')}` };
  }
  let forceCommand: string | undefined;
  for (const [name, value] of cert.criticalOptions) {
    if (name === 'force-command') forceCommand = value;
    else if (name === 'source-address') {
      if (!sourceAllowed(value, c.address)) return { ok: false, reason: 'source_address', detail: `source-address ${value} does not include ${c.address}` };
    } else return { ok: false, reason: 'unknown_critical_option', detail: `critical option ${name} is not understood, so the certificate is refused` };
  }
  return {
    ok: true,
    ...(forceCommand !== undefined ? { forceCommand } : {}),
    extensions: cert.extensions,
    keyId: cert.keyId,
    serial: cert.serial.toString(),
    ca: fingerprint(ca.blob),
  };
}

function isoOf(seconds: bigint): string {
  return seconds > 253402300799n ? 'forever' : new Date(Number(seconds) * 1000).toISOString();
}

/** OpenSSH source-address: comma-separated addresses or CIDR blocks. A malformed list allows nothing. */
export function sourceAllowed(list: string, address: string): boolean {
  const a = address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
  const family = net.isIPv6(a) ? 'ipv6' : 'ipv4';
  const bl = new net.BlockList();
  try {
    for (const item of list.split(',')) {
      const [addr, bits] = item.trim().split('/');
      if (!addr || net.isIP(addr) === 0) return false;
      const f = net.isIPv6(addr) ? 'ipv6' : 'ipv4';
      if (bits === undefined) bl.addAddress(addr, f);
      else bl.addSubnet(addr, Number(bits), f);
    }
    return bl.check(a, family);
  } catch {
    return false;
  }
}
