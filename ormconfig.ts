import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from './src/database/data-source-options';

// The TypeORM CLI entry point (npm run migration:generate|run|revert). It uses the same
// DataSource definition as the app. Migrations are the owner role's work: point
// SIGNET_MIGRATION_DATABASE_URL (or, with one role, DATABASE_URL) at the database to work on. The
// service role's grants are applied by the next Signet start (src/database/app-role.ts).
const url = process.env.SIGNET_MIGRATION_DATABASE_URL ?? process.env.DATABASE_URL;
if (!url) {
  throw new Error(
    'SIGNET_MIGRATION_DATABASE_URL or DATABASE_URL: must be set for the TypeORM CLI (the embedded database prints its URL at debug level)',
  );
}

export default new DataSource(dataSourceOptions(url));
