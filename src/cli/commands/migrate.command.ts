import * as path from 'node:path';
import { EmbeddedPostgres } from '../../database/embedded-postgres';
import { migrateUnderLock } from '../../database/platform-database';
import { CliCommand } from '../cli-command';

/**
 * `signet migrate`: applies pending migrations and exits, touching neither the HSM nor the
 * application (a Kubernetes Job or a deploy step runs it before the new version's replicas start,
 * which then run with SIGNET_MIGRATIONS_RUN=false). Same advisory lock as a server's start, so it
 * is safe next to running replicas. On embedded defaults it attaches to (or starts) the embedded
 * PostgreSQL, as the other commands do.
 */
export const migrateCommand: CliCommand = {
  name: 'migrate',
  summary: 'apply pending database migrations and exit (no HSM needed)',
  usage: 'signet migrate',
  async standalone(config, _args, out) {
    let embedded: EmbeddedPostgres | undefined;
    let url = config.database.url;
    if (!url) {
      embedded = new EmbeddedPostgres({ baseDir: path.join(config.dataDir, 'postgres'), port: config.database.embeddedPort, log: () => undefined });
      url = await embedded.start({ attach: true });
    }
    try {
      const applied = await migrateUnderLock(url);
      out(applied.length === 0 ? 'migrations: the database is up to date' : `migrations: applied ${applied.length}: ${applied.join(', ')}`);
    } finally {
      await embedded?.stop();
    }
  },
};
