import 'reflect-metadata';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as x509 from '@peculiar/x509';
import { DataSource } from 'typeorm';
import { ChangeNotifier } from '../../src/database/change-notifier';
import { KEY_STORE, KeyStore } from '../../src/hsm/key-store';
import { reconcileHsm } from '../../src/rotation/hsm-objects';
import { KEYS_CHANNEL } from '../../src/signing/active-key-cache';
import { nextOccurrence } from '../../src/keys/rotation-schedule';
import { RotationScheduler } from '../../src/rotation/rotation.scheduler';
import { query } from '../support/database';
import { tempDir } from '../support/server-process';
import {
  chainValidAt,
  DAY,
  http,
  openssl,
  SignatureRecord,
  signatureVerifies,
  signWith,
  SUBJECT,
  writePem,
} from './rotation-helpers';
import { GateDouble, RotationTestApp, startRotationTestApp, TestClock } from './rotation-test-app';

const KEYS = [
  { name: 'sim-ec256', keySpec: 'EC-256', schedule: 'quarterly', overlapDays: 14, retentionDays: 30 },
  { name: 'sim-ec384', keySpec: 'EC-384', schedule: 'quarterly', overlapDays: 14, retentionDays: 30 },
  { name: 'sim-rsa', keySpec: 'RSA-3072', schedule: 'quarterly', overlapDays: 14, retentionDays: 30 },
  // 06:00 UTC on the 15th of every other month, through the cron path.
  { name: 'sim-cron', keySpec: 'EC-256', schedule: '0 6 15 */2 *', overlapDays: 7, retentionDays: 14 },
];
const LEAF_DAYS = 120;
const ROOT_ROLLOVER_DAY = 365;
const GATE_OPENS_DAY = 371;

/**
 * Two simulated years on the whole application with the rotation clock under the test's control
 * (no sleeping): a scheduler tick every day at 00:30 UTC, a signature from every key after every
 * tick. Along the way the issuing CA renews itself twice (its remaining lifetime would cut leaves
 * short) and the root rolls over through the distribution gate. Checked: at most (here: exactly)
 * one active version per key after every tick, every signature verifies against the chain it came
 * with, every chain was valid when it signed (OpenSSL at that time), the expected number of
 * rotations, and nothing orphaned or missing in the HSM at the end.
 */
