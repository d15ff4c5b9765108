import { Injectable, Logger } from '@nestjs/common';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { DataSource } from 'typeorm';
import { ensurePartitionsOnPool, partitionsCovering } from '../audit/audit-partitions';
import { pgPool } from '../audit/audit-pg';
import { dataSourceOptions } from '../database/data-source-options';
import { BackupRepository } from './backup.repository';

export const BACKUP_FORMAT = 'signet-backup/1';
const PAGE = 2000;

export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  createdAt: string;
  /** Migrations applied to the source; a restore target must have exactly these. */
  migrations: string[];
  /** Restore order (parents before children), with row counts. */
  tables: Array<{ name: string; rows: number }>;
  sequences: Record<string, { lastValue: string; isCalled: boolean }>;
  /** 'softhsm': the token directory is in softhsm/; 'external': keys stay in the vendor HSM. */
  hsm: 'softhsm' | 'external';
}

/**
 * Logical backup of Signet's database (every table as NDJSON, read in one REPEATABLE READ
 * snapshot, plus sequence values) and, for a SoftHSM2 development/test token, the token
 * directory with its PIN files. A network HSM keeps its keys: back it up with the vendor's tools
 * (key cloning / HA partner); Signet's rows refer to keys by PKCS#11 URI, which stay valid.
 *
 * No pg_dump is needed (the embedded server ships none, and a client must match the server's
 * major version): PostgreSQL itself serialises rows with row_to_json and reads them back with
 * json_populate_recordset.
 */
@Injectable()
export class BackupService {
  private readonly logger = new Logger(BackupService.name);

  constructor(
    private readonly dataSource: DataSource,
    private readonly repository: BackupRepository,
  ) {}

