import { BeforeApplicationShutdown, Inject, Injectable, OnApplicationShutdown, Optional } from '@nestjs/common';
import { Pool } from 'pg';
import { Counter } from 'prom-client';
import { FastHistogram } from '../observability/fast-metrics';
import { DataSource } from 'typeorm';
import { MetricsService } from '../observability/metrics.service';
import { canonicalActorJson, canonicalJson, canonicalString, normaliseJson } from './audit-canonical';
import { partitionsCovering } from './audit-partitions';
import { AuditPartitionsRepository } from './audit-partitions.repository';
import { pgPool } from './audit-pg';
import { AuditWriter, PreparedEvent } from './audit-writer';
import { AuditRepository } from './audit.repository';
import { AuditActor, AuditEventInput, JsonValue } from './audit.types';
import { SignEventData, signEventDataJson } from './sign-event';

/** Injection token for the audit clock (epoch ms); tests bind a fixed or stepping clock. */
export const AUDIT_CLOCK = Symbol('AUDIT_CLOCK');
export type AuditClock = () => number;

const WRITER_STATEMENT_TIMEOUT_MS = 10_000;

const EVENT_TYPE = /^[a-z][a-z0-9]*(?:[._-][a-z0-9]+)*$/;

/**
 * The audit log's write side. `record` resolves only after the event's row is committed in the
 * hash chain; it rejects with 503 DATABASE_UNAVAILABLE when the database cannot be written, so a
 * caller that awaits it before answering fails closed (no signature without its audit row).
 */
