import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { ensureBuilt, freePort, ServerProcess, tempDir } from '../support/server-process';

function httpsGet(url: string, ca: Buffer): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      })
      .on('error', reject);
  });
}

describe('TLS on the API listener, plain HTTP for /pki and /ocsp only (real server process)', () => {
  let server: ServerProcess;
  let cert: Buffer;
  let publicPort: number;

  beforeAll(async () => {
    ensureBuilt();
    const dir = tempDir('tls-');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: dir, stdio: 'ignore' });
    cert = fs.readFileSync(path.join(dir, 'cert.pem'));
    publicPort = await freePort();
    server = new ServerProcess(await freePort(), {
      SIGNET_DATA_DIR: tempDir('tls-data-'),
      SIGNET_TLS_CERT_FILE: path.join(dir, 'cert.pem'),
      SIGNET_TLS_KEY_FILE: path.join(dir, 'key.pem'),
      SIGNET_PUBLIC_HTTP_PORT: String(publicPort),
    });
    // waitReady polls plain http; poll the public listener's /healthz, then check TLS readiness.
    const deadline = Date.now() + 90_000;
    for (;;) {
      try {
        if ((await fetch(`http://127.0.0.1:${publicPort}/healthz`)).status === 200) break;
      } catch {
        // not yet
      }
      if (Date.now() > deadline) throw new Error(`no public listener:\n${server.text().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
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
