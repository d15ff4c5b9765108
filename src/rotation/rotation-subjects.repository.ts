import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { CaEntity } from '../ca/ca.entity';
import { CaGenerationEntity } from '../ca/ca-generation.entity';
import { EXTERNAL_KEY_URI } from '../ca/ca.service';
import { KeyVersionEntity } from '../keys/key-version.entity';
import { SigningKeyEntity } from '../keys/signing-key.entity';

/** The columns of a key version a rotation step changes. */
export type KeyVersionChanges = Partial<
  Pick<
    KeyVersionEntity,
    | 'state'
    | 'csr'
    | 'certificate'
    | 'chain'
    | 'serial'
    | 'issuerGenerationId'
    | 'notBefore'
    | 'notAfter'
    | 'activatedAt'
    | 'retiredAt'
    | 'destroyedAt'
  >
>;

/** The columns of a CA generation a rollover step changes. */
export type CaGenerationChanges = Partial<
  Pick<
    CaGenerationEntity,
    'state' | 'certificate' | 'chain' | 'serial' | 'parentGenerationId' | 'notBefore' | 'notAfter'
  >
>;

/** An issuing or TSA CA's active generation, with what decides whether it is due for renewal. */
export interface CaLifetimeRow {
  id: string;
  name: string;
  kind: 'issuing' | 'tsa';
  generation: string;
  not_after: Date;
  /** The longest leaf validity of the CA's keys (0 for a TSA CA; null: an issuing CA without keys). */
  max_leaf_days: number | null;
  parent_not_after: Date | null;
  /** A rollover of the CA or of its parent is running. */
  busy: boolean;
}

/**
 * The signing keys, key versions, CAs and CA generations as rotation reads and changes them,
 * always in the caller's transaction (a rotation step holds the subject's lock). `lock*` methods
 * take row locks held until that transaction ends.
 */
@Injectable()
export class RotationSubjectsRepository {
  // ------------------------------------------------------------------ signing keys and versions

  keyNamed(manager: EntityManager, name: string): Promise<SigningKeyEntity | null> {
    return manager.getRepository(SigningKeyEntity).findOneBy({ name });
  }

  keyById(manager: EntityManager, id: string): Promise<SigningKeyEntity | null> {
    return manager.getRepository(SigningKeyEntity).findOneBy({ id });
  }

  /** The key's row FOR UPDATE: activations of one key serialise here. */
  async lockKey(manager: EntityManager, keyId: string): Promise<void> {
    await manager.query('SELECT id FROM signing_keys WHERE id = $1 FOR UPDATE', [keyId]);
  }

  async hasActiveVersion(manager: EntityManager, keyId: string): Promise<boolean> {
    const [{ active }] = await manager.query(
      `SELECT count(*)::int AS active FROM key_versions WHERE key_id = $1 AND state = 'active'`,
      [keyId],
    );
    return active > 0;
  }

  /** The key's highest version number (0 without versions) and its active version's, if any. */
  async versionNumbers(manager: EntityManager, keyId: string): Promise<{ latest: number; active: number | null }> {
    const [versions] = await manager.query(
      `SELECT coalesce(max(version), 0)::int AS latest, max(version) FILTER (WHERE state = 'active')::int AS active FROM key_versions WHERE key_id = $1`,
      [keyId],
    );
    return versions;
  }

  /** Which key and version number a key version row is. */
  async keyVersionNumber(
    manager: EntityManager,
    keyVersionId: string,
  ): Promise<{ keyId: string; version: number } | undefined> {
    const [row]: Array<{ key_id: string; version: number }> = await manager.query(
      'SELECT key_id, version FROM key_versions WHERE id = $1',
      [keyVersionId],
    );
    return row ? { keyId: row.key_id, version: row.version } : undefined;
  }

  findVersion(manager: EntityManager, keyId: string, version: number): Promise<KeyVersionEntity | null> {
    return manager.getRepository(KeyVersionEntity).findOneBy({ keyId, version });
  }

  lockVersion(manager: EntityManager, keyId: string, version: number): Promise<KeyVersionEntity | null> {
    return manager
      .getRepository(KeyVersionEntity)
      .findOne({ where: { keyId, version }, lock: { mode: 'pessimistic_write' } });
  }

  lockActiveVersion(manager: EntityManager, keyId: string): Promise<KeyVersionEntity | null> {
    return manager
      .getRepository(KeyVersionEntity)
      .findOne({ where: { keyId, state: 'active' }, lock: { mode: 'pessimistic_write' } });
  }

