// Config schemas of OPC UA listeners (front doors) and targets (upstream servers), validated by
// config/load.ts through the adapter registry. Defaults live here and only here.
import { z } from 'zod';
import { id, listenerBaseSchema, targetBaseSchema } from '../../config/schema-parts.ts';

/** Security policies the front door and the upstream link may use (node-opcua names). */
export const opcuaSecurityPolicies = ['Basic256Sha256', 'Aes128_Sha256_RsaOaep', 'Aes256_Sha256_RsaPss'] as const;
export const opcuaSecurityModes = ['SignAndEncrypt', 'Sign'] as const;

/**
 * An OPC UA front door. Endpoints offer SignAndEncrypt with the three current policies unless told
 * otherwise; `allow_security_none: true` adds an unsecured endpoint (and every session on it is journaled
 * as insecure). Client application certificates are trusted only from `trusted_clients` (PEM or DER
 * files); user certificates from `trusted_user_certificates` or by a principal's configured fingerprint.
 */
export const opcuaListenerSchema = listenerBaseSchema.extend({
  protocol: z.literal('opcua'),
  /** Targets served by this front door, each under Objects/<target-id>/. */
  targets: z.array(id).min(1),
  security_modes: z.array(z.enum(opcuaSecurityModes)).min(1).default(['SignAndEncrypt']),
  security_policies: z.array(z.enum(opcuaSecurityPolicies)).min(1).default([...opcuaSecurityPolicies]),
  allow_security_none: z.boolean().default(false),
  /** Client application certificates (PEM or DER files) this front door accepts. Nothing else is trusted. */
  trusted_clients: z.array(z.string().min(1)).default([]),
  /** X.509 user certificates (PEM or DER files) accepted as user identity tokens. */
  trusted_user_certificates: z.array(z.string().min(1)).default([]),
  /** PKI folders (server/ and client/ inside). Default: STATE_DIR/opcua/<listener-id>. */
  pki_dir: z.string().min(1).optional(),
  /** Host name put in the server certificate and endpoint URLs. Default: the listener host. */
  hostname: z.string().min(1).optional(),
  /**
   * The operator's own front-door certificate and its private key (PEM files), served as they are.
   * Default: a self-signed certificate made under pki_dir naming the appliance, its site, `hostname`,
   * `host` and 127.0.0.1.
   */
  certificate_file: z.string().min(1).optional(),
  private_key_file: z.string().min(1).optional(),
  /** The operator's own certificate and key (PEM) for Penstock's connections to this listener's targets. */
  client_certificate_file: z.string().min(1).optional(),
  client_private_key_file: z.string().min(1).optional(),
  /** A connection that has not activated a session this long after connecting is closed. */
  handshake_seconds: z.number().int().min(1).max(600).default(15),
  max_sessions: z.number().int().min(1).max(1000).default(50),
  /** How long the mirrored structure of a target stays fresh before a browse re-reads it upstream. */
  browse_cache_seconds: z.number().int().min(1).max(86_400).default(300),
  /** How long a principal's computed browse visibility is reused (grants changes clear it at once). */
  visibility_cache_seconds: z.number().int().min(1).max(3600).default(30),
}).strict().superRefine((l, ctx) => {
  for (const [cert, key] of [['certificate_file', 'private_key_file'], ['client_certificate_file', 'client_private_key_file']] as const) {
    if ((l[cert] === undefined) !== (l[key] === undefined)) ctx.addIssue({ code: 'custom', path: [l[cert] ? key : cert], message: `${cert} and ${key} go together` });
  }
});
export type OpcuaListenerConfig = z.infer<typeof opcuaListenerSchema>;

/**
 * An upstream OPC UA server. Penstock connects with its own application certificate (client PKI under
 * the listener's pki_dir) and, when `username` is set, the password from `credential` (vault:NAME).
 * The upstream's certificate must be pinned with `server_certificate` unless security_mode is None.
 */
export const opcuaTargetSchema = targetBaseSchema.extend({
  protocol: z.literal('opcua'),
  endpoint: z.string().regex(/^opc\.tcp:\/\/[^\s/]+(:\d+)?(\/\S*)?$/, 'must be an opc.tcp:// URL'),
  security_mode: z.enum(['SignAndEncrypt', 'Sign', 'None']).default('SignAndEncrypt'),
  security_policy: z.enum(opcuaSecurityPolicies).default('Basic256Sha256'),
  server_certificate: z.string().min(1).optional(),
  username: z.string().min(1).optional(),
  /** Upstream node to mirror from (default: the Objects folder). */
  root: z.string().min(1).default('i=85'),
  /** At most this many upstream nodes are mirrored (a huge upstream must not exhaust the gateway). */
  max_nodes: z.number().int().min(1).max(100_000).default(5000),
  max_depth: z.number().int().min(1).max(32).default(10),
  timeout_ms: z.number().int().min(100).max(120_000).default(5000),
}).strict().superRefine((t, ctx) => {
  if (t.security_mode !== 'None' && !t.server_certificate) {
    ctx.addIssue({ code: 'custom', path: ['server_certificate'], message: 'pin the upstream server certificate (PEM or DER file) unless security_mode is None' });
  }
  if (t.username && !t.credential) ctx.addIssue({ code: 'custom', path: ['credential'], message: '`username` needs `credential: vault:NAME` holding the password' });
});
export type OpcuaTargetConfig = z.infer<typeof opcuaTargetSchema>;
