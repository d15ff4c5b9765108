import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { TargetsRepository } from '../../src/distribution/targets.repository';
import { createTestDatabase, TestDatabase } from '../support/database';

/**
 * The reconciler's delivery claim, once, on real PostgreSQL: what makes replicas share the targets
 * without pushing one twice. Two claims at once never return the same target; a leased target is
 * not claimed again until its lease is released (or ends); a released one is due again at once.
 */
describe(TargetsRepository.name, () => {
  let database: TestDatabase;
  let dataSource: DataSource;
  let targets: TargetsRepository;
  const claim = { suspects: false, leaseSeconds: 60, verifySeconds: 0 };

  beforeAll(async () => {
    database = await createTestDatabase();
    dataSource = await new DataSource(dataSourceOptions(database.url, 4)).initialize();
    targets = new TargetsRepository(dataSource);
    const digest = `sha256:${'a'.repeat(64)}`;
    const [{ id: truststoreId }] = await dataSource.query(
      `INSERT INTO truststores (name, ca_ids, trust_policy, current_version, current_digest) VALUES ('fleet', ARRAY[gen_random_uuid()], '{}', 1, $1) RETURNING id`,
      [digest],
    );
    await dataSource.query(
      `INSERT INTO truststore_versions (truststore_id, version, digest, canonical, root_sha256, reason) VALUES ($1, 1, $2, '\\x00', '{}', '{}')`,
      [truststoreId, digest],
    );
    const [{ id: regionId }] = await dataSource.query(
      `INSERT INTO distribution_regions (name) VALUES ('us') RETURNING id`,
    );
    for (let i = 0; i < 6; i++) {
      await dataSource.query(
        `INSERT INTO distribution_targets (region_id, name, kind, endpoint, truststore_id) VALUES ($1, $2, 'oci-registry', 'https://registry.example', $3)`,
        [regionId, `t${i}`, truststoreId],
      );
    }
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await database?.drop();
  });

  it('gives each due target to one of two concurrent claims, and leased targets to neither afterwards', async () => {
    const [first, second] = await Promise.all([
      targets.claimDue({ ...claim, limit: 4 }),
      targets.claimDue({ ...claim, limit: 4 }),
    ]);
    const ids = [...first, ...second].map((target) => target.id);
    expect(ids).toHaveLength(6);
    expect(new Set(ids).size).toBe(6);
    expect(first.every((target) => target.desiredVersion === 1 && target.leaseToken)).toBe(true);
    expect(await targets.claimDue({ ...claim, limit: 10 })).toEqual([]);

    // A released lease makes its target due again at once; the others stay leased.
    const released = first[0];
    await targets.releaseLease(released);
    const again = await targets.claimDue({ ...claim, limit: 10 });
    expect(again.map((target) => target.id)).toEqual([released.id]);
    expect(again[0].leaseToken).not.toBe(released.leaseToken);

    // The old lease token no longer counts: a late write under it changes nothing.
    await targets.recordFailure(released, {
      attempts: 1,
      state: 'retrying',
      message: 'late',
      kind: 'timeout',
      delayMs: 0,
    });
    const [row] = await dataSource.query('SELECT lease_token, last_error FROM distribution_targets WHERE id = $1', [
      released.id,
    ]);
    expect(row).toEqual({ lease_token: again[0].leaseToken, last_error: null });
  });

  it('skips rows another transaction holds locked instead of waiting for them', async () => {
    await dataSource.query('UPDATE distribution_targets SET lease_token = NULL, lease_until = NULL');
    const [{ id: locked }] = await dataSource.query(`SELECT id FROM distribution_targets WHERE name = 't0'`);
    let release!: () => void;
    let holding!: () => void;
    const held = new Promise<void>((resolve) => (holding = resolve));
    const holder = dataSource.transaction(async (manager) => {
      await manager.query('SELECT 1 FROM distribution_targets WHERE id = $1 FOR UPDATE', [locked]);
      holding();
      await new Promise<void>((resolve) => (release = resolve));
    });
    await held;
    try {
      const claimed = await targets.claimDue({ ...claim, limit: 10 });
      expect(claimed).toHaveLength(5);
      expect(claimed.map((target) => target.id)).not.toContain(locked);
    } finally {
      release();
      await holder;
    }
    expect((await targets.claimDue({ ...claim, limit: 10 })).map((target) => target.id)).toEqual([locked]);
  });
});
