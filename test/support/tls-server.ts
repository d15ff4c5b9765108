import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { ensureBuilt, freePort, ServerProcess, tempDir } from './server-process';

export interface TlsServer {
  server: ServerProcess;
  /** The self-signed certificate of the API listener (CN and SAN 127.0.0.1), to trust. */
  cert: Buffer;
  /** The plain-HTTP listener for /pki, /ocsp, /tsa and /healthz. */
  publicPort: number;
}

/**
 * A real server process with TLS on the API listener (a fresh self-signed certificate) and the
 * plain-HTTP public listener; resolves once the public listener answers /healthz.
 */
export async function startTlsServer(prefix: string, env: Record<string, string> = {}): Promise<TlsServer> {
  ensureBuilt();
  const dir = tempDir(`${prefix}-`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'key.pem',
      '-out',
      'cert.pem',
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { cwd: dir, stdio: 'ignore' },
  );
  const cert = fs.readFileSync(path.join(dir, 'cert.pem'));
  const publicPort = await freePort();
  const server = new ServerProcess(await freePort(), {
    SIGNET_DATA_DIR: tempDir(`${prefix}-data-`),
    SIGNET_TLS_CERT_FILE: path.join(dir, 'cert.pem'),
    SIGNET_TLS_KEY_FILE: path.join(dir, 'key.pem'),
    SIGNET_PUBLIC_HTTP_PORT: String(publicPort),
    ...env,
  });
  // waitReady polls plain http; poll the public listener's /healthz instead.
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
  return { server, cert, publicPort };
}

export function httpsGet(
  url: string,
  ca: Buffer,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
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
