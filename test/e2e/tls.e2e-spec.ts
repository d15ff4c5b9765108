import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { httpsGet, startTlsServer } from '../support/tls-server';
import { ServerProcess, tempDir } from '../support/server-process';

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

  /** One TLS handshake by OpenSSL's own client: the suite it got, or undefined when the server refused. */
  function handshake(args: string[]): string | undefined {
    const caFile = path.join(tempDir('tls-ca-'), 'cert.pem');
    fs.writeFileSync(caFile, cert);
    const run = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${server.port}`, '-CAfile', caFile, ...args], {
      input: '',
      encoding: 'utf8',
      timeout: 20_000,
    });
    // A refused handshake prints "Cipher is (NONE)" and exits non-zero.
    const cipher = /Cipher is (\S+)/.exec(run.stdout)?.[1];
    return run.status === 0 && cipher !== undefined && cipher !== '(NONE)' ? cipher : undefined;
  }

  it("offers only Mozilla's intermediate suites: TLS 1.2 refuses CBC and SHA-1 suites, and takes ECDHE with AES-GCM or ChaCha20-Poly1305; TLS 1.3 works", () => {
    // The listener's certificate is EC P-256, so the ECDSA variants are the ones that could be chosen.
    for (const weak of [
      'ECDHE-ECDSA-AES128-SHA',
      'ECDHE-ECDSA-AES256-SHA',
      'ECDHE-ECDSA-AES128-SHA256',
      'ECDHE-ECDSA-AES256-SHA384',
    ]) {
      expect([weak, handshake(['-tls1_2', '-cipher', weak])]).toEqual([weak, undefined]);
    }
    for (const strong of [
      'ECDHE-ECDSA-AES128-GCM-SHA256',
      'ECDHE-ECDSA-AES256-GCM-SHA384',
      'ECDHE-ECDSA-CHACHA20-POLY1305',
    ]) {
      expect(handshake(['-tls1_2', '-cipher', strong])).toBe(strong);
    }
    expect(handshake(['-tls1_3'])).toMatch(/^TLS_(AES_128_GCM_SHA256|AES_256_GCM_SHA384|CHACHA20_POLY1305_SHA256)$/);
  });
});
