import { loadConfig } from '../config/config';
import { ClientRateLimiter } from './client-rate-limiter';

describe(ClientRateLimiter.name, () => {
  const limiter = () => new ClientRateLimiter(loadConfig({ SIGNET_PUBLIC_RATE_LIMIT_PER_SECOND: '10' }));

  it('allows a burst of twice the rate per client, then asks the client to wait', () => {
    const l = limiter();
    for (let i = 0; i < 20; i++) expect(l.take('10.0.0.1', 1000)).toBe(0);
    const wait = l.take('10.0.0.1', 1000);
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(0.1);
    // Another client is not affected.
    expect(l.take('10.0.0.2', 1000)).toBe(0);
  });

  it('refills at the configured rate', () => {
    const l = limiter();
    for (let i = 0; i < 20; i++) l.take('a', 0);
    expect(l.take('a', 0)).toBeGreaterThan(0);
    expect(l.take('a', 1000)).toBe(0); // one second later: ten more
  });
});
