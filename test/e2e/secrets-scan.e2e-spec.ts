import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureBuilt, freePort, PROJECT_ROOT, ServerProcess, tempDir } from '../support/server-process';

/**
 * Secrets never leak: a real server at debug level with request logging on is put through the
 * operations that handle secrets (token creation and use, target credentials, bad tokens, errors,
 * a TLS key), and everything it wrote and every API response is scanned for the PIN, the SO PIN,
 * the database password, every token, the credentials and any PEM private key.
 */
describe('secrets never appear in logs or API responses', () => {
  it('keeps PINs, tokens, passwords, credentials and private keys out of every log line and response', async () => {
    ensureBuilt();
    const dataDir = tempDir('secrets-');
    const tls = tempDir('secrets-tls-');
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
      { cwd: tls, stdio: 'ignore' },
    );
    const server = new ServerProcess(await freePort(), {
      SIGNET_DATA_DIR: dataDir,
      SIGNET_LOG_LEVEL: 'debug',
      SIGNET_LOG_REQUESTS: 'true',
    });
    const responses: string[] = [];
    try {
      await server.waitReady();
      const admin = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
      const call = async (method: string, url: string, token: string | undefined, body?: unknown) => {
        const response = await fetch(`${server.url}${url}`, {
          method,
          headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          body: body !== undefined ? JSON.stringify(body) : undefined,
        });
        const text = await response.text();
        responses.push(
          `${method} ${url} ${response.status} ${JSON.stringify(Object.fromEntries(response.headers))} ${text}`,
        );
        return { status: response.status, text };
      };

      const createdToken = await call('POST', '/v1/tokens', admin, {
        name: 'ci-signer',
        role: 'signer',
        keys: ['leak-key'],
      });
      expect(createdToken.status).toBe(201);
      const signerToken = JSON.parse(createdToken.text).token as string;
      // The one response allowed to carry a token is its creation; it is not scanned.
      responses.pop();
      await call('POST', '/v1/keys', admin, {
        name: 'leak-key',
        keySpec: 'EC-256',
        subject: { C: 'US', ST: 'Leak', O: 'Signet', CN: 'leak-key' },
      });
      await call('POST', '/v1/keys/leak-key/sign', signerToken, {
        digest: Buffer.alloc(32, 1).toString('base64'),
        hashAlgorithm: 'SHA-256',
      });
      await call('POST', '/v1/keys/leak-key/sign', `${signerToken}x`, { digest: 'bad' });
      await call('GET', '/v1/tokens', admin);
      await call('GET', '/v1/cas', `Basic ${Buffer.from('user:hunter2-basic').toString('base64')}`);
      // Tokens in the wrong place (issue #17): refused, and not written to the request log either.
      // (Only the answers go into the scanned responses: the URLs are this test's own secrets.)
      const idToken = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvYXBwIn0.query-jwt-signature';
      for (const [url, token] of [
        [`/v1/cas?access_token=${admin}`, undefined],
        [`/v1/keys?id_token=${idToken}&password=query-password-9`, admin],
      ] as const) {
        const response = await fetch(`${server.url}${url}`, {
          headers: token ? { authorization: `Bearer ${token}` } : {},
        });
        responses.push(
          `GET (query with secrets) ${response.status} ${JSON.stringify(Object.fromEntries(response.headers))} ${await response.text()}`,
        );
      }

      const credentials = { username: 'robot$signet', password: 'registry-password-7d2f' };
      await call('POST', '/v1/truststores', admin, { name: 'leak-store', cas: ['signet-dev-root'] });
      await call('POST', '/v1/regions', admin, { name: 'leak-region' });
      await call('POST', '/v1/regions/leak-region/targets', admin, {
        name: 'reg',
        kind: 'oci-registry',
        endpoint: 'http://127.0.0.1:9',
        repository: 'signet/truststore',
        truststore: 'leak-store',
        credentials,
      });
      await call('PATCH', '/v1/regions/leak-region/targets/reg', admin, {
        credentials: { ...credentials, password: 'registry-password-second' },
      });
      await call('GET', '/v1/regions/leak-region/targets/reg', admin);
      await call('GET', '/v1/distribution', admin);
      await call('POST', '/v1/distribution/sync', admin, {});
      await call('GET', '/v1/audit?limit=1000', admin);
      await call('GET', '/v1/audit/verify', admin);

      // A CLI run that fails on a bad TLS key file must not print the key either.
      const cli = spawnSync(path.join(PROJECT_ROOT, 'bin', 'signet'), ['status'], {
        encoding: 'utf8',
        env: {
          PATH: process.env.PATH ?? '',
          SIGNET_DATA_DIR: dataDir,
          SIGNET_TLS_CERT_FILE: path.join(tls, 'key.pem'),
          SIGNET_TLS_KEY_FILE: path.join(tls, 'key.pem'),
        },
      });
      responses.push(cli.stdout, cli.stderr);

      const secrets: Record<string, string> = {
        'user PIN': fs.readFileSync(path.join(dataDir, 'softhsm', 'user.pin'), 'utf8').trim(),
        'SO PIN': fs.readFileSync(path.join(dataDir, 'softhsm', 'so.pin'), 'utf8').trim(),
        'database password': fs.readFileSync(path.join(dataDir, 'postgres', 'password'), 'utf8').trim(),
        'admin token': admin,
        'signer token': signerToken,
        'basic credentials': 'hunter2-basic',
        'ID token in a query': idToken,
        'password in a query': 'query-password-9',
        'registry password': credentials.password,
        'second registry password': 'registry-password-second',
      };
      // Give the distribution round a moment to try (and fail) against the closed port.
      await new Promise((r) => setTimeout(r, 1500));
      server.kill('SIGTERM');
      await server.exited;

      const corpus = { logs: server.text(), responses: responses.join('\n') };
      const found: string[] = [];
      for (const [where, text] of Object.entries(corpus)) {
        for (const [what, value] of Object.entries(secrets))
          if (value.length >= 6 && text.includes(value)) found.push(`${what} in ${where}`);
        if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) found.push(`PEM private key in ${where}`);
        if (/authorization"?\s*[:=]\s*"?(Bearer|Basic) [A-Za-z0-9]/i.test(text))
          found.push(`Authorization header in ${where}`);
      }
      expect(found).toEqual([]);
      // The scan saw real traffic: request logs and the audit export are in the corpus.
      expect(corpus.logs).toContain('request completed');
      expect(corpus.responses).toContain('token.created');
    } finally {
      server.kill('SIGKILL');
    }
  });
});
