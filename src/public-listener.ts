import * as http from 'node:http';
import * as net from 'node:net';
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
export async function startPublicListener(
  fastify: FastifyInstance,
  port: number,
  host: string,
  timeouts: SignetConfig['http'],
): Promise<http.Server> {
  const router = (fastify as unknown as { routing: (req: http.IncomingMessage, res: http.ServerResponse) => void })
    .routing;
  const server = http.createServer(serverTimeoutOptions(timeouts), (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (PUBLIC_PATHS.some((pattern) => pattern.test(path))) {
      router(req, res);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json; charset=utf-8', 'x-content-type-options': 'nosniff' });
    res.end(
      JSON.stringify({
        error: { code: 'ROUTE_NOT_FOUND', message: 'only /pki, /ocsp and /tsa are served over plain HTTP' },
      }),
    );
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
 * Stops a server in the order that loses nothing behind a balancer (docs/operations.md, "Behind
 * nginx"):
 * 1. closes the listening socket only, at once: a balancer's next new connection is refused, which
 *    it may retry elsewhere since nothing was sent. No open connection is touched (http.Server's
 *    own close() would also close the idle ones, and a balancer may be writing a request on one);
 * 2. waits up to `idleMs` for the clients to close their connections (the caller makes answers
 *    carry `Connection: close` from now on; a balancer closes the pooled ones it leaves idle after
 *    its own keep-alive timeout, which must be shorter than `idleMs`);
 * 3. closes the connections still idle, waits up to `graceMs` for requests in flight (a stalled
 *    upload, a long-lived stream), then cuts what is left.
 */
export async function stopServer(server: http.Server | undefined, idleMs: number, graceMs: number): Promise<void> {
  if (!server) return;
  const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));
  net.Server.prototype.close.call(server);
  const deadline = Date.now() + idleMs;
  while (Date.now() < deadline && (await openConnections(server)) > 0)
    await new Promise((resolve) => setTimeout(resolve, 25));
  server.closeIdleConnections();
  const cut = Number.isFinite(graceMs) ? setTimeout(() => server.closeAllConnections(), graceMs) : undefined;
  cut?.unref();
  await closed;
  clearTimeout(cut);
}

function openConnections(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.getConnections((error, count) => resolve(error ? 0 : count)));
}
