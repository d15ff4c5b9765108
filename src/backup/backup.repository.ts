import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';

/**
 * The database reads and writes of a logical backup and restore: whole tables as JSON rows,
 * sequences, migrations, and the audit log's append-only triggers. Every method runs on the
 * caller's manager (a backup reads in one snapshot; a restore writes in one transaction, as the
 * owner role).
 */
@Injectable()
export class BackupRepository {
  async makeReadOnly(manager: EntityManager): Promise<void> {
    await manager.query('SET TRANSACTION READ ONLY');
  }

  /** Ordinary and partitioned tables of the public schema (not partitions), parents before children. */
  async tablesInRestoreOrder(manager: EntityManager): Promise<string[]> {
    const tables: string[] = (
      await manager.query(
        `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> 'typeorm_migrations'
          ORDER BY c.relname`,
      )
    ).map((row: { name: string }) => row.name);
    const edges: Array<{ child: string; parent: string }> = await manager.query(
      `SELECT c.relname AS child, p.relname AS parent FROM pg_constraint k
         JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE k.contype = 'f' AND n.nspname = 'public' AND c.relname <> p.relname`,
    );
    const ordered: string[] = [];
    const visiting = new Set<string>();
    const visit = (table: string) => {
      if (ordered.includes(table) || visiting.has(table)) return;
      visiting.add(table);
      for (const { parent } of edges.filter((e) => e.child === table)) visit(parent);
      visiting.delete(table);
      ordered.push(table);
    };
    tables.forEach(visit);
    return ordered;
  }

  /** One page of a table's rows as JSON values, in an order stable inside one snapshot. */
  async rowPage(manager: EntityManager, table: string, offset: number, limit: number): Promise<unknown[]> {
    // (tableoid, ctid) is unique and stable inside one snapshot, partitions included.
    const page: Array<{ row: unknown }> = await manager.query(
      `SELECT row_to_json(t) AS row FROM ${quote(table)} t ORDER BY t.tableoid, t.ctid LIMIT ${limit} OFFSET ${offset}`,
    );
    return page.map(({ row }) => row);
  }

  /** Every sequence of the public schema with its current value. */
  async sequences(manager: EntityManager): Promise<Record<string, { lastValue: string; isCalled: boolean }>> {
    const sequences: Record<string, { lastValue: string; isCalled: boolean }> = {};
    for (const { name } of await manager.query(
      `SELECT sequencename AS name FROM pg_sequences WHERE schemaname = 'public'`,
    )) {
      const [{ last_value, is_called }] = await manager.query(`SELECT last_value::text, is_called FROM ${quote(name)}`);
      sequences[name] = { lastValue: last_value, isCalled: is_called };
    }
    return sequences;
  }

  async setSequence(manager: EntityManager, name: string, lastValue: string, isCalled: boolean): Promise<void> {
    await manager.query('SELECT setval($1::regclass, $2::bigint, $3)', [quote(name), lastValue, isCalled]);
  }

  /** Names of the migrations applied, in order. */
  async appliedMigrations(manager: EntityManager): Promise<string[]> {
    return (await manager.query('SELECT name FROM typeorm_migrations ORDER BY id')).map(
      (m: { name: string }) => m.name,
    );
  }

  /** Whether any CA or signing key exists (a restore goes only into a database without them). */
  async holdsCasOrKeys(manager: EntityManager): Promise<boolean> {
    const populated: Array<{ name: string }> = await manager.query(
      `SELECT 'signing_keys' AS name WHERE EXISTS (SELECT 1 FROM signing_keys) UNION ALL SELECT 'cas' WHERE EXISTS (SELECT 1 FROM cas)`,
    );
    return populated.length > 0;
  }

  /**
   * Switches off the user triggers (the audit log's append-only ones, the owner's) of every table
   * for the caller's transaction; returns the tables, for enableUserTriggers before commit (a
   * rollback undoes the ALTERs anyway).
   */
  async disableUserTriggers(manager: EntityManager): Promise<string[]> {
    const guarded: Array<{ name: string }> = await manager.query(
      `SELECT DISTINCT c.oid::regclass::text AS name FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace AND NOT c.relispartition`,
    );
    for (const { name } of guarded) await manager.query(`ALTER TABLE ${name} DISABLE TRIGGER USER`);
    return guarded.map(({ name }) => name);
  }

  async enableUserTriggers(manager: EntityManager, tables: string[]): Promise<void> {
    for (const name of tables) await manager.query(`ALTER TABLE ${name} ENABLE TRIGGER USER`);
  }

  async deleteAllRows(manager: EntityManager, table: string): Promise<void> {
    await manager.query(`DELETE FROM ${quote(table)}`);
  }

  /** Inserts rows given as JSON object texts (as rowPage wrote them). */
  async insertJsonRows(manager: EntityManager, table: string, rows: string[]): Promise<void> {
    await manager.query(
      `INSERT INTO ${quote(table)} SELECT * FROM json_populate_recordset(NULL::${quote(table)}, $1::json)`,
      [`[${rows.join(',')}]`],
    );
  }
}

function quote(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`;
}
