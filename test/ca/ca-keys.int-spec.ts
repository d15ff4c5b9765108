import { DataSource } from 'typeorm';
import { CaService } from '../../src/ca/ca.service';
import { CaCreationService } from '../../src/ca/ca-creation.service';
import { KEY_MANAGER, KeyManager } from '../../src/hsm/key-manager';
import { startTestApp, TestApp } from '../support/test-app';

/**
 * A CA's HSM key goes with its CA (ca/ca-keys.ts, SoftHSM2 + PostgreSQL): when the CA row cannot
 * be stored, the key pair made for it is destroyed again, so the token holds no orphan.
 */
describe('CA keys: nothing half-written (SoftHSM2 + PostgreSQL)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(() => t.close());

  const subject = { C: 'US', ST: 'Washington', O: 'Example Corp', CN: 'Race Root' };
  const keysLabelled = async (label: string) =>
    (await t.app.get<KeyManager>(KEY_MANAGER).listKeys('ca')).filter((key) => key.label === label);

  it('two creations of one CA name racing: one stores its CA, the other fails on the unique name and destroys its key', async () => {
    const dataSource = t.app.get(DataSource);
    const creation = t.app.get(CaCreationService);
    // Both pass the name check and make their key pair; their inserts wait here until both keys exist.
    const gate = dataSource.createQueryRunner();
    await gate.connect();
    await gate.startTransaction();
    await gate.query('LOCK TABLE cas IN EXCLUSIVE MODE');
    const create = () =>
      creation.create({ name: 'race-root', kind: 'root', keySpec: 'EC-256', validityDays: 365, subject });
    const results = Promise.allSettled([create(), create()]);
    try {
      for (let waited = 0; (await keysLabelled('ca:race-root-g1')).length < 2; waited += 50) {
        if (waited > 30_000) throw new Error('the two creations did not both make their key pair');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      await gate.commitTransaction();
      await gate.release();
    }
    const settled = await results;
    expect(settled.map((result) => result.status).sort()).toEqual(['fulfilled', 'rejected']);
    // The loser passed the name check and failed on the insert (the API answers 409 ALREADY_EXISTS).
    const rejected = settled.find((result) => result.status === 'rejected') as PromiseRejectedResult;
    expect((rejected.reason as { driverError?: { code?: string } }).driverError?.code).toBe('23505');

    const left = await keysLabelled('ca:race-root-g1');
    expect(left).toHaveLength(1);
    const cas = t.app.get(CaService);
    const stored = await cas.activeGeneration((await cas.byName('race-root')).id);
    expect(left[0].uri).toBe(stored.keyUri);
  });
});