@Injectable()
export class AuditService implements BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly writer: AuditWriter;
  private readonly clock: AuditClock;
  private readonly partitions: AuditPartitionsRepository;
  private writerPool?: Pool;
  private closed = false;

  constructor(
    private readonly dataSource: DataSource,
    @Optional() metrics?: MetricsService,
    @Optional() @Inject(AUDIT_CLOCK) clock?: AuditClock,
    @Optional() rows?: AuditRepository,
    @Optional() partitions?: AuditPartitionsRepository,
  ) {
    this.clock = clock ?? Date.now;
    // Built by hand or in a module without AuditModule's repositories (tests, tools): its own, on the same DataSource.
    rows ??= new AuditRepository(dataSource);
    this.partitions = partitions ?? new AuditPartitionsRepository(dataSource);
    const m = metrics ? auditMetrics(metrics) : undefined;
    this.writer = new AuditWriter(() => this.pool(), rows, this.partitions, {
      maxBatch: 2000,
      maxPending: 100_000,
      statementTimeoutMs: WRITER_STATEMENT_TIMEOUT_MS,
      now: () => this.clock(),
      onBatch: (size, seconds) => {
        m?.events.inc(size);
        m?.batchSize.observe(size);
        m?.flushSeconds.observe(seconds);
      },
      onFailure: (size) => m?.failures.inc(size),
      // Only the writer's own pool sets statement_timeout on its connections.
      singleStatement: () => this.writerPool !== undefined,
    });
  }

  /** Appends one event; resolves with its seq once committed. */
  async record(event: AuditEventInput): Promise<{ seq: string }> {
    return { seq: await this.writer.submitOne(this.prepare(event)) };
  }

  /**
   * Appends the `sign` event of one signature; resolves with its seq once committed. The same
   * row record({type: 'sign', actor, subject, data}) would write, serialised without the generic
   * walk (signing's hot path).
   */
  recordSign(actor: AuditActor | undefined, subject: string, data: SignEventData): Promise<string> {
    return this.writer.submitOne({
      typeJson: '"sign"',
      actorJson: canonicalActorJson(actor),
      subjectJson: canonicalString(subject),
      dataJson: signEventDataJson(data),
      at: this.clock(),
    });
  }

  /** Appends several events in one batch: they get contiguous seqs, in order. */
  async recordMany(events: AuditEventInput[]): Promise<Array<{ seq: string }>> {
    if (events.length === 0) return [];
    const seqs = await this.writer.submit(events.map((event) => this.prepare(event)));
    return seqs.map((seq) => ({ seq }));
  }

  /** Resolves once everything recorded so far has been written or refused. */
  flushed(): Promise<void> {
    return this.writer.idle();
  }

  /** Creates this month's and next month's partitions, so writes rarely create one themselves. */
  async ensureUpcomingPartitions(): Promise<string[]> {
    const now = this.clock();
    return this.partitions.ensureOnOwnConnection(partitionsCovering(now, now + 40 * 86400_000));
  }

  now(): number {
    return this.clock();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.writer.idle();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.close();
  }

  /** Writes what is queued, then closes the writer's connections. */
  async close(): Promise<void> {
    await this.writer.idle();
    this.closed = true;
    const pool = this.writerPool;
    this.writerPool = undefined;
    await pool?.end();
  }

  /**
   * The writer's own connections. Callers often record while holding a pooled connection in a
   * transaction of their own; with a shared pool, enough of them at once would leave the writer
   * no connection and every one of them would time out. Two connections suffice: one batch at a
   * time. Falls back to the shared pool when the DataSource was not configured by URL.
   */
  private pool(): Pool {
    if (this.writerPool) return this.writerPool;
    // After close(), late events go to the shared pool: written while it lives, refused after.
    if (this.closed) return pgPool(this.dataSource);
    const options = this.dataSource.options as { url?: string; extra?: { connectionTimeoutMillis?: number } };
    if (!options.url) return pgPool(this.dataSource);
    this.writerPool = new Pool({
      connectionString: options.url,
      max: 2,
      connectionTimeoutMillis: options.extra?.connectionTimeoutMillis ?? 3000,
      idleTimeoutMillis: 30_000,
      application_name: 'signet-audit-writer',
      // Bounds the one-statement appends (the locked path also sets it per transaction).
      statement_timeout: WRITER_STATEMENT_TIMEOUT_MS,
      allowExitOnIdle: true,
    });
    // An idle connection dropped by the server is replaced on next use; it must not crash the process.
    this.writerPool.on('error', () => undefined);
    return this.writerPool;
  }

  private prepare(event: AuditEventInput): PreparedEvent {
    if (typeof event?.type !== 'string' || event.type.length > 100 || !EVENT_TYPE.test(event.type)) {
      throw new TypeError(
        `AuditService.record: 'type' must be a dotted lower-case name, got ${JSON.stringify(event?.type)}`,
      );
    }
    if (event.data === null || typeof event.data !== 'object' || Array.isArray(event.data)) {
      throw new TypeError(`AuditService.record: 'data' must be an object (event ${event.type})`);
    }
    return {
      typeJson: JSON.stringify(event.type),
      actorJson: canonicalActorJson(event.actor),
      subjectJson:
        event.subject === undefined || event.subject === null ? 'null' : canonicalString(String(event.subject)),
      dataJson: canonicalJson(normaliseJson(event.data) as { [key: string]: JsonValue }),
      at: this.clock(),
    };
  }
}

function auditMetrics(metrics: MetricsService) {
  const registry = metrics.registry;
  const get = <T>(name: string, create: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? create();
  return {
    events: get(
      'signet_audit_events_total',
      () => new Counter({ name: 'signet_audit_events_total', help: 'Audit events committed', registers: [registry] }),
    ),
    failures: get(
      'signet_audit_write_failures_total',
      () =>
        new Counter({
          name: 'signet_audit_write_failures_total',
          help: 'Audit events refused or not written (callers failed closed)',
          registers: [registry],
        }),
    ),
    // Observed once per batch: the hot path's histogram type (observability/fast-metrics.ts).
    batchSize: get(
      'signet_audit_batch_size',
      () =>
        new FastHistogram(
          'signet_audit_batch_size',
          'Events per group-commit transaction',
          [],
          [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000],
          registry,
        ),
    ).labels(),
    flushSeconds: get(
      'signet_audit_flush_seconds',
      () =>
        new FastHistogram(
          'signet_audit_flush_seconds',
          'Duration of one group-commit transaction',
          [],
          [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
          registry,
        ),
    ).labels(),
  };
}
