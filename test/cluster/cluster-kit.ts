import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import type { SignTransport } from '../drills/drill-kit';

/**
 * Sign requests over node:http with a keep-alive agent, the way a balancer or a long-lived client
 * pools connections. A failure carries the socket error's code and `reusedSocket` (the request went
 * out on a pooled connection): a reset there is the rolling-restart loss the drain exists to prevent.
 * With `idempotent`, each request gets a fresh `idempotencyKey`, mirrored in the `Idempotency-Key`
 * header a balancer keys its retries on (deploy/nginx/signet.conf).
 */
export function keepAliveTransport(baseUrl: () => string, token: string, key: string, options: { agent: http.Agent; idempotent?: boolean }): SignTransport {
  return (payload) =>
    new Promise((resolve, reject) => {
      const headers: Record<string, string> = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      let body = payload;
      if (options.idempotent) {
        const idempotencyKey = randomUUID();
        body = JSON.stringify({ ...JSON.parse(payload), idempotencyKey });
        headers['idempotency-key'] = idempotencyKey;
      }
      const request = http.request(`${baseUrl()}/v1/keys/${key}/sign`, { method: 'POST', agent: options.agent, headers, timeout: 60_000 }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', (error) => reject(Object.assign(error, { reusedSocket: request.reusedSocket })));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            retryAfter: response.headers['retry-after'],
            connectionClose: /\bclose\b/i.test(response.headers.connection ?? ''),
          }),
        );
      });
      request.on('timeout', () => request.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      request.on('error', (error) => reject(Object.assign(error, { reusedSocket: request.reusedSocket })));
      request.end(body);
    });
}
