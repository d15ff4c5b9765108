import { nextOccurrence } from '../../src/keys/rotation-schedule';
import { createTestDatabase, query, TestDatabase } from '../support/database';
import { ensureBuilt, tempDir } from '../support/server-process';
import { SignetProcess, startSignet, TickReport } from './rotation-process';

const HOUR = 3_600_000;
const KEYS = ['alpha', 'bravo', 'charlie', 'delta', 'echo'];

/**
 * Two Signet processes (real OS processes) on one database and one SoftHSM2 token fire the
 * rotation scheduler at the same injected instant, several times: each due key is rotated once,
 * with one new HSM key pair, whichever process did the work.
 */
describe('rotation across replicas (two real processes, one database, one HSM token)', () => {
  let database: TestDatabase;
  let a: SignetProcess | undefined;
  let b: SignetProcess | undefined;
  let c: SignetProcess | undefined;
  let env: Record<string, string>;

  beforeAll(async () => {
    ensureBuilt();
    database = await createTestDatabase({ migrate: false });
    env = {
      DATABASE_URL: database.url,
      SIGNET_MIGRATION_DATABASE_URL: database.ownerUrl,
      SIGNET_DATA_DIR: tempDir('replicas-'),
    };
    [a, b] = await Promise.all([startSignet(env), startSignet(env)]);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
    await database?.drop();
  });

  it('one rotation and one new HSM key pair per key when both fire on the same tick', async () => {
    for (const name of KEYS) {
      const created = await a!.api('POST', '/v1/keys', {
        name,
        keySpec: 'EC-256',
        subject: { C: 'US', ST: 'Washington', O: 'Example Corp', CN: name },
      });
      expect(created.status).toBe(201);
    }
    const due = new Date(nextOccurrence('quarterly', new Date()).getTime() + HOUR);
    const reports: TickReport[] = [];
    for (let round = 0; round < 3; round++) reports.push(...(await Promise.all([a!.tick(due), b!.tick(due)])));

    // Between them the two processes started five rotations and committed three steps of each, once.
    expect(reports.flatMap((r) => r.started.map((s) => s.subject)).sort()).toEqual(KEYS);
    expect(reports.reduce((n, r) => n + r.steps, 0)).toBe(KEYS.length * 3);
    const rotations = await query<{ subject: string; n: number; states: string[] }>(
      database.url,
      `SELECT subject, count(*)::int AS n, array_agg(state) AS states FROM rotations GROUP BY subject ORDER BY subject`,
    );
    expect(rotations).toEqual(KEYS.map((subject) => ({ subject, n: 1, states: ['activated'] })));
    const versions = await query<{ name: string; states: string[] }>(
      database.url,
      `SELECT k.name, array_agg(v.state ORDER BY v.version) AS states FROM key_versions v JOIN signing_keys k ON k.id = v.key_id GROUP BY k.name ORDER BY k.name`,
    );
    expect(versions).toEqual(KEYS.map((name) => ({ name, states: ['retiring', 'active'] })));

    // The token (shared by both) holds exactly v1 and v2 of each key, as each replica lists it …
    for (const replica of [a!, b!]) {
      const hsm = await replica.hsm();
      for (const name of KEYS)
        expect(
          hsm.keys
            .filter((k) => k.label.startsWith(`${name}-`))
            .map((k) => k.label)
            .sort(),
        ).toEqual([`${name}-v1`, `${name}-v2`]);
    }
    // … and as a fresh process reads it from the token directory: nothing orphaned or missing.
    // (SoftHSM2's file store can show one replica a pair the other is still writing without its
    // private key for a while; a fresh process has no such cached view.)
    await Promise.all([a!.stop(), b!.stop()]);
    a = b = undefined;
    c = await startSignet(env);
    const hsm = await c.hsm();
    for (const name of KEYS)
      expect(
        hsm.keys
          .filter((k) => k.label.startsWith(`${name}-`))
          .map((k) => [k.label, k.hasPrivateKey])
          .sort(),
      ).toEqual([
        [`${name}-v1`, true],
        [`${name}-v2`, true],
      ]);
    expect(hsm.reconciliation).toEqual({ orphanObjects: [], missingObjects: [], plannedObjects: [] });
    const created = await query<{ n: number }>(
      database.url,
      `SELECT count(*)::int AS n FROM audit_events WHERE type = 'rotation.step' AND data->>'step' = 'create-key'`,
    );
    expect(created[0].n).toBe(KEYS.length);
  });
});
