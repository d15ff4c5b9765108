import * as http from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { SignetConfig } from './config/config';
import { serverTimeoutOptions } from './http-timeouts';

/** What verifiers and Notation fetch without credentials, over plain HTTP. */
const PUBLIC_PATHS = [/^\/pki\/[^/]+$/, /^\/ocsp\/.+/, /^\/tsa$/, /^\/healthz$/];

/**
 * With TLS on the API listener, verifiers still need /pki, /ocsp (and /tsa) over plain HTTP: this
 * second listener hands only those paths to the same Fastify router (same handlers, limits and
 * hooks); everything else gets 404 there, so no credentialed route is reachable without TLS.
 */
export async function startPublicListener(fastify: FastifyInstance, port: number, host: string, timeouts: SignetConfig['http']): Promise<http.Server> {
  const router = (fastify as unknown as { routing: (req: http.IncomingMessage, res: http.ServerResponse) => void }).routing;
  const server = http.createServer(serverTimeoutOptions(timeouts), (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (PUBLIC_PATHS.some((pattern) => pattern.test(path))) {
      router(req, res);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json; charset=utf-8', 'x-content-type-options': 'nosniff' });
    res.end(JSON.stringify({ error: { code: 'ROUTE_NOT_FOUND', message: 'only /pki, /ocsp and /tsa are served over plain HTTP' } }));
  });
  server.keepAliveTimeout = 65_000;
  // Same as the API listener's connectionTimeout: a socket silent this long mid-request is closed.
  server.setTimeout(timeouts.requestTimeoutMs);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

/**
 * Stops accepting and resolves once every connection has ended; connections still open after
 * `graceMs` (a stalled upload, a long-lived stream) are closed then.
 */
export function closeServer(server: http.Server | undefined, graceMs = Infinity): Promise<void> {
  if (!server) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = Number.isFinite(graceMs) ? setTimeout(() => server.closeAllConnections(), graceMs) : undefined;
    timer?.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}
