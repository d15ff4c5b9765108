import { DataSource, EntityManager } from 'typeorm';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { IdentityRepository, ProviderFields } from '../../src/identity/identity.repository';
import { createTestDatabase, TestDatabase } from '../support/database';
import { whileHolding } from '../support/row-locks';

/**
 * The identity locks, once each, on real PostgreSQL: provider changes take turns on the provider
 * row (lockProvider), rule changes on the rule row alone (lockRule, FOR UPDATE OF r), and deleting
 * a provider waits for a rule change in flight (deleteProvider locks the rules it takes with it).
 */
describe(IdentityRepository.name, () => {
  let database: TestDatabase;
  let dataSource: DataSource;
  let identity: IdentityRepository;

  const provider: ProviderFields = {
    issuer: 'https://ci.example.test', // made unique per provider below
    audiences: ['signet'],
    allowedAlgorithms: ['RS256'],
    jwksUri: null,
    clockSkewSeconds: 60,
    singleUse: false,
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    dataSource = await new DataSource(dataSourceOptions(database.url, 4)).initialize();
    identity = new IdentityRepository(dataSource);
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await database?.drop();
  });

  async function providerWithRule(name: string): Promise<{ providerId: string; rule: string }> {
    return dataSource.transaction(async (manager) => {
      const row = await identity.insertProvider(manager, name, { ...provider, issuer: `https://${name}.example.test` });
      await identity.insertRule(manager, `${name}-rule`, row.id, {
        claims: { sub: 'repo:example/app:*' },
        keys: ['release'],
        expiresAt: null,
      });
      return { providerId: row.id, rule: `${name}-rule` };
    });
  }

  it('locks a provider row until the transaction ends (lockProvider); a plain read does not wait', async () => {
    await providerWithRule('gitlab');
    const lock = (manager: EntityManager) => identity.lockProvider(manager, 'gitlab');
    expect(await whileHolding(dataSource, lock, lock)).toBe('blocked');
    expect(
      await whileHolding(dataSource, lock, async (manager) =>
        expect((await identity.providerByName('gitlab', manager))?.issuer).toBe('https://gitlab.example.test'),
      ),
    ).toBe('granted');
    expect(await whileHolding(dataSource, lock, (manager) => identity.lockProvider(manager, 'other'))).toBe('granted');
  });

  it('locks a rule row, not its provider (lockRule): rule changes take turns, a provider change does not wait', async () => {
    const { rule } = await providerWithRule('github');
    const lockRule = (manager: EntityManager) => identity.lockRule(manager, rule);
    expect(await whileHolding(dataSource, lockRule, lockRule)).toBe('blocked');
    expect(await whileHolding(dataSource, lockRule, (manager) => identity.lockProvider(manager, 'github'))).toBe(
      'granted',
    );
  });

  it('makes deleting a provider wait for a change to one of its rules (deleteProvider), then takes the rules with it', async () => {
    const { providerId, rule } = await providerWithRule('jenkins');
    expect(
      await whileHolding(
        dataSource,
        (manager) => identity.lockRule(manager, rule),
        (manager) => identity.deleteProvider(manager, providerId),
      ),
    ).toBe('blocked');
    expect(await identity.ruleByName(rule)).toBeDefined();
    expect(await dataSource.transaction((manager) => identity.deleteProvider(manager, providerId))).toEqual([rule]);
    expect(await identity.providerByName('jenkins')).toBeUndefined();
    expect(await identity.ruleByName(rule)).toBeUndefined();
  });
});
