import { DataSource } from 'typeorm';
import { asAuditError, pgPool } from '../audit/audit-pg';

/**
 * Base of the signing path's repositories: one statement each straight on the pg pool (no TypeORM
 * query runner per call), and a database failure reads as the audit layer's (503,
 * DATABASE_UNAVAILABLE), like the audit write the same request makes.
 */
export abstract class PoolStatementsRepository {
  protected constructor(protected readonly dataSource: DataSource) {}

  protected async query(text: string, values: unknown[]): Promise<Array<Record<string, unknown>>> {
    try {
      return (await pgPool(this.dataSource).query(text, values)).rows;
    } catch (error) {
      throw asAuditError(error);
    }
  }
}
