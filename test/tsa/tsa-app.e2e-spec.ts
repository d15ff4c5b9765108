import { TsaService } from '../../src/tsa/tsa.service';
import { query } from '../support/database';
import { startTestApp, TestApp } from '../support/test-app';
import { OpenSslWorkspace, buildQuery } from './tsa-fixtures';

/** /tsa in the whole application: public (no token), audited, on the first-start dev TSA. */
describe('POST /tsa in the whole app', () => {
  let testApp: TestApp;
  let workspace: OpenSslWorkspace;

  beforeAll(async () => {
    testApp = await startTestApp();
    workspace = new OpenSslWorkspace();
  });
  afterAll(async () => {
    await testApp?.close();
    workspace?.remove();
  });

  it('timestamps without credentials, the token verifies with the TSA root, and the timestamp is audited', async () => {
    const [root] = await testApp.app.get(TsaService).tsaRootCertificates();
    workspace.writeCertificate('tsa-root.pem', root.der);
    workspace.write('artifact.bin', 'manifest');
    await workspace.openssl(['ts', '-query', '-data', 'artifact.bin', '-sha256', '-cert', '-out', 'q.tsq']);

    const response = await testApp.app.inject({
      method: 'POST',
      url: '/tsa',
      headers: { 'content-type': 'application/timestamp-query' },
      payload: workspace.read('q.tsq'),
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/timestamp-reply');
    workspace.write('r.tsr', response.rawPayload);
    expect(
      await workspace.openssl(['ts', '-verify', '-queryfile', 'q.tsq', '-in', 'r.tsr', '-CAfile', 'tsa-root.pem']),
    ).toContain('Verification: OK');

    const serial = /Serial number: (0x[0-9A-F]+)/.exec(
      await workspace.openssl(['ts', '-reply', '-in', 'r.tsr', '-text']),
    )![1];
    const rows = await query<{ subject: string }>(
      testApp.database.url,
      `SELECT subject FROM audit_events WHERE type = 'tsa.timestamp'`,
    );
    expect(rows.map((r) => r.subject)).toEqual([BigInt(serial).toString()]);
  });

  it("serves the TSA root, its CRL and OCSP for the TSA certificate, which Notation checks for the timestamp's chain", async () => {
    const tsa = testApp.app.get(TsaService);
    const [root] = await tsa.tsaRootCertificates();
    workspace.writeCertificate('tsa-root.pem', root.der);
    workspace.writeCertificate('tsa.pem', await tsa.signingCertificate());

    const crt = await testApp.app.inject({ method: 'GET', url: `/pki/${root.generation}.crt` });
    expect(crt.statusCode).toBe(200);
    expect(crt.rawPayload).toEqual(root.der);

    const crl = await testApp.app.inject({ method: 'GET', url: `/pki/${root.generation}.crl` });
    expect(crl.statusCode).toBe(200);
    workspace.write('tsa-root.crl', crl.rawPayload);
    expect(
      await workspace.openssl(['crl', '-inform', 'DER', '-in', 'tsa-root.crl', '-CAfile', 'tsa-root.pem', '-noout']),
    ).toMatch(/verify OK/);

    await workspace.openssl([
      'ocsp',
      '-issuer',
      'tsa-root.pem',
      '-cert',
      'tsa.pem',
      '-no_nonce',
      '-reqout',
      'ocsp.req',
    ]);
    const ocsp = await testApp.app.inject({
      method: 'POST',
      url: `/ocsp/${root.generation}`,
      headers: { 'content-type': 'application/ocsp-request' },
      payload: workspace.read('ocsp.req'),
    });
    expect(ocsp.statusCode).toBe(200);
    workspace.write('ocsp.resp', ocsp.rawPayload);
    expect(
      await workspace.openssl([
        'ocsp',
        '-respin',
        'ocsp.resp',
        '-issuer',
        'tsa-root.pem',
        '-CAfile',
        'tsa-root.pem',
        '-cert',
        'tsa.pem',
      ]),
    ).toContain('tsa.pem: good');
  });

  it('reports the clock check in /readyz and documents /tsa in OpenAPI', async () => {
    const ready = await testApp.app.inject({ method: 'GET', url: '/readyz' });
    const checks = ready.statusCode === 200 ? ready.json().checks : ready.json().error.details.checks;
    expect(checks.clock).toMatchObject({ ok: expect.any(Boolean) });
    const doc = (await testApp.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    expect(doc.paths['/tsa'].post.requestBody.content['application/timestamp-query']).toBeDefined();
  });
});

describe('POST /tsa without a TSA', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp({ SIGNET_TSA_CA: 'no-such-tsa' });
  });
  afterAll(() => testApp?.close());

  it('answers 503 in the JSON error shape (not a timestamp-reply), and the dev TSA is not created for a foreign SIGNET_TSA_CA', async () => {
    const response = await testApp.app.inject({
      method: 'POST',
      url: '/tsa',
      headers: { 'content-type': 'application/timestamp-query' },
      payload: buildQuery(),
    });
    expect(response.statusCode).toBe(503);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.json().error).toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
      message: expect.stringContaining("'no-such-tsa'"),
    });
    expect(await testApp.app.get(TsaService).tsaRootCertificates()).toEqual([]);
  });
});
