import { DataSource, EntityManager } from 'typeorm';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { TruststoreEntity } from '../../src/truststore/truststore.entity';
import { NewTruststore, TruststoreRepository } from '../../src/truststore/truststore.repository';
import { createTestDatabase, TestDatabase } from '../support/database';

/**
 * The truststore's version lock, once, on real PostgreSQL: what makes two replicas rebuilding the
 * same truststore take turns. A second transaction's locked re-read waits until the holder
 * commits and then sees the version the holder stored; another truststore is not blocked.
 */
describe(TruststoreRepository.name, () => {
  let database: TestDatabase;
  let dataSource: DataSource;
  let truststores: TruststoreRepository;
  let production: TruststoreEntity;
  let staging: TruststoreEntity;

  beforeAll(async () => {
    database = await createTestDatabase();
    dataSource = await new DataSource(dataSourceOptions(database.url, 4)).initialize();
    truststores = new TruststoreRepository(dataSource);
    // No FK on ca_ids: the lock needs no CA rows.
    const settings: Omit<NewTruststore, 'name'> = {
      caIds: ['00000000-0000-4000-8000-0000000000ca'],
      trustPolicy: { registryScopes: ['*'], level: 'strict' },
      trustManager: null,
      currentVersion: 0,
      currentDigest: null,
    };
    [production, staging] = await dataSource.transaction((manager) =>
      Promise.all([
        truststores.insert(manager, { ...settings, name: 'production' }),
        truststores.insert(manager, { ...settings, name: 'staging' }),
      ]),
    );
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await database?.drop();
  });

  /** Stores the next version of a truststore the way a rebuild does, in the caller's transaction. */
  const storeNextVersion = (manager: EntityManager, truststore: TruststoreEntity) =>
    truststores.insertCurrentVersion(manager, {
      truststoreId: truststore.id,
      version: truststore.currentVersion + 1,
      digest: `sha256:${String(truststore.currentVersion + 1).padStart(64, '0')}`,
      canonical: Buffer.from('{}'),
      rootSha256: [],
      reason: { trigger: 'test', changes: [] },
      revokedAt: null,
      convergedAt: null,
      createdAt: new Date(),
    });

  it('makes a second locked re-read wait for the holder to commit, then see the version it stored; other truststores are not blocked', async () => {
    const order: string[] = [];
    let release!: () => void;
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const holder = dataSource.transaction(async (manager) => {
      const truststore = (await truststores.lockForNewVersion(manager, production.id))!;
      locked();
      await new Promise<void>((resolve) => (release = resolve));
      await storeNextVersion(manager, truststore);
      order.push('holder commits');
    });
    await isLocked;

    const waiter = dataSource.transaction(async (manager) => {
      const truststore = (await truststores.lockForNewVersion(manager, production.id))!;
      order.push('waiter got the lock');
      return truststore.currentVersion;
    });
    const other = await dataSource.transaction(
      async (manager) => (await truststores.lockForNewVersion(manager, staging.id))?.name,
    );
    expect(other).toBe('staging');
    await new Promise((resolve) => setTimeout(resolve, 300));
    release();
    await holder;

    expect(await waiter).toBe(1);
    expect(order).toEqual(['holder commits', 'waiter got the lock']);
  });

  it('answers null for a truststore that does not exist', async () => {
    expect(
      await dataSource.transaction((manager) =>
        truststores.lockForNewVersion(manager, '00000000-0000-4000-8000-000000000000'),
      ),
    ).toBeNull();
  });
});
