import type { Pool, PoolClient } from 'pg';
import { DataSource } from 'typeorm';
import { DomainError, ErrorCode } from '../common/errors';
import { isDatabaseUnavailable } from '../common/database-errors';

/**
 * The pg pool behind TypeORM's DataSource. The audit hot path talks to it directly: one
 * round trip per statement, prepared statements, multi-statement simple queries — none of the
 * per-query overhead of the ORM.
 */
export function pgPool(dataSource: DataSource): Pool {
  const pool = (dataSource.driver as unknown as { master?: Pool }).master;
  if (!pool) throw databaseUnavailable();
  return pool;
}

/**
 * Runs `work` on one pooled connection. While checked out, a pg client whose server goes away
 * emits 'error' with nobody listening, which would crash the process; the listener here records it
 * instead, and a connection that failed is discarded rather than returned to the pool.
 */
export async function withClient<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (error: Error) => (broken = error);
  client.on('error', onError);
  try {
    return await work(client);
  } catch (error) {
    if (isDatabaseUnavailable(error)) broken ??= error as Error;
    throw error;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

export function databaseUnavailable(): DomainError {
  return new DomainError(ErrorCode.DATABASE_UNAVAILABLE, 'the database is unavailable; retry later', {
    retryAfterSeconds: 1,
  });
}

/** Database outages become 503 DATABASE_UNAVAILABLE; anything else is passed through. */
export function asAuditError(error: unknown): unknown {
  if (error instanceof DomainError) return error;
  const code = (error as { code?: string }).code;
  // Statement or lock timeouts mean the database is not usable right now, as far as callers care.
  if (isDatabaseUnavailable(error) || code === '57014' || code === '55P03') return databaseUnavailable();
  return error;
}