  /** A new version row: pending, its key pair made, no certificate yet. */
  async insertPendingVersion(
    manager: EntityManager,
    version: { keyId: string; version: number; keyUri: string; publicKey: Buffer },
  ): Promise<void> {
    await manager.getRepository(KeyVersionEntity).insert({
      keyId: version.keyId,
      version: version.version,
      state: 'pending',
      keyUri: version.keyUri,
      publicKey: version.publicKey,
      certificate: null,
      csr: null,
      chain: [],
      serial: null,
      issuerGenerationId: null,
      notBefore: null,
      notAfter: null,
      activatedAt: null,
      retiredAt: null,
      destroyedAt: null,
      revokedAt: null,
    });
  }

  async updateVersion(manager: EntityManager, id: string, changes: KeyVersionChanges): Promise<void> {
    await manager.update(KeyVersionEntity, { id }, changes);
  }

  // ------------------------------------------------------------------ CAs and generations

  caNamed(manager: EntityManager, name: string): Promise<CaEntity | null> {
    return manager.getRepository(CaEntity).findOneBy({ name });
  }

  caById(manager: EntityManager, id: string): Promise<CaEntity | null> {
    return manager.getRepository(CaEntity).findOneBy({ id });
  }

  /** The issuing CAs with a key here directly under a CA (a root rollover re-certifies them). */
  issuingChildren(manager: EntityManager, caId: string): Promise<CaEntity[]> {
    return manager.getRepository(CaEntity).findBy({ parentId: caId, kind: 'issuing', external: false });
  }

  /** The CA rows FOR UPDATE, in id order (no deadlock between two activations). */
  async lockCas(manager: EntityManager, caIds: string[]): Promise<void> {
    await manager.query('SELECT id FROM cas WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE', [caIds]);
  }

  activeGeneration(manager: EntityManager, caId: string): Promise<CaGenerationEntity | null> {
    return manager.getRepository(CaGenerationEntity).findOneBy({ caId, state: 'active' });
  }

  /** The number a CA's next generation gets. */
  async nextGenerationNumber(manager: EntityManager, caId: string): Promise<number> {
    const [{ latest }] = await manager.query(
      'SELECT coalesce(max(generation), 0)::int AS latest FROM ca_generations WHERE ca_id = $1',
      [caId],
    );
    return (latest as number) + 1;
  }

  findGeneration(manager: EntityManager, caId: string, generation: number): Promise<CaGenerationEntity | null> {
    return manager.getRepository(CaGenerationEntity).findOneBy({ caId, generation });
  }

  lockGeneration(manager: EntityManager, caId: string, generation: number): Promise<CaGenerationEntity | null> {
    return manager
      .getRepository(CaGenerationEntity)
      .findOne({ where: { caId, generation }, lock: { mode: 'pessimistic_write' } });
  }

  generationById(manager: EntityManager, id: string): Promise<CaGenerationEntity | null> {
    return manager.getRepository(CaGenerationEntity).findOneBy({ id });
  }

  /** A new generation row: pending, its key pair made, no certificate yet. */
  async insertPendingGeneration(
    manager: EntityManager,
    generation: { caId: string; generation: number; name: string; keyUri: string },
  ): Promise<void> {
    await manager.getRepository(CaGenerationEntity).insert({
      caId: generation.caId,
      generation: generation.generation,
      name: generation.name,
      state: 'pending',
      keyUri: generation.keyUri,
      certificate: null,
      csr: null,
      chain: [],
      serial: null,
      parentGenerationId: null,
      notBefore: null,
      notAfter: null,
      crlNumber: '0',
    });
  }

  async updateGeneration(manager: EntityManager, id: string, changes: CaGenerationChanges): Promise<void> {
    await manager.update(CaGenerationEntity, { id }, changes);
  }

  /** The active generation (with a key here) of every issuing and TSA CA that is not external, by CA name. */
  caLifetimeRows(manager: EntityManager): Promise<CaLifetimeRow[]> {
    return manager.query(
      `SELECT c.id, c.name, c.kind, g.name AS generation, g.not_after,
              CASE WHEN c.kind = 'tsa' THEN 0
                   ELSE (SELECT max(k.certificate_validity_days) FROM signing_keys k WHERE k.issuer_ca_id = c.id) END AS max_leaf_days,
              pg.not_after AS parent_not_after,
              EXISTS (SELECT 1 FROM rotations r WHERE r.kind = 'ca' AND r.state = 'running' AND r.ca_id IN (c.id, c.parent_id)) AS busy
         FROM cas c
         JOIN ca_generations g ON g.ca_id = c.id AND g.state = 'active' AND g.certificate IS NOT NULL AND g.key_uri <> $1
         LEFT JOIN ca_generations pg ON pg.ca_id = c.parent_id AND pg.state = 'active'
        WHERE c.kind IN ('issuing', 'tsa') AND NOT c.external
        ORDER BY c.name`,
      [EXTERNAL_KEY_URI],
    );
  }
}