  async backup(outDir: string, options: { softhsmDir?: string } = {}): Promise<BackupManifest> {
    if (fs.existsSync(outDir) && fs.readdirSync(outDir).length > 0)
      throw new Error(`backup directory ${outDir} is not empty`);
    fs.mkdirSync(path.join(outDir, 'db'), { recursive: true, mode: 0o700 });
    fs.chmodSync(outDir, 0o700);
    const manifest = await this.dataSource.transaction('REPEATABLE READ', async (manager) => {
      await this.repository.makeReadOnly(manager);
      const tables = await this.repository.tablesInRestoreOrder(manager);
      const out: BackupManifest['tables'] = [];
      for (const table of tables) {
        const file = fs.openSync(path.join(outDir, 'db', `${table}.ndjson`), 'w', 0o600);
        let rows = 0;
        try {
          for (let offset = 0; ; offset += PAGE) {
            const page = await this.repository.rowPage(manager, table, offset, PAGE);
            for (const row of page) fs.writeSync(file, `${JSON.stringify(row)}\n`);
            rows += page.length;
            if (page.length < PAGE) break;
          }
        } finally {
          fs.closeSync(file);
        }
        out.push({ name: table, rows });
      }
      const sequences = await this.repository.sequences(manager);
      const migrations = await this.repository.appliedMigrations(manager);
      return {
        format: BACKUP_FORMAT,
        createdAt: new Date().toISOString(),
        migrations,
        tables: out,
        sequences,
        hsm: options.softhsmDir ? 'softhsm' : 'external',
      } satisfies BackupManifest;
    });
    if (options.softhsmDir) {
      // After the snapshot: a key created in between is an orphan in the copy (HSM reconciliation
      // reports it), never a row without its key.
      fs.cpSync(options.softhsmDir, path.join(outDir, 'softhsm'), {
        recursive: true,
        filter: (src) => !src.endsWith('softhsm2.conf'),
      });
    }
    fs.writeFileSync(path.join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n', { mode: 0o600 });
    this.logger.log(
      `backup written to ${outDir}: ${manifest.tables.reduce((n, t) => n + t.rows, 0)} rows in ${manifest.tables.length} tables`,
    );
    return manifest;
  }

  /**
   * Loads a backup into this (freshly migrated, otherwise empty) database in one transaction with
   * the audit log's append-only triggers off (FK checks stay on: rows arrive parents first).
   */
  async restore(fromDir: string, ownerUrl?: string): Promise<BackupManifest> {
    // The service role may not delete audit rows nor switch their triggers off: a restore runs as
    // the owner role (the CLI passes its URL), on a connection of its own.
    if (ownerUrl) {
      const owner = new DataSource({ ...dataSourceOptions(ownerUrl, 2), entities: [] });
      await owner.initialize();
      try {
        return await restoreInto(owner, this.repository, fromDir);
      } finally {
        await owner.destroy();
      }
    }
    return restoreInto(this.dataSource, this.repository, fromDir);
  }
}

/** See BackupService.restore; `dataSource` connects as the role that owns the tables. */
async function restoreInto(
  dataSource: DataSource,
  repository: BackupRepository,
  fromDir: string,
): Promise<BackupManifest> {
  const logger = new Logger(BackupService.name);
  const manifest = readManifest(fromDir);
  const migrations = await repository.appliedMigrations(dataSource.manager);
  if (JSON.stringify(migrations) !== JSON.stringify(manifest.migrations)) {
    throw new Error(
      `the backup was taken at migrations [${manifest.migrations.join(', ')}] but this database is at [${migrations.join(', ')}]; restore with the same Signet version`,
    );
  }
  if (await repository.holdsCasOrKeys(dataSource.manager))
    throw new Error('the target database already holds CAs or keys; restore into a fresh data dir or database');

  const auditTimes = await timeRange(path.join(fromDir, 'db', 'audit_events.ndjson'));
  if (auditTimes) await ensurePartitionsOnPool(pgPool(dataSource), partitionsCovering(auditTimes.min, auditTimes.max));

  await dataSource.transaction(async (manager) => {
    // The audit log's append-only triggers (the owner's, so no superuser is needed), off for this
    // transaction only: re-enabled before commit, and a rollback undoes the ALTERs anyway.
    const guarded = await repository.disableUserTriggers(manager);
    for (const { name } of [...manifest.tables].reverse()) await repository.deleteAllRows(manager, name);
    for (const { name, rows } of manifest.tables) {
      let loaded = 0;
      let batch: string[] = [];
      const flush = async () => {
        if (batch.length === 0) return;
        await repository.insertJsonRows(manager, name, batch);
        loaded += batch.length;
        batch = [];
      };
      const lines = readline.createInterface({
        input: fs.createReadStream(path.join(fromDir, 'db', `${name}.ndjson`)),
        crlfDelay: Infinity,
      });
      for await (const line of lines) {
        if (line.trim() === '') continue;
        batch.push(line);
        if (batch.length >= PAGE) await flush();
      }
      await flush();
      if (loaded !== rows) throw new Error(`table ${name}: the backup lists ${rows} rows but ${loaded} were read`);
    }
    for (const [name, { lastValue, isCalled }] of Object.entries(manifest.sequences)) {
      await repository.setSequence(manager, name, lastValue, isCalled);
    }
    await repository.enableUserTriggers(manager, guarded);
  });
  logger.log(`restored ${manifest.tables.reduce((n, t) => n + t.rows, 0)} rows from ${fromDir}`);
  return manifest;
}

export function readManifest(dir: string): BackupManifest {
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  } catch (error) {
    throw new Error(
      `${dir} is not a Signet backup (manifest.json: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    );
  }
  if (manifest.format !== BACKUP_FORMAT) throw new Error(`${dir}: unknown backup format ${String(manifest.format)}`);
  return manifest;
}

async function timeRange(file: string): Promise<{ min: number; max: number } | undefined> {
  if (!fs.existsSync(file)) return undefined;
  let min = Infinity;
  let max = -Infinity;
  const lines = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const time = Date.parse((JSON.parse(line) as { time: string }).time);
    if (time < min) min = time;
    if (time > max) max = time;
  }
  return Number.isFinite(min) ? { min, max } : undefined;
}
