import { createHash, randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { Pkcs11FaultInjector } from '../../src/hsm/pkcs11-fault-injector';
import { Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
import { tamper } from '../audit/audit-harness';
import { waitFor } from '../distribution/distribution-helpers';
import { http, SUBJECT } from '../rotation/rotation-helpers';
import { RotationTestApp, startRotationTestApp } from '../rotation/rotation-test-app';

/**
 * The metrics the HSM and audit alerts read (deploy/prometheus/alerts.yml), on a real SoftHSM2
 * token and PostgreSQL: a token outage shows in signet_hsm_token_state, a checkpoint in the audit
 * checkpoint gauges, a tampered row in signet_audit_chain_broken. The outage is injected at the
 * PKCS#11 seam (a double: SoftHSM2 cannot make its token disappear).
 */
describe('operational metrics: HSM pool and audit chain', () => {
  const faults = new Pkcs11FaultInjector();
  let t: RotationTestApp;
  let api: ReturnType<typeof http>;

  beforeAll(async () => {
    t = await startRotationTestApp({
      hsmFaults: faults,
      env: { SIGNET_LOG_LEVEL: 'fatal', SIGNET_METRICS_PUBLIC: 'true', SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0' },
      hsm: { signThreadModule: 'shared' },
    });
    api = http(t.app, t.adminToken);
  }, 180_000);
  afterAll(async () => {
    faults.disarm();
    await t?.close();
  });

  const scrape = async () => (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
  /** The value of one sample (labels in exposition order, without service=…), or undefined when absent. */
  function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
    for (const line of text.split('\n')) {
      const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
      if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
    }
    return undefined;
  }

  it('signet_hsm_token_state follows a token outage and its recovery; sessions return to the configured size', async () => {
    const token = t.token.tokenLabel;
    const store = t.app.get(Pkcs11KeyStore);
    let text = await scrape();
    expect(sample(text, 'signet_hsm_token_state', { token, state: 'ready' })).toBe(1);
    expect(sample(text, 'signet_hsm_token_state', { token, state: 'down' })).toBe(0);
    expect(sample(text, 'signet_hsm_sessions', { token })).toBe(
      sample(text, 'signet_hsm_sessions_configured', { token }),
    );
    const recoveriesBefore = sample(text, 'signet_hsm_recoveries_total')!;

    expect(
      (
        await api('POST', '/v1/keys', {
          name: 'metrics-key',
          keySpec: 'EC-256',
          subject: { ...SUBJECT, CN: 'metrics-key' },
        })
      ).status,
    ).toBe(201);
    const signer = (await api('POST', '/v1/tokens', { name: 'metrics-signer', role: 'signer', keys: ['metrics-key'] }))
      .body.token;
    const sign = () =>
      t.app.inject({
        method: 'POST',
        url: '/v1/keys/metrics-key/sign',
        headers: { authorization: `Bearer ${signer}` },
        payload: { digest: createHash('sha256').update(randomBytes(16)).digest('base64'), hashAlgorithm: 'SHA-256' },
      });
    expect((await sign()).statusCode).toBe(200);

    faults.arm('CKR_TOKEN_NOT_PRESENT', { count: Infinity });
    try {
      await waitFor('the token pool to be down', async () => {
        await sign();
        return store.health().state === 'down';
      });
      text = await scrape();
      expect(sample(text, 'signet_hsm_token_state', { token, state: 'down' })).toBe(1);
      expect(sample(text, 'signet_hsm_token_state', { token, state: 'ready' })).toBe(0);
    } finally {
      faults.disarm();
    }
    await waitFor(
      'the token pool to recover',
      async () => store.health().state === 'ready' && store.health().sessions === store.health().configuredSessions,
    );
    text = await scrape();
    expect(sample(text, 'signet_hsm_token_state', { token, state: 'ready' })).toBe(1);
    expect(sample(text, 'signet_hsm_sessions', { token })).toBe(
      sample(text, 'signet_hsm_sessions_configured', { token }),
    );
    expect(sample(text, 'signet_hsm_recoveries_total')).toBeGreaterThan(recoveriesBefore);
  });

  it('checkpoint gauges: events age until a checkpoint covers them; a tampered row sets signet_audit_chain_broken', async () => {
    let text = await scrape();
    expect(sample(text, 'signet_audit_chain_broken')).toBe(0);
    expect(text).toContain('# TYPE signet_audit_last_checkpoint_timestamp_seconds gauge');
    expect(sample(text, 'signet_audit_last_checkpoint_timestamp_seconds')).toBeUndefined();
    expect(sample(text, 'signet_audit_chain_head_seq')).toBeGreaterThan(0);
    expect(sample(text, 'signet_audit_uncheckpointed_age_seconds')).toBeGreaterThan(0);
    expect(sample(text, 'signet_audit_checkpoint_interval_seconds')).toBe(0);

    const checkpoint = await api('POST', '/v1/audit/checkpoints');
    expect(checkpoint.status).toBe(201);
    text = await scrape();
    expect(sample(text, 'signet_audit_last_checkpoint_seq')).toBe(Number(checkpoint.body.seq));
    expect(sample(text, 'signet_audit_last_checkpoint_seq')).toBe(sample(text, 'signet_audit_chain_head_seq'));
    expect(sample(text, 'signet_audit_uncheckpointed_age_seconds')).toBe(0);
    expect(
      Math.abs(
        sample(text, 'signet_audit_last_checkpoint_timestamp_seconds')! - Date.parse(checkpoint.body.time) / 1000,
      ),
    ).toBeLessThan(1);
    expect(sample(text, 'signet_audit_chain_broken')).toBe(0); // the checkpoint verified the chain first

    await tamper(t.app.get(DataSource), `UPDATE audit_events SET data = '{"tampered": true}' WHERE seq = 2`);
    const verify = await api('GET', '/v1/audit/verify?full=true');
    expect(verify.body.ok).toBe(false);
    text = await scrape();
    expect(sample(text, 'signet_audit_chain_broken')).toBe(1);
    expect(sample(text, 'signet_audit_verify_total', { mode: 'full', result: 'broken' })).toBe(1);
  });
});
