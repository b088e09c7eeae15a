// TLS settings of the pull API. TLS 1.2 stays allowed (central PAM products on older Java and Windows
// stacks still lack TLS 1.3), but only with ECDHE key exchange (forward secrecy) and AEAD ciphers: no
// static-RSA key exchange, no CBC with SHA-1/SHA-2 MACs, no ARIA, Camellia or CCM. TLS 1.3 offers only
// AEAD suites; its three standard ones are listed.
export const SYNC_TLS_MIN_VERSION = 'TLSv1.2';

export const SYNC_TLS_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');
