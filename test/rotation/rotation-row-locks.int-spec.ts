import { randomUUID } from 'node:crypto';
import { DataSource, EntityManager } from 'typeorm';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { RotationRepository } from '../../src/rotation/rotation.repository';
import { RotationSubjectsRepository } from '../../src/rotation/rotation-subjects.repository';
import { createTestDatabase, query, TestDatabase } from '../support/database';
import { whileHolding } from '../support/row-locks';

/**
 * The row locks rotation steps take besides the advisory lock, once, on real PostgreSQL: a key's
 * activation serialises on the key row and its versions, a CA activation on the CA rows (any
 * overlap waits), a generation being made or certified on its row, and a step on its rotation row.
 * Rows of other keys, versions and CAs are not blocked.
 */
describe(`${RotationSubjectsRepository.name} and ${RotationRepository.name} row locks`, () => {
  let database: TestDatabase;
  let dataSource: DataSource;
  const subjects = new RotationSubjectsRepository();
  const rotations = new RotationRepository();
  const keyA = randomUUID();
  const keyB = randomUUID();
  const rootA = randomUUID();
  const rootB = randomUUID();
  const issuing = randomUUID();
  const rotationA = randomUUID();
  const rotationB = randomUUID();

  beforeAll(async () => {
    database = await createTestDatabase();
    dataSource = await new DataSource(dataSourceOptions(database.url, 4)).initialize();
    const admin = (sql: string, params: unknown[]) => query(database.adminUrl, sql, params);
    for (const [id, name, kind, parent] of [
      [rootA, 'root-a', 'root', null],
      [rootB, 'root-b', 'root', null],
      [issuing, 'issuing-a', 'issuing', rootA],
    ] as const) {
      await admin(
        `INSERT INTO cas (id, name, kind, parent_id, key_spec, subject, validity_days) VALUES ($1, $2, $3, $4, 'EC-256', '{}', 365)`,
        [id, name, kind, parent],
      );
      await admin(
        `INSERT INTO ca_generations (ca_id, generation, name, state, key_uri) VALUES ($1, 1, $2, 'active', 'pkcs11:object=x')`,
        [id, `${name}-g1`],
      );
    }
    for (const [id, name] of [
      [keyA, 'key-a'],
      [keyB, 'key-b'],
    ]) {
      await admin(
        `INSERT INTO signing_keys (id, name, key_spec, subject, certificate_validity_days, rotation) VALUES ($1, $2, 'EC-256', '{}', 30, '{"schedule": "0 0 1 * *"}')`,
        [id, name],
      );
      await admin(
        `INSERT INTO key_versions (key_id, version, state, key_uri, public_key) VALUES ($1, 1, 'active', 'pkcs11:object=v1', '\\x00'), ($1, 2, 'pending', 'pkcs11:object=v2', '\\x00')`,
        [id],
      );
    }
    for (const [id, keyId, name] of [
      [rotationA, keyA, 'key-a'],
      [rotationB, keyB, 'key-b'],
    ]) {
      await admin(
        `INSERT INTO rotations (id, kind, key_id, subject, trigger, state, steps, plan, next_run_at, started_at) VALUES ($1, 'key', $2, $3, 'manual', 'running', '[]', '{}', now(), now())`,
        [id, keyId, name],
      );
    }
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await database?.drop();
  });

  type Lock = (manager: EntityManager) => Promise<unknown>;
  const held = (first: Lock, second: Lock) => whileHolding(dataSource, first, second);

  it("makes a second activation of a key wait on the key's row, not another key's", async () => {
    expect(
      await held(
        (m) => subjects.lockKey(m, keyA),
        (m) => subjects.lockKey(m, keyA),
      ),
    ).toBe('blocked');
    expect(
      await held(
        (m) => subjects.lockKey(m, keyA),
        (m) => subjects.lockKey(m, keyB),
      ),
    ).toBe('granted');
  });

  it('locks one key version at a time: the same version waits, the active version is the one lockActiveVersion takes', async () => {
    expect(
      await held(
        (m) => subjects.lockVersion(m, keyA, 2),
        (m) => subjects.lockVersion(m, keyA, 2),
      ),
    ).toBe('blocked');
    expect(
      await held(
        (m) => subjects.lockVersion(m, keyA, 2),
        (m) => subjects.lockVersion(m, keyA, 1),
      ),
    ).toBe('granted');
    expect(
      await held(
        (m) => subjects.lockActiveVersion(m, keyA),
        (m) => subjects.lockVersion(m, keyA, 1),
      ),
    ).toBe('blocked');
    expect(
      await held(
        (m) => subjects.lockActiveVersion(m, keyA),
        (m) => subjects.lockActiveVersion(m, keyB),
      ),
    ).toBe('granted');
  });

  it('makes CA activations that share a CA wait, and lets disjoint ones through', async () => {
    expect(
      await held(
        (m) => subjects.lockCas(m, [rootA, issuing]),
        (m) => subjects.lockCas(m, [issuing]),
      ),
    ).toBe('blocked');
    expect(
      await held(
        (m) => subjects.lockCas(m, [rootA, issuing]),
        (m) => subjects.lockCas(m, [rootB]),
      ),
    ).toBe('granted');
  });

  it("locks a CA generation's row while it is made or certified", async () => {
    expect(
      await held(
        (m) => subjects.lockGeneration(m, rootA, 1),
        (m) => subjects.lockGeneration(m, rootA, 1),
      ),
    ).toBe('blocked');
    expect(
      await held(
        (m) => subjects.lockGeneration(m, rootA, 1),
        (m) => subjects.lockGeneration(m, rootB, 1),
      ),
    ).toBe('granted');
  });

  it("holds a rotation's row FOR UPDATE for the step's transaction", async () => {
    expect(
      await held(
        (m) => rotations.findForUpdate(m, rotationA),
        (m) => rotations.findForUpdate(m, rotationA),
      ),
    ).toBe('blocked');
    expect(
      await held(
        (m) => rotations.findForUpdate(m, rotationA),
        (m) => rotations.findForUpdate(m, rotationB),
      ),
    ).toBe('granted');
  });
});
