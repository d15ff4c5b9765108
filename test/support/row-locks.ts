import { DataSource, EntityManager } from 'typeorm';

/** PostgreSQL's lock_not_available: what a lock request answers once lock_timeout has passed. */
const LOCK_NOT_AVAILABLE = '55P03';

/**
 * Whether `second`, run in its own transaction while another transaction holds what `first` took,
 * gets its locks: 'granted', or 'blocked' when it waited past a short lock_timeout. The holding
 * transaction commits afterwards either way.
 */
export async function whileHolding(
  dataSource: DataSource,
  first: (manager: EntityManager) => Promise<unknown>,
  second: (manager: EntityManager) => Promise<unknown>,
): Promise<'granted' | 'blocked'> {
  let release!: () => void;
  let held!: () => void;
  const isHeld = new Promise<void>((resolve) => (held = resolve));
  const holder = dataSource.transaction(async (manager) => {
    await first(manager);
    held();
    await new Promise<void>((resolve) => (release = resolve));
  });
  await isHeld;
  try {
    return await dataSource.transaction(async (manager) => {
      await manager.query(`SET LOCAL lock_timeout = '300ms'`);
      try {
        await second(manager);
        return 'granted' as const;
      } catch (error) {
        if (
          (error as { driverError?: { code?: string }; code?: string }).driverError?.code === LOCK_NOT_AVAILABLE ||
          (error as { code?: string }).code === LOCK_NOT_AVAILABLE
        ) {
          return 'blocked' as const;
        }
        throw error;
      }
    });
  } finally {
    release();
    await holder;
  }
}
