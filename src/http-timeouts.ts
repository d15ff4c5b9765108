import type { SignetConfig } from './config/config';

export interface ServerTimeoutOptions {
  headersTimeout: number;
  requestTimeout: number;
  connectionsCheckingInterval: number;
}

/**
 * Node http/https server options that cut off slow or half-open clients (slowloris, a body that
 * trickles or never comes, a socket that sends nothing): both listeners use them. Node only looks
 * for expired requests every `connectionsCheckingInterval` (30 s by default, which would let a
 * 1 s timeout run for 31 s), so that interval follows the header timeout.
 */
export function serverTimeoutOptions(http: SignetConfig['http']): ServerTimeoutOptions {
  return {
    headersTimeout: http.headersTimeoutMs,
    requestTimeout: http.requestTimeoutMs,
    connectionsCheckingInterval: Math.max(100, Math.min(5000, Math.floor(http.headersTimeoutMs / 4))),
  };
}

/**
 * With TLS, a client that connects and never completes the handshake is not yet an HTTP
 * connection, so the header timeout does not see it; the handshake gets the same bound.
 */
export function tlsHandshakeTimeout(http: SignetConfig['http']): number {
  return http.headersTimeoutMs;
}
