// Modbus/TCP Security (Modbus Organization, "MB-TCP-Security-v36"): mutual TLS on port 802 by
// default, TLS 1.2 or later, the client certificate identifies the principal. The specification's
// role extension (OID 1.3.6.1.4.1.50316.802.1, an ASN.1 UTF8String naming the client's role) is read
// from the certificate and recorded with the session; it narrows nothing by itself — grants decide —
// but a role the listener has not been told to accept can be refused (`roles` on the listener).
import type { X509Certificate } from 'node:crypto';
import { certificateExtension, encodeOid, readTlv } from '../../common/der.ts';

/** The Modbus/TCP Security role extension. */
export const MODBUS_ROLE_OID = '1.3.6.1.4.1.50316.802.1';

// Which principal a client certificate names is the same question on every mutual-TLS door.
export { normalizeFingerprint, principalForCertificate, subjectCommonName, type CertificateMatch, type CertificateRefusal } from '../client-certificates.ts';

const ROLE_OID_BYTES = encodeOid(MODBUS_ROLE_OID);

/**
 * The role named by the certificate's Modbus role extension, or undefined when it has none. The
 * extension value is an OCTET STRING wrapping a UTF8String (the spec's `Role ::= UTF8String`); a
 * PrintableString or IA5String is accepted too, since some CAs encode plain ASCII that way.
 */
export function modbusRole(cert: X509Certificate): string | undefined {
  const der = new Uint8Array(cert.raw);
  const value = certificateExtension(der, ROLE_OID_BYTES);
  if (!value) return undefined;
  const inner = readTlv(der, value.start, value.end);
  if (!inner || ![0x0c, 0x13, 0x16].includes(inner.tag)) return undefined;
  return Buffer.from(der.subarray(inner.start, inner.end)).toString('utf8');
}
