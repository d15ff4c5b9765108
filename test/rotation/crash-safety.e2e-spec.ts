import { nextOccurrence } from '../../src/keys/rotation-schedule';
import { createTestDatabase, query, TestDatabase } from '../support/database';
import { ensureBuilt, tempDir } from '../support/server-process';
import { SignetProcess, startSignet } from './rotation-process';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const STEPS = ['create-key', 'issue-certificate', 'activate', 'retire', 'destroy'];

/**
 * Crash safety with real processes: the server (node dist/src/main.js) SIGKILLs itself right after
 * a rotation step commits (SIGNET_TEST_CRASH_AFTER_STEP, a test hook refused outside NODE_ENV=test)
 * — after each step in turn, and between a step's HSM operation and its commit (the new key pair
 * exists but nothing about it was stored; the old private key is destroyed but its version not). A second process on the same database and SoftHSM2 token resumes: the rotation
 * completes exactly once (one rotation, one new version, each step audited once) and HSM
 * reconciliation finds nothing orphaned or missing.
 */
describe('rotation crash safety (SIGKILL after each step, real processes)', () => {
  beforeAll(() => ensureBuilt());

  // Overlap and retention of one day each: the ticks at T, T+1d, T+2d take a rotation through every step.
  const quarter = nextOccurrence('quarterly', new Date());
  const ticks = [0, 1, 2].map((d) => new Date(quarter.getTime() + HOUR + d * DAY));

  it.each(['create-key-hsm', ...STEPS, 'destroy-hsm'])(
    'killed at %s, a restarted process completes the same rotation once, with nothing orphaned in the HSM',
    async (crashPoint) => {
      const database: TestDatabase = await createTestDatabase();
      const dataDir = tempDir('crash-');
      const env = { DATABASE_URL: database.url, SIGNET_DATA_DIR: dataDir };
      let survivor: SignetProcess | undefined;
      let victim: SignetProcess | undefined;
      try {
        victim = await startSignet({ ...env, SIGNET_TEST_CRASH_AFTER_STEP: crashPoint });
        const created = await victim.api('POST', '/v1/keys', {
          name: 'release',
          keySpec: 'EC-256',
          subject: { C: 'US', ST: 'Washington', O: 'Example Corp', CN: 'release' },
          rotation: { overlapDays: 1, retentionDays: 1 },
        });
        expect(created.status).toBe(201);
        let crashedDuring: number | undefined;
        for (const [i, at] of ticks.entries()) {
          try {
            await victim.tick(at);
          } catch {
            crashedDuring = i;
            break;
          }
        }
        expect(await victim.server.exited).toEqual({ code: null, signal: 'SIGKILL' });
        expect(victim.server.text()).toContain(`test hook: SIGKILL at rotation crash point ${crashPoint}`);
        expect(crashedDuring).toBe(crashPoint === 'retire' ? 1 : crashPoint.startsWith('destroy') ? 2 : 0);

        // What the crash left: the step committed (or, at create-key-hsm, only the HSM object).
        const [left] = await query<{ id: string; steps: Array<{ name: string; state: string }> }>(
          database.url,
          `SELECT id, steps FROM rotations`,
        );
        const states = Object.fromEntries(left.steps.map((s) => [s.name, s.state]));
        if (crashPoint === 'create-key-hsm') expect(states['create-key']).toBe('pending');
        else if (crashPoint === 'destroy-hsm') expect(states.destroy).toBe('waiting');
        else expect(states[crashPoint]).toBe('done');

        survivor = await startSignet(env);
        if (crashPoint === 'create-key-hsm') {
          // The object the dead process created is the rotation's planned one, not an orphan.
          const before = await survivor.hsm();
          expect(before.keys.filter((k) => k.label === 'release-v2')).toHaveLength(1);
          expect(before.reconciliation.orphanObjects).toEqual([]);
          expect(before.reconciliation.plannedObjects).toHaveLength(1);
        }
        for (const at of ticks) await survivor.tick(at);

        const rotations = await query<{
          id: string;
          state: string;
          steps: Array<{ name: string; state: string; detail: Record<string, unknown> }>;
        }>(database.url, `SELECT id, state, steps FROM rotations`);
        expect(rotations).toHaveLength(1);
        expect(rotations[0].id).toBe(left.id);
        expect(rotations[0].state).toBe('completed');
        expect(rotations[0].steps.map((s) => s.state)).toEqual(['done', 'done', 'done', 'done', 'done']);
        // Resumed work adopted what the HSM already held (the planned key pair) or no longer held (the old key).
        if (crashPoint === 'create-key-hsm')
          expect(rotations[0].steps[0].detail).toMatchObject({ adoptedExistingObject: true });
        if (crashPoint === 'destroy-hsm') expect(rotations[0].steps[4].detail).toMatchObject({ alreadyGone: true });
        const versions = await query<{ version: number; state: string }>(
          database.url,
          `SELECT version, state FROM key_versions ORDER BY version`,
        );
        expect(versions).toEqual([
          { version: 1, state: 'destroyed' },
          { version: 2, state: 'active' },
        ]);
        const audited = await query<{ step: string; n: number }>(
          database.url,
          `SELECT data->>'step' AS step, count(*)::int AS n FROM audit_events WHERE type = 'rotation.step' AND data->>'outcome' = 'done' GROUP BY 1`,
        );
        expect(Object.fromEntries(audited.map((a) => [a.step, a.n]))).toEqual(
          Object.fromEntries(STEPS.map((s) => [s, 1])),
        );
        const certificates = await query<{ n: number }>(
          database.url,
          `SELECT count(*)::int AS n FROM certificates WHERE kind = 'code-signing'`,
        );
        expect(certificates[0].n).toBe(2);

        const hsm = await survivor.hsm();
        expect(hsm.keys.filter((k) => k.label.startsWith('release-')).map((k) => [k.label, k.hasPrivateKey])).toEqual([
          ['release-v2', true],
        ]);
        expect(hsm.reconciliation).toEqual({ orphanObjects: [], missingObjects: [], plannedObjects: [] });

        const signed = await survivor.api('POST', '/v1/keys/release/sign', {
          payload: Buffer.from('after the crash').toString('base64'),
          hashAlgorithm: 'SHA-256',
        });
        expect(signed.status).toBe(200);
        expect(signed.body.keyVersion).toBe(2);
        await survivor.stop();
        survivor = undefined;
      } finally {
        victim?.server.kill('SIGKILL');
        survivor?.server.kill('SIGKILL');
        await database.drop();
      }
    },
  );
});
