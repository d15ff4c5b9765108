import { randomBytes } from 'node:crypto';
import { DataSource, EntityManager } from 'typeorm';
import { TokensRepository } from '../../src/auth/tokens.repository';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { createTestDatabase, TestDatabase } from '../support/database';

/**
 * The token and session locks, once each, on real PostgreSQL: a second transaction taking the
 * same lock waits until the first one commits (the last-admin guard relies on the token-changes
 * lock; a token change and a dying session's end rely on the row locks).
 */
describe(TokensRepository.name, () => {
  let database: TestDatabase;
  let dataSource: DataSource;
  let tokens: TokensRepository;

  beforeAll(async () => {
    database = await createTestDatabase();
    dataSource = await new DataSource(dataSourceOptions(database.url, 4)).initialize();
    tokens = new TokensRepository(dataSource);
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await database?.drop();
  });

  const newToken = (name: string) =>
    dataSource.transaction((manager) =>
      tokens.insert(manager, {
        name,
        role: 'admin',
        keyGrants: [],
        hash: randomBytes(32),
        expiresAt: null,
        rateLimitPerSecond: null,
      }),
    );

  /** The order in which a holder's commit and a waiter's lock happen when both take `lock`. */
  async function order(lock: (manager: EntityManager) => Promise<unknown>): Promise<string[]> {
    const events: string[] = [];
    let release!: () => void;
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const holder = dataSource.transaction(async (manager) => {
      await lock(manager);
      locked();
      await new Promise<void>((resolve) => (release = resolve));
      events.push('holder commits');
    });
    await isLocked;
    const waiter = dataSource.transaction(async (manager) => {
      await lock(manager);
      events.push('waiter got the lock');
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    release();
    await Promise.all([holder, waiter]);
    return events;
  }

  it('makes a second token change wait for the first one to commit (lockTokenChanges)', async () => {
    expect(await order((manager) => tokens.lockTokenChanges(manager))).toEqual([
      'holder commits',
      'waiter got the lock',
    ]);
  });

  it('locks a token row until the transaction ends (lockToken), and reads it', async () => {
    const token = await newToken('locked');
    expect(
      await order(async (manager) => expect((await tokens.lockToken(manager, token.id))?.name).toBe('locked')),
    ).toEqual(['holder commits', 'waiter got the lock']);
  });

  it("locks a session row with the reason it is dead (lockSessionWithEndReason), and ending it is seen by the next lock's reader", async () => {
    const token = await newToken('session-owner');
    const hash = randomBytes(32);
    const opened = await dataSource.transaction((manager) =>
      tokens.openSession(manager, { hash, tokenId: token.id, absoluteTimeoutSeconds: 3600, address: '127.0.0.1' }),
    );
    expect(opened).toBeDefined();
    expect(await order((manager) => tokens.lockSessionWithEndReason(manager, hash))).toEqual([
      'holder commits',
      'waiter got the lock',
    ]);
    const ended = await dataSource.transaction((manager) =>
      tokens.endSessions(manager, { tokenId: token.id }, 'token-revoked'),
    );
    expect(ended).toEqual([{ id: opened!.id, token_id: token.id }]);
    expect(await dataSource.transaction((manager) => tokens.lockSessionWithEndReason(manager, hash))).toEqual({
      id: opened!.id,
      ended: true,
      reason: 'token-revoked',
    });
  });
});
