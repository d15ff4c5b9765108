import type { SecureContextOptions, TlsOptions } from 'node:tls';

/**
 * Mozilla's "intermediate" server configuration (ssl-config.mozilla.org) for the API listener:
 * TLS 1.2 with ECDHE key exchange and AEAD ciphers only (AES-GCM, ChaCha20-Poly1305) — no CBC,
 * no SHA-1 MACs, no static RSA key exchange, no finite-field DHE — and TLS 1.3 with its standard
 * suites. Named in OpenSSL's spelling; the TLS_* names set the TLS 1.3 suites.
 */
export const TLS13_CIPHER_SUITES = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
] as const;
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
] as const;

export function tlsPolicy(): Pick<TlsOptions & SecureContextOptions, 'minVersion' | 'ciphers' | 'honorCipherOrder'> {
  return {
    minVersion: 'TLSv1.2',
    ciphers: [...TLS13_CIPHER_SUITES, ...TLS12_CIPHERS].join(':'),
    // Every suite offered is strong, so the client picks the one its hardware does fastest
    // (ChaCha20 without AES instructions) — Mozilla's advice for this list.
    honorCipherOrder: false,
  };
}
