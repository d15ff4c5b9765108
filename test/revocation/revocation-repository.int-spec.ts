import { randomUUID } from 'node:crypto';
import { DataSource, EntityManager } from 'typeorm';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { RevocationRepository } from '../../src/revocation/revocation.repository';
import { createTestDatabase, query, TestDatabase } from '../support/database';
import { whileHolding } from '../support/row-locks';

/**
 * The row locks of a revocation and a CRL build, once, on real PostgreSQL: two revocations of one
 * certificate serialise; a revocation and a CRL build of its issuer never interleave (a revocation
 * cannot fall between a CRL's read and its thisUpdate), while revocations under one issuer do not
 * wait for each other.
 */
describe(RevocationRepository.name, () => {
  let database: TestDatabase;
  let dataSource: DataSource;
  let repository: RevocationRepository;
  const caId = randomUUID();
  const generationId = randomUUID();

  beforeAll(async () => {
    database = await createTestDatabase();
    dataSource = await new DataSource(dataSourceOptions(database.url, 4)).initialize();
    repository = new RevocationRepository(dataSource);
    await query(
      database.adminUrl,
      `INSERT INTO cas (id, name, kind, key_spec, subject, validity_days) VALUES ($1, 'issuing-a', 'issuing', 'EC-256', '{}', 365)`,
      [caId],
    );
    await query(
      database.adminUrl,
      `INSERT INTO ca_generations (id, ca_id, generation, name, state, key_uri) VALUES ($1, $2, 1, 'issuing-a-g1', 'active', 'pkcs11:object=a')`,
      [generationId, caId],
    );
    for (const serial of ['0a', '0b']) {
      await query(
        database.adminUrl,
        `INSERT INTO certificates (serial, kind, issuer_generation_id, subject_dn, not_before, not_after, der) VALUES ($1, 'code-signing', $2, 'CN=leaf', now(), now() + interval '1 day', '\\x00')`,
        [serial, generationId],
      );
    }
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await database?.drop();
  });

  it('makes a second revocation of the same certificate wait, and lets another certificate through', async () => {
    const lock = (serial: string) => (manager: EntityManager) => repository.lockCertificate(manager, serial);
    expect(await whileHolding(dataSource, lock('0a'), lock('0a'))).toBe('blocked');
    expect(await whileHolding(dataSource, lock('0a'), lock('0b'))).toBe('granted');
  });

  it('makes a CRL build wait for a revocation under its issuer, and the reverse; revocations share the issuer', async () => {
    const hold = (manager: EntityManager) => repository.holdIssuerAgainstCrlBuild(manager, generationId);
    const build = (manager: EntityManager) => repository.lockGenerationForCrl(manager, generationId);
    expect(await whileHolding(dataSource, hold, build)).toBe('blocked');
    expect(await whileHolding(dataSource, build, hold)).toBe('blocked');
    expect(await whileHolding(dataSource, hold, hold)).toBe('granted');
  });
});
