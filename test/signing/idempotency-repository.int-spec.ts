import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { IdempotencyRepository } from '../../src/signing/idempotency.repository';
import { createTestDatabase, TestDatabase } from '../support/database';

/**
 * The idempotency claim, once, on real PostgreSQL: of concurrent requests with one (token, key)
 * exactly one gets the claim; a pending claim is taken over only once abandoned, a done one only
 * after the window.
 */
describe(IdempotencyRepository.name, () => {
  let database: TestDatabase;
  let dataSource: DataSource;
  let records: IdempotencyRepository;
  const fingerprint = Buffer.alloc(32, 7);

  beforeAll(async () => {
    database = await createTestDatabase();
    dataSource = await new DataSource(dataSourceOptions(database.url, 8)).initialize();
    records = new IdempotencyRepository(dataSource);
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await database?.drop();
  });

  it('gives the claim to exactly one of eight concurrent requests', async () => {
    const tokenId = randomUUID();
    const claims = await Promise.all(
      Array.from({ length: 8 }, () => records.tryClaim(tokenId, 'k1', fingerprint, 3600, 60)),
    );
    expect(claims.filter(Boolean)).toHaveLength(1);
    expect(await records.find(tokenId, 'k1')).toEqual({ fingerprint, state: 'pending', response: null });
  });

  it('takes over a pending claim only once it is abandoned, and a done one only after the window', async () => {
    const tokenId = randomUUID();
    expect(await records.tryClaim(tokenId, 'k2', fingerprint, 3600, 60)).toBe(true);
    expect(await records.tryClaim(tokenId, 'k2', fingerprint, 3600, 60)).toBe(false);
    await dataSource.query(
      `UPDATE sign_idempotency SET created_at = now() - interval '2 minutes' WHERE token_id = $1`,
      [tokenId],
    );
    expect(await records.tryClaim(tokenId, 'k2', fingerprint, 3600, 60)).toBe(true);

    await records.complete(tokenId, 'k2', '{"signature":"x"}');
    await dataSource.query(
      `UPDATE sign_idempotency SET created_at = now() - interval '2 minutes' WHERE token_id = $1`,
      [tokenId],
    );
    expect(await records.tryClaim(tokenId, 'k2', fingerprint, 3600, 60)).toBe(false);
    expect((await records.find(tokenId, 'k2'))?.response).toBe('{"signature":"x"}');
    expect(await records.tryClaim(tokenId, 'k2', fingerprint, 60, 60)).toBe(true);

    await records.releasePending(tokenId, 'k2');
    expect(await records.find(tokenId, 'k2')).toBeUndefined();
  });
});
