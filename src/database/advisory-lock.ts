import { DataSource, EntityManager } from 'typeorm';

/** Advisory-lock keys, one per kind of exclusive work (int8 space, arbitrary but fixed). */
export const ADVISORY_LOCKS = {
  migrationsAndBootstrap: 0x5349474e4554_01n, // "SIGNET" + 01
  auditPartitions: 0x5349474e4554_a1n, // creating audit_events partitions
  auditCheckpoint: 0x5349474e4554_a2n, // one checkpoint at a time across replicas
  auditRetention: 0x5349474e4554_a3n, // dropping expired audit partitions
  auditFullVerify: 0x5349474e4554_a4n, // one scheduled full verify at a time across replicas
  tokenChanges: 0x5349474e4554_b1n, // changes to existing API tokens (the last-admin guard)
} as const;

/**
 * Runs `work` while holding a session-level advisory lock on one dedicated connection, which is
 * held (not returned to the pool) until the lock is released — so the lock really belongs to this
 * process for the whole duration. A crash closes the connection and releases the lock.
 */
export async function withSessionAdvisoryLock<T>(
  dataSource: DataSource,
  key: bigint,
  work: () => Promise<T>,
): Promise<T> {
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  try {
    await runner.query('SELECT pg_advisory_lock($1::bigint)', [key.toString()]);
    try {
      return await work();
    } finally {
      await runner.query('SELECT pg_advisory_unlock($1::bigint)', [key.toString()]);
    }
  } finally {
    await runner.release();
  }
}

/**
 * Runs `work` in a transaction holding a transaction-scoped advisory lock; when `wait` is false
 * and another process holds it, returns undefined without running `work`.
 */
export async function withTransactionAdvisoryLock<T>(
  dataSource: DataSource,
  key: bigint,
  work: (manager: EntityManager) => Promise<T>,
  wait = true,
): Promise<T | undefined> {
  return dataSource.transaction(async (manager) => {
    if (wait) {
      await manager.query('SELECT pg_advisory_xact_lock($1::bigint)', [key.toString()]);
    } else {
      const [{ locked }] = await manager.query('SELECT pg_try_advisory_xact_lock($1::bigint) AS locked', [
        key.toString(),
      ]);
      if (!locked) return undefined;
    }
    return work(manager);
  });
}
