import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { ADVISORY_LOCKS, withSessionAdvisoryLock } from './advisory-lock';

/** The `bootstrap_steps` table: which first-start steps have run on this database, and where. */
@Injectable()
export class BootstrapStepsRepository {
  constructor(private readonly dataSource: DataSource) {}

  /** Runs `work` under the advisory lock migrations take too: one replica bootstraps at a time. */
  whileBootstrapping<T>(work: () => Promise<T>): Promise<T> {
    return withSessionAdvisoryLock(this.dataSource, ADVISORY_LOCKS.migrationsAndBootstrap, work);
  }

  async completedNames(): Promise<Set<string>> {
    const rows: Array<{ name: string }> = await this.dataSource.query('SELECT name FROM bootstrap_steps');
    return new Set(rows.map((row) => row.name));
  }

  async recordCompleted(name: string, completedBy: string): Promise<void> {
    await this.dataSource.query('INSERT INTO bootstrap_steps (name, completed_by) VALUES ($1, $2)', [
      name,
      completedBy,
    ]);
  }
}
