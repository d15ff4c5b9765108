import { DataSource } from 'typeorm';
import { asAuditError, pgPool } from '../audit/audit-pg';

/**
 * Base of the signing path's repositories: one statement each straight on the pg pool (no TypeORM
 * query runner per call), and a database failure reads as the audit layer's (503,
 * DATABASE_UNAVAILABLE), like the audit write the same request makes.
 */
export abstract class PoolStatementsRepository {
  protected constructor(protected readonly dataSource: DataSource) {}

  /** `name` makes it a named prepared statement (parsed once per connection). */
  protected async query(text: string, values: unknown[], name?: string): Promise<Array<Record<string, unknown>>> {
    try {
      const pool = pgPool(this.dataSource);
      return (await (name === undefined ? pool.query(text, values) : pool.query({ name, text, values }))).rows;
    } catch (error) {
      throw asAuditError(error);
    }
  }
}
