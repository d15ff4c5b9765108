import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { query } from '../support/database';
import { KEY_STORE, KeyStore } from '../../src/hsm/key-store';
import { reconcileHsm } from '../../src/rotation/hsm-objects';
import { nextOccurrence } from '../../src/keys/rotation-schedule';
import { RotationRunner } from '../../src/rotation/rotation.runner';
import { RotationScheduler } from '../../src/rotation/rotation.scheduler';
import { RotationService } from '../../src/rotation/rotation.service';
import { RotationStatusService } from '../../src/rotation/rotation-status.service';
import { DataSource } from 'typeorm';
import { COMMANDS } from '../../src/cli/commands';
import { DAY, http, keyChangeAnnounced, signatureVerifies, signWith, SUBJECT } from './rotation-helpers';
import { RotationTestApp, startRotationTestApp, TestClock } from './rotation-test-app';

const HOUR = 3_600_000;
const statusCommand = COMMANDS.find((c) => c.name === 'status')!;

/**
 * A signing key's rotation on the whole application (SoftHSM2 + PostgreSQL), driven by a test
 * clock and explicit scheduler ticks: the quarterly schedule, each persisted step, the overlap and
 * retention, the API, revocation's emergency rotation, and the expiry metrics and status lines.
 */
describe('signing-key rotation', () => {
  let t: RotationTestApp;
  let api: ReturnType<typeof http>;
  let scheduler: RotationScheduler;
  let officer: string;
  let auditor: string;
  const start = new Date();

  beforeAll(async () => {
    t = await startRotationTestApp({ clock: new TestClock(start) });
    api = http(t.app, t.adminToken);
    scheduler = t.app.get(RotationScheduler);
    officer = (await api('POST', '/v1/tokens', { name: 'officer', role: 'security-officer' })).body.token;
    auditor = (await api('POST', '/v1/tokens', { name: 'auditor', role: 'auditor' })).body.token;
  });
  afterAll(() => t.close());

  async function versions(key: string): Promise<Array<{ version: number; state: string }>> {
    return (await api('GET', `/v1/keys/${key}`)).body.versions.map((v: { version: number; state: string }) => ({
      version: v.version,
      state: v.state,
    }));
  }

  async function tickAt(at: Date) {
    t.clock.set(at);
    return scheduler.tick(at);
  }

  it('rotates on the quarterly schedule: new HSM key and certificate, one swap, the old version retiring; then retired after the overlap and destroyed after retention (within the quarter)', async () => {
    const created = await api('POST', '/v1/keys', {
      name: 'release',
      keySpec: 'EC-256',
      subject: { ...SUBJECT, CN: 'release' },
      rotation: { overlapDays: 14, retentionDays: 30 },
    });
    expect(created.status).toBe(201);
    expect(created.body.rotation).toEqual({ schedule: 'quarterly', overlapDays: 14, retentionDays: 30 });

    expect((await tickAt(start)).started).toEqual([]);
    const quarter = nextOccurrence('quarterly', start);
    expect([0, 3, 6, 9]).toContain(quarter.getUTCMonth());
    expect(quarter.getUTCDate()).toBe(1);
    expect(quarter.getUTCHours()).toBe(0);
    // Just before the quarter nothing happens; just after, one rotation runs to activation.
    expect((await tickAt(new Date(quarter.getTime() - 1000))).started).toEqual([]);
    const after = new Date(quarter.getTime() + HOUR);
    const announced = keyChangeAnnounced(t.app, 'release');
    const tick = await tickAt(after);
    expect(tick.started).toEqual([expect.objectContaining({ subject: 'release', trigger: 'schedule' })]);
    await announced;
    expect(await versions('release')).toEqual([
      { version: 1, state: 'retiring' },
      { version: 2, state: 'active' },
    ]);
    const signed = await signWith(t.app, t.adminToken, 'release', 'EC-256', after);
    expect(signed.version).toBe(2);
    expect(signatureVerifies(signed)).toBe(true);

    const list = await api('GET', '/v1/rotations?key=release');
    expect(list.status).toBe(200);
    expect(list.body.rotations).toHaveLength(1);
    const rotation = list.body.rotations[0];
    expect(rotation).toMatchObject({
      kind: 'key',
      subject: 'release',
      trigger: 'schedule',
      state: 'activated',
      step: 'retire',
      from: 'v1',
      to: 'v2',
      dueAt: quarter.toISOString(),
    });
    expect(rotation.steps.map((s: { name: string; state: string }) => [s.name, s.state])).toEqual([
      ['create-key', 'done'],
      ['issue-certificate', 'done'],
      ['activate', 'done'],
      ['retire', 'waiting'],
      ['destroy', 'pending'],
    ]);
    expect(rotation.steps[0]).toMatchObject({
      startedAt: after.toISOString(),
      finishedAt: after.toISOString(),
      attempts: 1,
      error: null,
    });
    expect(rotation.steps[3].waitingUntil).toBe(new Date(after.getTime() + 14 * DAY).toISOString());
    // The HSM object carries the CKA_ID the rotation planned (its id), so a restart would find it.
    expect(rotation.steps[0].detail.keyUri).toContain(`id=%${rotation.id.replace(/-/g, '').match(/../g)!.join('%')}`);

    // Ticking again at the same instant changes nothing.
    expect((await tickAt(after)).started).toEqual([]);
    expect((await api('GET', '/v1/rotations?key=release')).body.rotations).toHaveLength(1);

    await tickAt(new Date(after.getTime() + 14 * DAY - 1000));
    expect(await versions('release')).toEqual([
      { version: 1, state: 'retiring' },
      { version: 2, state: 'active' },
    ]);
    await tickAt(new Date(after.getTime() + 14 * DAY));
    expect(await versions('release')).toEqual([
      { version: 1, state: 'retired' },
      { version: 2, state: 'active' },
    ]);
    const [v1] = await query<{ key_uri: string; retired_at: Date }>(
      t.database.url,
      `SELECT v.key_uri, v.retired_at FROM key_versions v JOIN signing_keys k ON k.id = v.key_id WHERE k.name = 'release' AND v.version = 1`,
    );
    const keyStore = t.app.get<KeyStore>(KEY_STORE);
    expect(await keyStore.describeKey(v1.key_uri)).toMatchObject({ spec: 'EC-256' });

    await tickAt(new Date(v1.retired_at.getTime() + 30 * DAY - 1000));
    expect((await api('GET', `/v1/rotations/${rotation.id}`)).body).toMatchObject({
      state: 'activated',
      step: 'destroy',
    });
    await tickAt(new Date(v1.retired_at.getTime() + 30 * DAY));
    const done = (await api('GET', `/v1/rotations/${rotation.id}`)).body;
    expect(done).toMatchObject({ state: 'completed', step: null, nextRunAt: null });
    expect(done.steps.every((s: { state: string }) => s.state === 'done')).toBe(true);
    expect(await versions('release')).toEqual([
      { version: 1, state: 'destroyed' },
      { version: 2, state: 'active' },
    ]);
    await expect(keyStore.describeKey(v1.key_uri)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    // The old certificate and chain stay retrievable; retiring never revoked it.
    const chain = await t.app.inject({
      method: 'GET',
      url: '/v1/keys/release/certificate-chain?version=1',
      headers: { authorization: `Bearer ${t.adminToken}` },
    });
    expect(chain.statusCode).toBe(200);
    expect(chain.body.match(/BEGIN CERTIFICATE/g)).toHaveLength(3);
    const certificates = (await api('GET', '/v1/certificates?key=release')).body.certificates;
    expect(certificates.map((c: { status: string }) => c.status)).toEqual(['good', 'good']);
    const report = await reconcileHsm(t.app.get(DataSource), keyStore);
    expect(report.orphanObjects).toEqual([]);
    expect(report.missingObjects).toEqual([]);

    // Every step is in the audit log once.
    const audited = await query<{ step: string; outcome: string }>(
      t.database.url,
      `SELECT data->>'step' AS step, data->>'outcome' AS outcome FROM audit_events WHERE type = 'rotation.step' AND data->>'rotationId' = $1 ORDER BY seq`,
      [rotation.id],
    );
    expect(audited).toEqual(
      ['create-key', 'issue-certificate', 'activate', 'retire', 'destroy'].map((step) => ({ step, outcome: 'done' })),
    );
  });

  it('the database allows no second active version of a key', async () => {
    await expect(
      query(
        t.database.url,
        `UPDATE key_versions SET state = 'active' WHERE version = 1 AND key_id = (SELECT id FROM signing_keys WHERE name = 'release')`,
      ),
    ).rejects.toThrow(/key_versions_one_active/);
  });

  it('POST /v1/keys/{name}/rotate starts a rotation now (202, idempotent while it runs) for admin and security-officer only', async () => {
    await api('POST', '/v1/keys', { name: 'staging', keySpec: 'EC-384', subject: { ...SUBJECT, CN: 'staging' } });
    const denied = await http(t.app, auditor)('POST', '/v1/keys/staging/rotate', {});
    expect(denied.status).toBe(403);
    expect((await http(t.app, officer)('POST', '/v1/keys/nope/rotate', {})).status).toBe(404);
    // Wait for the background pass the request kicks, so the test observes a settled state.
    const first = await http(t.app, officer)('POST', '/v1/keys/staging/rotate', {
      reason: 'suspected leak of a CI runner',
    });
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({
      kind: 'key',
      subject: 'staging',
      trigger: 'manual',
      state: 'running',
      step: 'create-key',
      from: 'v1',
      to: 'v2',
      reason: 'suspected leak of a CI runner',
    });
    await scheduler.tick(t.clock.now());
    const settled = (await http(t.app, auditor)('GET', `/v1/rotations/${first.body.id}`)).body;
    expect(settled).toMatchObject({ state: 'activated', step: 'retire' });
    expect(await versions('staging')).toEqual([
      { version: 1, state: 'retiring' },
      { version: 2, state: 'active' },
    ]);
    // Once activated a new request starts a new rotation (v3); asked again while it runs, the same one.
    const rotations = t.app.get(RotationService);
    const second = await rotations.requestKeyRotation('staging');
    const again = await rotations.requestKeyRotation('staging');
    expect(second).toMatchObject({
      created: true,
      rotation: { id: expect.not.stringMatching(first.body.id), to: 'v3' },
    });
    expect(again).toMatchObject({ created: false, rotation: { id: second.rotation.id } });
    await scheduler.tick(t.clock.now());
    expect((await versions('staging')).filter((v) => v.state === 'active')).toEqual([{ version: 3, state: 'active' }]);
    const [{ actor }] = await query<{ actor: { tokenName: string } }>(
      t.database.url,
      `SELECT actor FROM audit_events WHERE type = 'rotation.started' AND data->>'rotationId' = $1`,
      [first.body.id],
    );
    expect(actor.tokenName).toBe('officer');
  });

  it('revoking the active version starts an emergency rotation: signing continues on a new version within one tick, and the revoked version never signs again', async () => {
    // Revocation is stamped with the real time: run this one on it.
    t.clock.set(new Date());
    await api('POST', '/v1/keys', { name: 'prod', keySpec: 'EC-256', subject: { ...SUBJECT, CN: 'prod' } });
    const before = await signWith(t.app, t.adminToken, 'prod', 'EC-256', t.clock.now());
    expect(before.version).toBe(1);
    const serial = new x509.X509Certificate(before.chain[0]).serialNumber;
    const revoked = await api('POST', `/v1/certificates/${serial}/revoke`, { reason: 'keyCompromise' });
    expect(revoked.status).toBe(200);
    // At once: the revoked version no longer signs (nothing else is active yet, or already the new one).
    const right = await t.app.inject({
      method: 'POST',
      url: '/v1/keys/prod/sign',
      payload: { payload: Buffer.from('x').toString('base64'), hashAlgorithm: 'SHA-256' },
      headers: { authorization: `Bearer ${t.adminToken}` },
    });
    if (right.statusCode === 200) expect(JSON.parse(right.body).keyVersion).not.toBe(1);
    else expect(JSON.parse(right.body).error.code).toBe('NO_ACTIVE_VERSION');

    await scheduler.tick(t.clock.now());
    const rotations = (await api('GET', '/v1/rotations?key=prod')).body.rotations;
    expect(rotations).toHaveLength(1);
    expect(rotations[0]).toMatchObject({ trigger: 'revocation', from: 'v1', to: 'v2', state: 'activated' });
    // The previous version was revoked, not active: nothing to retire; its key is destroyed after retention.
    expect(rotations[0].steps.find((s: { name: string }) => s.name === 'retire')).toMatchObject({ state: 'skipped' });
    for (let i = 0; i < 5; i++) {
      const after = await signWith(t.app, t.adminToken, 'prod', 'EC-256', t.clock.now());
      expect(after.version).toBe(2);
      expect(signatureVerifies(after)).toBe(true);
    }
    expect(await versions('prod')).toEqual([
      { version: 1, state: 'revoked' },
      { version: 2, state: 'active' },
    ]);
    // The audit log agrees: every signature of 'prod' after the revocation came from version 2.
    const signedBy = await query<{ version: number }>(
      t.database.url,
      `SELECT DISTINCT (data->>'version')::int AS version FROM audit_events WHERE type = 'sign' AND subject = 'prod' AND seq > (SELECT max(seq) FROM audit_events WHERE type = 'certificate.revoked')`,
    );
    expect(signedBy.map((r) => r.version)).toEqual([2]);
  });

  it('reports expiry, overdue rotations and CRL freshness as Prometheus metrics and signet status lines', async () => {
    const status = t.app.get(RotationStatusService);
    expect((await t.app.inject({ method: 'GET', url: '/pki/signet-dev-issuing-g1.crl' })).statusCode).toBe(200);
    const now = new Date();
    t.clock.set(now);
    const lines = await status.statusLines(now);
    expect(lines[0]).toMatch(
      /^rotation: \d+ running, \d+ waiting to retire\/destroy, 0 overdue, 0 key\(s\) without an active version$/,
    );
    expect(
      lines.some((l) =>
        /^expiry: CA generation signet-dev-issuing-g1 \(issuing, active\) expires in \d+ day\(s\)/.test(l),
      ),
    ).toBe(true);
    expect(lines.some((l) => /^expiry: key release v\d+ certificate expires in \d+ day\(s\)/.test(l))).toBe(true);
    expect(lines.some((l) => l.startsWith('crl: signet-dev-issuing-g1 '))).toBe(true);

    const metrics = async () =>
      (await t.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${t.adminToken}` } }))
        .body;
    let text = await metrics();
    expect(text).toMatch(
      /signet_ca_generation_expiry_days\{ca="signet-dev-issuing",generation="signet-dev-issuing-g1",state="active",service="signet"\} \d+/,
    );
    expect(text).toMatch(/signet_key_certificate_expiry_days\{key="release",version="\d+",service="signet"\} \d+/);
    expect(text).toMatch(/signet_rotations_overdue\{service="signet"\} 0/);
    expect(text).toMatch(
      /signet_rotation_steps_total\{kind="key",step="activate",outcome="done",service="signet"\} [1-9]/,
    );
    expect(text).toMatch(/signet_crl_next_update_seconds\{generation="signet-dev-issuing-g1",service="signet"\}/);

    // `signet status` prints them (the CLI registers the rotation lines).
    const printed: string[] = [];
    await statusCommand.run!(
      { app: t.app, config: t.config, ownerDatabaseUrl: t.database.ownerUrl, out: (line) => printed.push(line) },
      { values: {}, positionals: [] },
    );
    process.exitCode = undefined;
    expect(printed).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^rotation: \d+ running/),
        expect.stringMatching(/^expiry: key release v\d+ certificate expires in/),
      ]),
    );

    // The next quarter after every key's activation passes without a tick for two days: all three are overdue.
    const [{ latest }] = await query<{ latest: Date }>(
      t.database.url,
      `SELECT max(activated_at) AS latest FROM key_versions WHERE state = 'active'`,
    );
    const late = new Date(nextOccurrence('quarterly', latest).getTime() + 2 * DAY);
    t.clock.set(late);
    const overdue = await status.statusLines(late);
    expect(overdue[0]).toMatch(/ 3 overdue,/);
    expect(overdue.filter((l) => l.startsWith('rotation OVERDUE: key '))).toHaveLength(3);
    text = await metrics();
    expect(text).toMatch(/signet_rotations_overdue\{service="signet"\} 3/);
    await scheduler.tick(late);
    expect((await status.report(late)).overdue).toEqual([]);
  });
  it('a scheduled rotation whose new version is revoked before activation fails and destroys that key pair; the next tick answers the same occurrence again', async () => {
    t.clock.set(new Date());
    await api('POST', '/v1/keys', { name: 'fragile', keySpec: 'EC-256', subject: { ...SUBJECT, CN: 'fragile' } });
    const due = new Date(nextOccurrence('quarterly', new Date()).getTime() + HOUR);
    t.clock.set(due);
    const [rotation] = (await t.app.get(RotationService).enqueueDue(due)).filter((r) => r.subject === 'fragile');
    const runner = t.app.get(RotationRunner);
    // Stop after the certificate is issued, and revoke it before it is activated.
    expect(await runner.serial(() => runner.runRotation(rotation.id, due, 2))).toBe(2);
    const [v2] = await query<{ serial: string; key_uri: string }>(
      t.database.url,
      `SELECT v.serial, v.key_uri FROM key_versions v JOIN signing_keys k ON k.id = v.key_id WHERE k.name = 'fragile' AND v.version = 2`,
    );
    expect((await api('POST', `/v1/certificates/${v2.serial}/revoke`, { reason: 'keyCompromise' })).status).toBe(200);
    await scheduler.tick(due);
    const failed = (await api('GET', `/v1/rotations/${rotation.id}`)).body;
    expect(failed).toMatchObject({ state: 'failed', step: null });
    expect(failed.steps[2]).toMatchObject({
      name: 'activate',
      state: 'failed',
      error: 'version 2 is revoked; it cannot be activated',
      detail: { abandonedVersion: 2, destroyedKeyUri: v2.key_uri },
    });
    await expect(t.app.get<KeyStore>(KEY_STORE).describeKey(v2.key_uri)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await versions('fragile')).toEqual([
      { version: 1, state: 'active' },
      { version: 2, state: 'revoked' },
    ]);

    const retry = await scheduler.tick(new Date(due.getTime() + 60_000));
    expect(retry.started).toEqual([expect.objectContaining({ subject: 'fragile', trigger: 'schedule' })]);
    expect(await versions('fragile')).toEqual([
      { version: 1, state: 'retiring' },
      { version: 2, state: 'revoked' },
      { version: 3, state: 'active' },
    ]);
    const all = (await api('GET', '/v1/rotations?key=fragile')).body.rotations;
    expect(all.map((r: { state: string; to: string; dueAt: string }) => [r.state, r.to, r.dueAt])).toEqual([
      ['activated', 'v3', failed.dueAt],
      ['failed', 'v2', failed.dueAt],
    ]);
    const report = await reconcileHsm(t.app.get(DataSource), t.app.get<KeyStore>(KEY_STORE));
    expect(report).toEqual({ orphanObjects: [], missingObjects: [], plannedObjects: [] });
  });
});
