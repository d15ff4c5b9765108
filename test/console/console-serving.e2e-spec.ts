import * as fs from 'node:fs';
import * as path from 'node:path';
import { brotliCompressSync, brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import { tempDir } from '../support/server-process';
import { startTestApp, TestApp } from '../support/test-app';

const INDEX =
  '<!doctype html><html><head><link rel="stylesheet" href="/console/assets/main-Q2FGH7XZ.css"></head><body><script type="module" src="/console/assets/main-K3J9P2LM.js"></script></body></html>';
const JS = 'console.log("console");'.repeat(50);

/**
 * /console on the whole application, from a console build laid out as `npm run build` writes it
 * (index.html, hashed bundles under assets/, .br and .gz beside each; made here so this test does
 * not depend on the front-end build).
 */
describe('security console assets (HTTP)', () => {
  let t: TestApp;

  beforeAll(async () => {
    const dir = tempDir('console-build-');
    fs.mkdirSync(path.join(dir, 'assets'));
    const write = (name: string, text: string, compressed = true) => {
      fs.writeFileSync(path.join(dir, name), text);
      if (compressed) {
        fs.writeFileSync(path.join(dir, `${name}.br`), brotliCompressSync(text));
        fs.writeFileSync(path.join(dir, `${name}.gz`), gzipSync(text));
      }
    };
    write('index.html', INDEX);
    write('assets/main-K3J9P2LM.js', JS);
    write('assets/main-Q2FGH7XZ.css', 'body{color:#111}', false);
    t = await startTestApp({ SIGNET_CONSOLE_DIR: dir });
  });
  afterAll(async () => {
    await t.close();
  });

  const get = (url: string, headers: Record<string, string> = {}) => t.app.inject({ method: 'GET', url, headers });

  it('serves index.html at /console and for every page path of the app, never cached, under the strict CSP', async () => {
    for (const url of ['/console', '/console/', '/console/fleet', '/console/revoke/01AB', '/console?from=x']) {
      const response = await get(url);
      expect([url, response.statusCode]).toEqual([url, 200]);
      expect(response.body).toBe(INDEX);
      expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(response.headers['cache-control']).toBe('no-store');
      expect(response.headers['content-security-policy']).toBe(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
      );
      expect(response.headers['content-security-policy']).not.toContain('unsafe-inline');
      expect(response.headers['x-content-type-options']).toBe('nosniff');
      expect(response.headers['referrer-policy']).toBe('no-referrer');
    }
    // The API keeps its own policy.
    expect((await get('/healthz')).headers['content-security-policy']).toBe(
      "default-src 'none'; frame-ancestors 'none'",
    );
  });

  it('serves hashed bundles as immutable, precompressed as the client accepts (br before gzip), identity otherwise', async () => {
    const url = '/console/assets/main-K3J9P2LM.js';
    const br = await get(url, { 'accept-encoding': 'gzip, deflate, br' });
    expect(br.statusCode).toBe(200);
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(br.headers.vary).toMatch(/accept-encoding/i);
    expect(br.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(brotliDecompressSync(br.rawPayload).toString()).toBe(JS);
    const gzip = await get(url, { 'accept-encoding': 'gzip, br;q=0' });
    expect(gzip.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gzip.rawPayload).toString()).toBe(JS);
    const identity = await get(url);
    expect(identity.headers['content-encoding']).toBeUndefined();
    expect(identity.body).toBe(JS);
    // A file the build did not compress goes as is.
    const css = await get('/console/assets/main-Q2FGH7XZ.css', { 'accept-encoding': 'br, gzip' });
    expect(css.headers['content-encoding']).toBeUndefined();
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
  });

  it('answers 404 in the error shape for missing files and never reads outside the build', async () => {
    for (const url of [
      '/console/assets/missing-AAAAAAAA.js',
      '/console/../package.json',
      '/console/%2e%2e/package.json',
      '/console/assets/main-K3J9P2LM.js.br',
      '/console/index.html.gz',
    ]) {
      const response = await get(url);
      if (response.statusCode === 200) expect(response.body).toBe(INDEX);
      else {
        expect([url, response.statusCode]).toEqual([url, 404]);
        expect(response.json().error.code).toBe('ROUTE_NOT_FOUND');
      }
      expect(response.body).not.toContain('"name": "signet"');
    }
  });
});
