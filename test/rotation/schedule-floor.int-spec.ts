import { RotationScheduler } from '../../src/rotation/rotation.scheduler';
import { query } from '../support/database';
import { http, SUBJECT } from './rotation-helpers';
import { RotationTestApp, startRotationTestApp } from './rotation-test-app';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/**
 * Key creation refuses schedules more frequent than SIGNET_ROTATION_MIN_INTERVAL_HOURS (issue #17,
 * finding 5). A schedule stored before that check existed must not keep minting HSM keys either:
 * the scheduler rotates such a key at most once per floor. Real PostgreSQL and SoftHSM2; the
 * scheduler is ticked at chosen instants.
 */
describe('a stored rotation schedule more frequent than the floor (written before the check existed)', () => {
  let t: RotationTestApp;
  let api: ReturnType<typeof http>;

  beforeAll(async () => {
    t = await startRotationTestApp();
    api = http(t.app, t.adminToken);
  });
  afterAll(() => t.close());

  const tickAt = async (at: Date) => {
    t.clock.set(at);
    return (await t.app.get(RotationScheduler).tick(at)).started.filter((rotation) => rotation.subject === 'legacy');
  };
  const activeVersion = async () => {
    const key = (await api('GET', '/v1/keys/legacy')).body as {
      activeVersion: number;
      versions: Array<{ version: number; activatedAt: string }>;
    };
    return {
      version: key.activeVersion,
      activatedAt: new Date(key.versions.find((v) => v.version === key.activeVersion)!.activatedAt),
    };
  };

  it('rotates a key whose stored schedule fires every minute no more than once per SIGNET_ROTATION_MIN_INTERVAL_HOURS', async () => {
    expect(
      (await api('POST', '/v1/keys', { name: 'legacy', keySpec: 'EC-256', subject: { ...SUBJECT, CN: 'legacy' } }))
        .status,
    ).toBe(201);
    await query(
      t.database.url,
      `UPDATE signing_keys SET rotation = jsonb_set(rotation::jsonb, '{schedule}', '"* * * * *"') WHERE name = 'legacy'`,
    );
    const first = await activeVersion();
    expect(first.version).toBe(1);

    expect(await tickAt(new Date(first.activatedAt.getTime() + 2 * MINUTE))).toEqual([]);
    expect(await tickAt(new Date(first.activatedAt.getTime() + 23 * HOUR))).toEqual([]);
    expect(await tickAt(new Date(first.activatedAt.getTime() + 24 * HOUR + MINUTE))).toEqual([
      expect.objectContaining({ trigger: 'schedule' }),
    ]);
    const second = await activeVersion();
    expect(second.version).toBe(2);
    expect(await tickAt(new Date(second.activatedAt.getTime() + 5 * MINUTE))).toEqual([]);
    expect((await activeVersion()).version).toBe(2);
    expect(t.logs.join('')).toContain(
      "rotation schedule '* * * * *' fires more often than SIGNET_ROTATION_MIN_INTERVAL_HOURS",
    );
  });
});
