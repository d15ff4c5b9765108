import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { PoolStatementsRepository } from './pool-statements.repository';

/** A key and its active version as the signing path loads it (null: no key of that name). */
export interface ActiveKeyRecord {
  keyId: string;
  keyName: string;
  keySpec: string;
  requires: string[];
  version: {
    id: string;
    version: number;
    keyUri: string;
    certificate: Buffer | null;
    chain: Buffer[];
    notBefore: Date | null;
    notAfter: Date | null;
  } | null;
}

const LOAD_ACTIVE = `
  SELECT k.id AS key_id, k.name, k.key_spec, k.requires,
         v.id AS version_id, v.version, v.key_uri, v.certificate, v.chain, v.not_before, v.not_after
  FROM signing_keys k
  LEFT JOIN key_versions v ON v.key_id = k.id AND v.state = 'active'
  WHERE k.name = $1`;

/**
 * What signing reads of the keys aggregate (owned by src/keys): a key with its active version, and
 * the key a version belongs to. Reads only.
 */
@Injectable()
export class SigningKeysRepository extends PoolStatementsRepository {
  constructor(dataSource: DataSource) {
    super(dataSource);
  }

  /**
   * The key named `keyName` with its active version (null when it has none). One prepared
   * statement on the pg pool (the active-key cache's load on a miss); a database error reads as
   * the audit layer's (503).
   */
  async activeKey(keyName: string): Promise<ActiveKeyRecord | null> {
    const row = (await this.query(LOAD_ACTIVE, [keyName], 'signet_active_key'))[0];
    if (!row) return null;
    return {
      keyId: row.key_id as string,
      keyName: row.name as string,
      keySpec: row.key_spec as string,
      requires: (row.requires as string[] | null) ?? [],
      version:
        row.version_id === null
          ? null
          : {
              id: row.version_id as string,
              version: row.version as number,
              keyUri: row.key_uri as string,
              certificate: row.certificate as Buffer | null,
              chain: (row.chain as Buffer[] | null) ?? [],
              notBefore: row.not_before as Date | null,
              notAfter: row.not_after as Date | null,
            },
    };
  }

  /** The name of the key that version `versionId` belongs to, read in the caller's transaction. */
  async keyNameOfVersion(manager: EntityManager, versionId: string): Promise<string | undefined> {
    const rows: Array<{ name: string }> = await manager.query(
      'SELECT k.name FROM key_versions v JOIN signing_keys k ON k.id = v.key_id WHERE v.id = $1',
      [versionId],
    );
    return rows[0]?.name;
  }
}
