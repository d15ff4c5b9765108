import { Logger } from '@nestjs/common';
import * as net from 'node:net';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { AuditCheckpointSigner, AuditCheckpointSigners } from '../../src/audit/audit-checkpoint-signer';
import { AuditCheckpointService } from '../../src/audit/audit-checkpoint.service';
import { AuditCheckpointsRepository } from '../../src/audit/audit-checkpoints.repository';
import { AuditExportService } from '../../src/audit/audit-export.service';
import { AuditPartitionsRepository } from '../../src/audit/audit-partitions.repository';
import { AuditRetentionService } from '../../src/audit/audit-retention.service';
import { AuditVerifier } from '../../src/audit/audit-verifier';
import { AuditRepository } from '../../src/audit/audit.repository';
import { AuditService } from '../../src/audit/audit.service';
import { loadConfig } from '../../src/config/config';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { asSuperuser } from '../support/database';

/** The audit services wired by hand on one DataSource: one "replica". */
export interface AuditHarness {
  dataSource: DataSource;
  audit: AuditService;
  signers: AuditCheckpointSigners;
  verifier: AuditVerifier;
  checkpoints: AuditCheckpointService;
  exports: AuditExportService;
  retention: AuditRetentionService;
  close(): Promise<void>;
}

export async function createAuditHarness(
  url: string,
  options: {
    signer?: AuditCheckpointSigner;
    clock?: () => number;
    env?: Record<string, string>;
    poolSize?: number;
  } = {},
): Promise<AuditHarness> {
  // Services built outside an app log through Nest's console logger; keep test output readable.
  Logger.overrideLogger(['error']);
  const dataSource = new DataSource(dataSourceOptions(url, options.poolSize ?? 4));
  await dataSource.initialize();
  const config = loadConfig({ DATABASE_URL: url, ...options.env });
  const audit = new AuditService(dataSource, undefined, options.clock);
  const rows = new AuditRepository(dataSource);
  const checkpointRows = new AuditCheckpointsRepository(dataSource);
  const signers = new AuditCheckpointSigners(config, options.signer ? async () => options.signer! : undefined);
  const verifier = new AuditVerifier(rows, checkpointRows, signers);
  const checkpoints = new AuditCheckpointService(checkpointRows, rows, verifier, signers, audit, config);
  const exports = new AuditExportService(rows);
  const retention = new AuditRetentionService(new AuditPartitionsRepository(dataSource), audit, config);
  return {
    dataSource,
    audit,
    signers,
    verifier,
    checkpoints,
    exports,
    retention,
    close: async () => {
      await audit.close();
      await dataSource.destroy();
    },
  };
}

/** Appends `n` simple events and returns their seqs. */
export async function appendEvents(audit: AuditService, n: number, type = 'test.event'): Promise<string[]> {
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) => audit.record({ type, subject: `s${i}`, data: { i } })),
  );
  return results.map((r) => r.seq);
}

/**
 * A TCP relay in front of PostgreSQL that a test can cut: `stop()` closes the listener and every
 * relayed connection, which is what a stopped database looks like to the pool (refused, reset);
 * `start()` brings it back on the same port. The shared test server itself keeps running.
 */
export class TcpRelay {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly targetPort: number) {}

  async start(): Promise<void> {
    if (this.server) return;
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, '127.0.0.1');
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }
}

/**
 * Runs SQL with the append-only triggers off, as an attacker with the database superuser (or the
 * owner role) would: the service role the harness runs as cannot (test/database/least-privilege).
 */
export async function tamper(dataSource: DataSource, sql: string, params: unknown[] = []): Promise<void> {
  const client = new Client({ connectionString: asSuperuser((dataSource.options as { url: string }).url) });
  await client.connect();
  try {
    await client.query('BEGIN');
    for (const table of ['audit_events', 'audit_chain_head', 'audit_checkpoints'])
      await client.query(`ALTER TABLE ${table} DISABLE TRIGGER USER`);
    await client.query(sql, params);
    for (const table of ['audit_events', 'audit_chain_head', 'audit_checkpoints'])
      await client.query(`ALTER TABLE ${table} ENABLE TRIGGER USER`);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    await client.end();
  }
}
