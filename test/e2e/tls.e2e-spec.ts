import { httpsGet, startTlsServer } from '../support/tls-server';
import { ServerProcess } from '../support/server-process';

describe('TLS on the API listener, plain HTTP for /pki and /ocsp only (real server process)', () => {
  let server: ServerProcess;
  let cert: Buffer;
  let publicPort: number;

  beforeAll(async () => {
    ({ server, cert, publicPort } = await startTlsServer('tls'));
  });
  afterAll(async () => {
    server.kill('SIGTERM');
    await server.exited;
  });

  it('serves the API over TLS with HSTS and the public endpoints over plain HTTP, and nothing else over plain HTTP', async () => {
    let ready;
    for (let i = 0; i < 100; i++) {
      ready = await httpsGet(`https://127.0.0.1:${server.port}/readyz`, cert);
      if (ready.status === 200) break;
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(ready!.status).toBe(200);
    expect(ready!.headers['strict-transport-security']).toContain('max-age=');
    await expect(fetch(`http://127.0.0.1:${server.port}/readyz`)).rejects.toThrow();

    const cas = await httpsGet(`https://127.0.0.1:${server.port}/v1/cas`, cert);
    expect(cas.status).toBe(401);

    const generation = /"(signet-dev-issuing-g\d+)"/.exec(server.text())?.[1] ?? 'signet-dev-issuing-g1';
    const crt = await fetch(`http://127.0.0.1:${publicPort}/pki/${generation}.crt`);
    expect(crt.status).toBe(200);
    expect(crt.headers.get('content-type')).toBe('application/pkix-cert');
    const crl = await fetch(`http://127.0.0.1:${publicPort}/pki/${generation}.crl`);
    expect(crl.status).toBe(200);
    const api = await fetch(`http://127.0.0.1:${publicPort}/v1/cas`);
    expect(api.status).toBe(404);
    expect(((await api.json()) as { error: { code: string } }).error.code).toBe('ROUTE_NOT_FOUND');
  });
});
