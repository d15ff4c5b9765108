import 'reflect-metadata';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { ADVISORY_LOCKS, withSessionAdvisoryLock } from './advisory-lock';
import { applyAppRoleGrants, connectedRole } from './app-role';
import { dataSourceOptions } from './data-source-options';

/**
 * Applies pending migrations before the application starts, under the bootstrap advisory lock,
 * so several replicas starting at once against one fresh database migrate it exactly once.
 * Returns the names of the migrations this process applied.
 */
export async function migrateUnderLock(url: string): Promise<string[]> {
  return (await prepareDatabase({ ownerUrl: url, migrate: true })).migrationsApplied;
}

export interface PrepareDatabaseOptions {
  /** The owner role: runs the migrations and grants. */
  ownerUrl: string;
  /** The service role, granted what src/database/app-role.ts lists (nothing when it is the owner itself). */
  appUrl?: string;
  migrate: boolean;
}

/**
 * Migrations, then the service role's grants, both as the owner and under the same advisory lock
 * (concurrent GRANTs on one object fail with "tuple concurrently updated").
 */
export async function prepareDatabase(
  options: PrepareDatabaseOptions,
): Promise<{ migrationsApplied: string[]; appRole?: string }> {
  // Nothing to migrate and no separate service role to grant: no connection, no wait on the lock
  // (replicas started with SIGNET_MIGRATIONS_RUN=false beside a running migration Job).
  if (!options.migrate && (!options.appUrl || options.appUrl === options.ownerUrl)) return { migrationsApplied: [] };
  const dataSource = new DataSource({ ...dataSourceOptions(options.ownerUrl, 2), entities: [] });
  await dataSource.initialize();
  try {
    return await withSessionAdvisoryLock(dataSource, ADVISORY_LOCKS.migrationsAndBootstrap, async () => {
      const migrationsApplied = options.migrate
        ? (await dataSource.runMigrations({ transaction: 'each' })).map((migration) => migration.name)
        : [];
      if (!options.appUrl || options.appUrl === options.ownerUrl) return { migrationsApplied };
      const [owner, app] = [
        new Client({ connectionString: options.ownerUrl }),
        new Client({ connectionString: options.appUrl }),
      ];
      try {
        await owner.connect();
        await app.connect();
        const [ownerRole, appRole] = [await connectedRole(owner), await connectedRole(app)];
        if (ownerRole !== appRole) await applyAppRoleGrants(owner, appRole);
        return { migrationsApplied, appRole };
      } finally {
        await owner.end().catch(() => undefined);
        await app.end().catch(() => undefined);
      }
    });
  } finally {
    await dataSource.destroy();
  }
}
