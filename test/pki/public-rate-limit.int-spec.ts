import { CaService } from '../../src/ca/ca.service';
import { DEV_ISSUING_CA } from '../../src/ca/dev-hierarchy.bootstrap';
import { startTestApp, TestApp } from '../support/test-app';

describe('per-client rate limit on the public /pki and /ocsp endpoints', () => {
  let t: TestApp;
  let generation: string;

  beforeAll(async () => {
    t = await startTestApp({ SIGNET_PUBLIC_RATE_LIMIT_PER_SECOND: '2' });
    generation = (await t.app.get(CaService).get(DEV_ISSUING_CA)).generations[0].name;
  });
  afterAll(() => t.close());

  it('answers /pki with 429 and Retry-After once a client exceeds its burst, and OCSP with tryLater', async () => {
    const statuses: number[] = [];
    let limited;
    for (let i = 0; i < 8; i++) {
      const response = await t.app.inject({
        method: 'GET',
        url: `/pki/${generation}.crt`,
        remoteAddress: '198.51.100.7',
      });
      statuses.push(response.statusCode);
      if (response.statusCode === 429) limited = response;
    }
    expect(statuses.slice(0, 4)).toEqual([200, 200, 200, 200]);
    expect(statuses).toContain(429);
    expect(limited!.json().error.code).toBe('RATE_LIMITED');
    expect(Number(limited!.headers['retry-after'])).toBeGreaterThanOrEqual(1);

    const ocsp = await t.app.inject({
      method: 'POST',
      url: `/ocsp/${generation}`,
      remoteAddress: '198.51.100.7',
      headers: { 'content-type': 'application/ocsp-request' },
      payload: Buffer.from([0x30, 0x00]),
    });
    expect(ocsp.statusCode).toBe(200);
    expect(ocsp.rawPayload.equals(Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x03]))).toBe(true);

    // Another client is served.
    expect(
      (await t.app.inject({ method: 'GET', url: `/pki/${generation}.crt`, remoteAddress: '198.51.100.8' })).statusCode,
    ).toBe(200);
  });

  it('ignores X-Forwarded-For without SIGNET_TRUST_PROXY: a client cannot pick another address to escape its limit', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const forwarded = { 'x-forwarded-for': `203.0.113.${i + 1}` };
      statuses.push(
        (
          await t.app.inject({
            method: 'GET',
            url: `/pki/${generation}.crt`,
            remoteAddress: '198.51.100.20',
            headers: forwarded,
          })
        ).statusCode,
      );
    }
    expect(statuses).toContain(429);
  });

  describe('behind a proxy named in SIGNET_TRUST_PROXY', () => {
    let proxied: TestApp;
    /** This app's own issuing-CA generation (its own database and dev hierarchy). */
    let proxiedGeneration: string;
    beforeAll(async () => {
      proxied = await startTestApp({ SIGNET_PUBLIC_RATE_LIMIT_PER_SECOND: '2', SIGNET_TRUST_PROXY: '10.0.0.0/8' });
      proxiedGeneration = (await proxied.app.get(CaService).get(DEV_ISSUING_CA)).generations[0].name;
    });
    afterAll(() => proxied.close());

    const fetchVia = (remoteAddress: string, forwardedFor: string) =>
      proxied.app.inject({
        method: 'GET',
        url: `/pki/${proxiedGeneration}.crt`,
        remoteAddress,
        headers: { 'x-forwarded-for': forwardedFor },
      });

    it('limits each client the proxy forwards for on its own, so one noisy client does not starve the others', async () => {
      const noisy: number[] = [];
      for (let i = 0; i < 8; i++) noisy.push((await fetchVia('10.1.2.3', '203.0.113.50')).statusCode);
      expect(noisy).toContain(429);
      // Same proxy, other clients: each still has its own burst.
      for (const client of ['203.0.113.51', '203.0.113.52', '2001:db8::7'])
        expect((await fetchVia('10.1.2.3', client)).statusCode).toBe(200);
    });

    it('takes the client from the last untrusted hop, and ignores X-Forwarded-For from a peer that is not a named proxy', async () => {
      // "spoofed, real": the proxy appended the real client; what the client wrote itself is not trusted.
      const viaChain: number[] = [];
      for (let i = 0; i < 8; i++)
        viaChain.push((await fetchVia('10.1.2.3', `198.18.0.${i + 1}, 203.0.113.60`)).statusCode);
      expect(viaChain).toContain(429);
      const direct: number[] = [];
      for (let i = 0; i < 8; i++) direct.push((await fetchVia('198.51.100.30', `203.0.113.${100 + i}`)).statusCode);
      expect(direct).toContain(429);
    });
  });
});
