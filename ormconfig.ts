import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from './src/database/data-source-options';

// The TypeORM CLI entry point (npm run migration:generate|run|revert). It uses the same
// DataSource definition as the app; point DATABASE_URL at the database to work on.
const url = process.env.DATABASE_URL;
if (!url) {
  throw new Error('DATABASE_URL: must be set for the TypeORM CLI (the embedded database prints its URL at debug level)');
}

export default new DataSource(dataSourceOptions(url));
