import * as path from 'node:path';
import { EmbeddedPostgres } from '../../database/embedded-postgres';
import { prepareDatabase } from '../../database/platform-database';
import { CliCommand } from '../cli-command';

/**
 * `signet migrate`: applies pending migrations and exits, touching neither the HSM nor the
 * application (a Kubernetes Job or a deploy step runs it before the new version's replicas start,
 * which then run with SIGNET_MIGRATIONS_RUN=false). Same advisory lock as a server's start, so it
 * is safe next to running replicas. It runs as the owner role (SIGNET_MIGRATION_DATABASE_URL, else
 * DATABASE_URL) and then grants the service role (DATABASE_URL) what src/database/app-role.ts lists,
 * so replicas that hold only the service role's URL find their privileges in place. On embedded
 * defaults it attaches to (or starts) the embedded PostgreSQL, as the other commands do.
 */
export const migrateCommand: CliCommand = {
  name: 'migrate',
  summary: 'apply pending database migrations, grant the service role, and exit (no HSM needed)',
  usage: 'signet migrate',
  async standalone(config, _args, out) {
    let embedded: EmbeddedPostgres | undefined;
    let appUrl = config.database.url;
    let ownerUrl = config.database.migrationUrl ?? appUrl;
    if (!appUrl) {
      embedded = new EmbeddedPostgres({
        baseDir: path.join(config.dataDir, 'postgres'),
        port: config.database.embeddedPort,
        log: () => undefined,
      });
      ({ appUrl, ownerUrl } = await embedded.ensureServiceRoles(await embedded.start({ attach: true })));
    }
    try {
      const { migrationsApplied: applied, appRole } = await prepareDatabase({
        ownerUrl: ownerUrl!,
        appUrl,
        migrate: true,
      });
      out(
        applied.length === 0
          ? 'migrations: the database is up to date'
          : `migrations: applied ${applied.length}: ${applied.join(', ')}`,
      );
      if (appRole) out(`grants: the service role "${appRole}" has its privileges`);
    } finally {
      await embedded?.stop();
    }
  },
};
