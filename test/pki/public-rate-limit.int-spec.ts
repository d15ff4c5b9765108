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
      const response = await t.app.inject({ method: 'GET', url: `/pki/${generation}.crt`, remoteAddress: '198.51.100.7' });
      statuses.push(response.statusCode);
      if (response.statusCode === 429) limited = response;
    }
    expect(statuses.slice(0, 4)).toEqual([200, 200, 200, 200]);
    expect(statuses).toContain(429);
    expect(limited!.json().error.code).toBe('RATE_LIMITED');
    expect(Number(limited!.headers['retry-after'])).toBeGreaterThanOrEqual(1);

    const ocsp = await t.app.inject({ method: 'POST', url: `/ocsp/${generation}`, remoteAddress: '198.51.100.7', headers: { 'content-type': 'application/ocsp-request' }, payload: Buffer.from([0x30, 0x00]) });
    expect(ocsp.statusCode).toBe(200);
    expect(ocsp.rawPayload.equals(Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x03]))).toBe(true);

    // Another client is served.
    expect((await t.app.inject({ method: 'GET', url: `/pki/${generation}.crt`, remoteAddress: '198.51.100.8' })).statusCode).toBe(200);
  });
});
