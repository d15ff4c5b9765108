import { Logger, LoggerService } from '@nestjs/common';
import { AuditFullVerifyService } from '../../src/audit/audit-full-verify.service';
import { AuditVerificationsRepository } from '../../src/audit/audit-verifications.repository';
import { loadConfig } from '../../src/config/config';
import { MetricsService } from '../../src/observability/metrics.service';
import { createNodeSigner } from '../support/node-signer';
import { createTestDatabase, query, TestDatabase } from '../support/database';
import { appendEvents, AuditHarness, createAuditHarness, tamper } from './audit-harness';

const HOUR = 3_600_000;

/**
 * Issue #17: the default verify starts at the last checkpoint that still matches, so an edit made
 * before it (by someone past the database's guards, e.g. a superuser) goes unseen. The scheduled
 * full verify recomputes the whole kept chain once per interval, on one replica, and says so in
 * its metrics and at error level.
 */
describe(AuditFullVerifyService.name, () => {
  let database: TestDatabase;
  let replicas: Array<{ harness: AuditHarness; service: AuditFullVerifyService; metrics: MetricsService }>;
  let now = Date.UTC(2026, 2, 10, 12);
  const errors: string[] = [];

  const gauge = async (metrics: MetricsService, name: string) =>
    (await metrics.registry.getSingleMetric(name)!.get()).values[0]?.value;

  beforeEach(async () => {
    database = await createTestDatabase();
    replicas = [];
    for (let i = 0; i < 2; i++) {
      const harness = await createAuditHarness(database.url, { signer: createNodeSigner('EC-256'), clock: () => now });
      const metrics = new MetricsService();
      const config = loadConfig({ DATABASE_URL: database.url });
      replicas.push({
        harness,
        metrics,
        service: new AuditFullVerifyService(
          new AuditVerificationsRepository(harness.dataSource),
          harness.verifier,
          harness.audit,
          config,
          metrics,
        ),
      });
    }
    errors.length = 0;
    const sink: LoggerService = {
      log: () => undefined,
      warn: () => undefined,
      error: (message: unknown) => errors.push(String(message)),
    };
    Logger.overrideLogger(sink);
  });
  afterEach(async () => {
    for (const { harness } of replicas) await harness.close();
    await database.drop();
  });

  it('runs daily by default and finds an edit made before the last checkpoint, which the default verify misses', async () => {
    const [a, b] = replicas;
    await appendEvents(a.harness.audit, 20);
    await a.harness.checkpoints.create();
    await appendEvents(a.harness.audit, 10);

    const first = await a.service.runIfDue();
    expect(first).toMatchObject({ ok: true, checked: 30, head: '30' });
    expect(await gauge(a.metrics, 'signet_audit_verify_ok')).toBe(1);
    expect(await gauge(a.metrics, 'signet_audit_verify_last_run_timestamp_seconds')).toBe(now / 1000);
    // Not due again within the day, on either replica.
    now += 20 * HOUR;
    expect(await a.service.runIfDue()).toBeUndefined();
    expect(await b.service.runIfDue()).toBeUndefined();

    await tamper(a.harness.dataSource, `UPDATE audit_events SET data = '{"i": 999}' WHERE seq = 5`);
    expect(await a.harness.verifier.verify()).toMatchObject({ ok: true, from: '20' });

    now += 4 * HOUR;
    const second = await b.service.runIfDue();
    expect(second).toMatchObject({
      ok: false,
      firstBrokenSeq: '5',
      reason: expect.stringMatching(/row 5 does not match its hash/),
    });
    expect(await gauge(b.metrics, 'signet_audit_verify_ok')).toBe(0);
    expect(errors).toEqual([
      expect.stringMatching(/^scheduled full verify FAILED: the audit chain is broken at seq 5: /),
    ]);
    // The replica that did not run it reports the same outcome.
    await a.service.refreshMetrics();
    expect(await gauge(a.metrics, 'signet_audit_verify_ok')).toBe(0);
    expect(await gauge(a.metrics, 'signet_audit_verify_last_run_timestamp_seconds')).toBe(now / 1000);
  });

  it('one replica runs it when several are due at once', async () => {
    await appendEvents(replicas[0].harness.audit, 5);
    const runs = await Promise.all([...replicas, ...replicas].map((r) => r.service.runIfDue()));
    expect(runs.filter(Boolean)).toHaveLength(1);
    expect(await query(database.url, 'SELECT ok, checked FROM audit_verifications')).toEqual([
      { ok: true, checked: '5' },
    ]);
  });

  it('is off with SIGNET_AUDIT_FULL_VERIFY_INTERVAL_HOURS=0', async () => {
    const { harness } = replicas[0];
    const off = new AuditFullVerifyService(
      new AuditVerificationsRepository(harness.dataSource),
      harness.verifier,
      harness.audit,
      loadConfig({ DATABASE_URL: database.url, SIGNET_AUDIT_FULL_VERIFY_INTERVAL_HOURS: '0' }),
    );
    expect(await off.runIfDue()).toBeUndefined();
    expect(await query(database.url, 'SELECT * FROM audit_verifications')).toEqual([]);
  });
});