describe('two simulated years of rotations', () => {
  let t: RotationTestApp;
  let api: ReturnType<typeof http>;
  const gate = new GateDouble();
  const start = new Date();

  beforeAll(async () => {
    t = await startRotationTestApp({ clock: new TestClock(start), gate, env: { SIGNET_LOG_LEVEL: 'warn' } });
    api = http(t.app, t.adminToken);
  });
  afterAll(() => t.close());

  it('rotates every key on schedule, rolls the issuing CA and the root over, and every signature verifies against its chain', async () => {
    expect(
      (
        await api('POST', '/v1/cas', {
          name: 'sim-root',
          kind: 'root',
          keySpec: 'EC-384',
          validityDays: 3650,
          subject: { ...SUBJECT, CN: 'Sim Root' },
        })
      ).status,
    ).toBe(201);
    expect(
      (
        await api('POST', '/v1/cas', {
          name: 'sim-issuing',
          kind: 'issuing',
          parent: 'sim-root',
          keySpec: 'EC-384',
          validityDays: 400,
          subject: { ...SUBJECT, CN: 'Sim Issuing' },
        })
      ).status,
    ).toBe(201);
    for (const key of KEYS) {
      const created = await api('POST', '/v1/keys', {
        name: key.name,
        keySpec: key.keySpec,
        issuer: 'sim-issuing',
        certificateValidityDays: LEAF_DAYS,
        subject: { ...SUBJECT, CN: key.name },
        rotation: { schedule: key.schedule, overlapDays: key.overlapDays, retentionDays: key.retentionDays },
      });
      expect(created.status).toBe(201);
    }
    const scheduler = t.app.get(RotationScheduler);
    const dataSource = t.app.get(DataSource);
    const sync = new NotificationSync(t.app.get(ChangeNotifier), dataSource);

    const signatures: SignatureRecord[] = [];
    const problems: string[] = [];
    let rolloverId: string | undefined;
    const firstTick = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate() + 1, 0, 30));
    let lastTick = firstTick;
    for (let day = 0; day < 730; day++) {
      const now = new Date(firstTick.getTime() + day * DAY);
      lastTick = now;
      t.clock.set(now);
      if (day === ROOT_ROLLOVER_DAY) {
        const renewed = await api('POST', '/v1/cas/sim-root/renew', { reason: 'planned root rollover' });
        expect(renewed.status).toBe(202);
        rolloverId = renewed.body.id;
      }
      if (day === GATE_OPENS_DAY) {
        const pending = (
          await query<{ certificate: Buffer }>(
            t.database.url,
            `SELECT certificate FROM ca_generations WHERE name = 'sim-root-g2'`,
          )
        )[0];
        gate.acknowledged.add(
          Buffer.from(await new x509.X509Certificate(pending.certificate).getThumbprint('SHA-256')).toString('hex'),
        );
      }
      await scheduler.tick(now);
      // Everything this tick committed has reached the signing cache before anything signs.
      await sync.flush();

      const active: Array<{ name: string; active: number }> = await dataSource.query(
        `SELECT k.name, count(v.id)::int AS active FROM signing_keys k LEFT JOIN key_versions v ON v.key_id = k.id AND v.state = 'active' WHERE k.name LIKE 'sim-%' GROUP BY k.name`,
      );
      for (const row of active)
        if (row.active !== 1) problems.push(`${now.toISOString()}: ${row.name} has ${row.active} active versions`);
      for (const key of KEYS) {
        const signed = await signWith(t.app, t.adminToken, key.name, key.keySpec, now);
        if (!signatureVerifies(signed))
          problems.push(`${now.toISOString()}: ${key.name} v${signed.version} signature does not verify`);
        const invalid = await chainValidAt(signed.chain, now);
        if (invalid) problems.push(`${now.toISOString()}: ${key.name} v${signed.version}: ${invalid}`);
        signatures.push(signed);
      }
      if (day === ROOT_ROLLOVER_DAY + 2) {
        // During the gate the new hierarchy issues nothing: every chain still ends at the old root.
        const view = (await api('GET', `/v1/rotations/${rolloverId}`)).body;
        expect(view).toMatchObject({ state: 'running', step: 'distribution-gate' });
      }
    }
    expect(problems).toEqual([]);

    // The rotations: every key on each occurrence of its schedule, none failed, none twice.
    const rotations = await query<{
      subject: string;
      kind: string;
      trigger: string;
      state: string;
      due_at: Date | null;
    }>(t.database.url, `SELECT subject, kind, trigger, state, due_at FROM rotations ORDER BY started_at`);
    expect(rotations.filter((r) => r.state === 'failed')).toEqual([]);
    for (const key of KEYS) {
      const expected: number[] = [];
      for (
        let at = nextOccurrence(key.schedule, start);
        at.getTime() <= lastTick.getTime();
        at = nextOccurrence(key.schedule, at)
      )
        expected.push(at.getTime());
      const got = rotations.filter((r) => r.subject === key.name).map((r) => r.due_at!.getTime());
      expect({ key: key.name, due: got }).toEqual({ key: key.name, due: expected });
      expect(new Set(signatures.filter((s) => s.key === key.name).map((s) => s.version)).size).toBe(
        expected.length + 1,
      );
    }
    const quarterly = rotations.filter((r) => r.subject === 'sim-ec256').length;
    expect(quarterly).toBeGreaterThanOrEqual(8);
    const caRotations = rotations.filter((r) => r.kind === 'ca').map((r) => [r.subject, r.trigger, r.state]);
    expect(caRotations).toEqual([
      ['sim-issuing', 'ca-lifetime', 'completed'],
      ['sim-root', 'manual', 'completed'],
      // The dev TSA's certificate (460 days) renewed itself 30 days before it expired.
      ['signet-dev-tsa', 'ca-lifetime', 'completed'],
      ['sim-issuing', 'ca-lifetime', 'completed'],
    ]);
    const generations = await query<{ name: string; state: string; parent: string | null }>(
      t.database.url,
      `SELECT g.name, g.state, p.name AS parent FROM ca_generations g JOIN cas c ON c.id = g.ca_id LEFT JOIN ca_generations p ON p.id = g.parent_generation_id WHERE c.name LIKE 'sim-%' ORDER BY g.name`,
    );
    expect(generations).toEqual([
      { name: 'sim-issuing-g1', state: 'retired', parent: 'sim-root-g1' },
      { name: 'sim-issuing-g2', state: 'retired', parent: 'sim-root-g1' },
      { name: 'sim-issuing-g3', state: 'retired', parent: 'sim-root-g2' },
      { name: 'sim-issuing-g4', state: 'active', parent: 'sim-root-g2' },
      { name: 'sim-root-g1', state: 'retired', parent: null },
      { name: 'sim-root-g2', state: 'active', parent: null },
    ]);

    // Which root each signature chained to, and when: the old one until the gate opened, the new one after.
    const roots = await query<{ name: string; certificate: Buffer }>(
      t.database.url,
      `SELECT name, certificate FROM ca_generations WHERE name LIKE 'sim-root-%'`,
    );
    const rootOf = (s: SignatureRecord) => roots.find((r) => r.certificate.equals(s.chain[s.chain.length - 1]))?.name;
    const gateOpened = firstTick.getTime() + GATE_OPENS_DAY * DAY;
    expect(signatures.filter((s) => s.at.getTime() < gateOpened && rootOf(s) !== 'sim-root-g1')).toEqual([]);
    expect(signatures.filter((s) => rootOf(s) === undefined)).toEqual([]);
    expect(signatures.some((s) => rootOf(s) === 'sim-root-g2')).toBe(true);

    // OpenSSL, at the time each distinct chain first signed: strict verification up to its root.
    const dir = tempDir('two-years-');
    const seen = new Set<string>();
    let checked = 0;
    for (const signed of signatures) {
      const id = signed.chain[0].toString('base64');
      if (seen.has(id)) continue;
      seen.add(id);
      writePem(dir, 'leaf.pem', signed.chain[0]);
      writePem(dir, 'issuing.pem', signed.chain[1]);
      writePem(dir, 'root.pem', signed.chain[2]);
      const verified = openssl(
        [
          'verify',
          '-x509_strict',
          '-attime',
          String(Math.floor(signed.at.getTime() / 1000)),
          '-CAfile',
          'root.pem',
          '-untrusted',
          'issuing.pem',
          'leaf.pem',
        ],
        dir,
      );
      if (!verified.out.includes('leaf.pem: OK'))
        problems.push(`${signed.key} v${signed.version} at ${signed.at.toISOString()}: ${verified.out}`);
      checked++;
    }
    expect(problems).toEqual([]);
    expect(checked).toBe(
      KEYS.reduce((n, key) => n + new Set(signatures.filter((s) => s.key === key.name).map((s) => s.version)).size, 0),
    );

    // Old private keys were destroyed after retention; the HSM holds exactly what the database references.
    const states = await query<{ state: string; n: number }>(
      t.database.url,
      `SELECT v.state, count(*)::int AS n FROM key_versions v JOIN signing_keys k ON k.id = v.key_id WHERE k.name LIKE 'sim-%' GROUP BY v.state`,
    );
    const byState = Object.fromEntries(states.map((s) => [s.state, s.n]));
    expect(byState.active).toBe(KEYS.length);
    expect(byState.destroyed).toBeGreaterThanOrEqual(
      rotations.filter((r) => r.kind === 'key').length - 2 * KEYS.length,
    );
    const report = await reconcileHsm(dataSource, t.app.get<KeyStore>(KEY_STORE));
    expect(report.orphanObjects).toEqual([]);
    expect(report.missingObjects).toEqual([]);
    const errors = await query(
      t.database.url,
      `SELECT subject, s->>'name' AS step, s->>'attempts' AS attempts, coalesce(s->>'error', s->'detail'->>'lastError') AS error, s->>'startedAt' AS "startedAt" FROM rotations r, jsonb_array_elements(r.steps) s WHERE s->>'error' IS NOT NULL OR s->'detail' ? 'lastError'`,
    );
    expect(errors).toEqual([]);
    fs.rmSync(path.join(dir), { recursive: true, force: true });
    // Two simulated years take ~1.5 min on an idle 2-core box; bounded generously for a busy one.
  }, 900_000);
});

/**
 * Waits until every key-change notification committed so far has been delivered to this process's
 * listeners (the signing cache among them): PostgreSQL delivers notifications in commit order, so a
 * marker sent afterwards arrives last.
 */
class NotificationSync {
  private seen = new Set<string>();
  private waiting = new Map<string, () => void>();
  private counter = 0;

  constructor(
    notifier: ChangeNotifier,
    private readonly dataSource: DataSource,
  ) {
    notifier.on(KEYS_CHANNEL, (payload) => {
      this.seen.add(payload);
      this.waiting.get(payload)?.();
    });
  }

  async flush(): Promise<void> {
    const marker = `__test_sync_${++this.counter}`;
    const arrived = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`notification ${marker} never arrived`)), 10_000);
      this.waiting.set(marker, () => {
        clearTimeout(timer);
        resolve();
      });
      if (this.seen.has(marker)) resolve();
    });
    await this.dataSource.query('SELECT pg_notify($1, $2)', [KEYS_CHANNEL, marker]);
    await arrived;
    this.waiting.delete(marker);
  }
}
