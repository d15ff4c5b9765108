import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { ADVISORY_LOCKS, withSessionAdvisoryLock } from './advisory-lock';
import { dataSourceOptions } from './data-source-options';

/**
 * Applies pending migrations before the application starts, under the bootstrap advisory lock,
 * so several replicas starting at once against one fresh database migrate it exactly once.
 * Returns the names of the migrations this process applied.
 */
export async function migrateUnderLock(url: string): Promise<string[]> {
  const dataSource = new DataSource({ ...dataSourceOptions(url, 2), entities: [] });
  await dataSource.initialize();
  try {
    return await withSessionAdvisoryLock(dataSource, ADVISORY_LOCKS.migrationsAndBootstrap, async () => {
      const applied = await dataSource.runMigrations({ transaction: 'each' });
      return applied.map((migration) => migration.name);
    });
  } finally {
    await dataSource.destroy();
  }
}
