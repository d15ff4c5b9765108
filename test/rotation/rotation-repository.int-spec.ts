import { DataSource, EntityManager } from 'typeorm';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { RotationRepository } from '../../src/rotation/rotation.repository';
import { createTestDatabase, TestDatabase } from '../support/database';

/**
 * The rotation lock, once, on real PostgreSQL: what makes two replicas never run the same key's
 * rotation at once. A transaction holding a key's lock makes another transaction's try answer
 * false; other keys are not blocked; the lock is released when its transaction commits.
 */
describe(RotationRepository.name, () => {
  let database: TestDatabase;
  let dataSource: DataSource;
  const rotations = new RotationRepository();
  const keyA = { kind: 'key', keyId: '00000000-0000-4000-8000-00000000000a' };
  const keyB = { kind: 'key', keyId: '00000000-0000-4000-8000-00000000000b' };

  beforeAll(async () => {
    database = await createTestDatabase();
    dataSource = await new DataSource(dataSourceOptions(database.url, 4)).initialize();
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await database?.drop();
  });

  /** Runs `inside` while another transaction holds `held`'s lock, then commits that transaction. */
  async function whileHeld<T>(held: typeof keyA | { kind: 'ca' }, inside: () => Promise<T>): Promise<T> {
    let release!: () => void;
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const holder = dataSource.transaction(async (manager: EntityManager) => {
      expect(await rotations.tryLock(manager, held)).toBe(true);
      locked();
      await new Promise<void>((resolve) => (release = resolve));
    });
    await isLocked;
    try {
      return await inside();
    } finally {
      release();
      await holder;
    }
  }

  const tryIn = (subject: typeof keyA | { kind: 'ca' }) =>
    dataSource.transaction((manager) => rotations.tryLock(manager, subject));

  it("refuses a key's lock to a second transaction while the first holds it, and grants other keys", async () => {
    const [sameKey, otherKey, caRollovers] = await whileHeld(keyA, async () => [
      await tryIn(keyA),
      await tryIn(keyB),
      await tryIn({ kind: 'ca' }),
    ]);
    expect(sameKey).toBe(false);
    expect(otherKey).toBe(true);
    expect(caRollovers).toBe(true);
  });

  it('releases the lock when the holding transaction commits', async () => {
    await whileHeld(keyA, async () => expect(await tryIn(keyA)).toBe(false));
    expect(await tryIn(keyA)).toBe(true);
  });

  it('waits for the lock with wait=true instead of answering false', async () => {
    const order: string[] = [];
    // Wrapped in an object: returning the promise itself would make whileHeld await it before releasing.
    const { waiter } = await whileHeld({ kind: 'ca' }, async () => {
      const waiter = dataSource.transaction(async (manager) => {
        const got = await rotations.tryLock(manager, { kind: 'ca' }, true);
        order.push('waiter got the lock');
        return got;
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      order.push('holder commits');
      return { waiter };
    });
    expect(await waiter).toBe(true);
    expect(order).toEqual(['holder commits', 'waiter got the lock']);
  });
});
