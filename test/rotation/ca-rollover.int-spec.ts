import 'reflect-metadata';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as x509 from '@peculiar/x509';
import { DEV_ISSUING_CA, DEV_ROOT_CA } from '../../src/ca/dev-hierarchy.bootstrap';
import { CrlService } from '../../src/revocation/crl.service';
import { DataSource } from 'typeorm';
import { KEY_STORE, KeyStore } from '../../src/hsm/key-store';
import { reconcileHsm } from '../../src/rotation/hsm-objects';
import { RotationScheduler } from '../../src/rotation/rotation.scheduler';
import { RotationService } from '../../src/rotation/rotation.service';
import { CaRolloverPlan } from '../../src/rotation/rotation-steps';
import { query } from '../support/database';
import { tempDir } from '../support/server-process';
import { http, openssl, signatureVerifies, signWith, SUBJECT, writePem } from './rotation-helpers';
import { GateDouble, RotationTestApp, startRotationTestApp, TestClock } from './rotation-test-app';

const HOUR = 3_600_000;

/**
 * CA rollovers on the whole application, checked from outside with OpenSSL: an issuing CA's new
 * key generation takes over issuing while the old one keeps answering OCSP and serving its CRL at
 * the URLs in its leaves; a root rollover waits at the distribution gate (a double of the
 * distribution module's port) and raises an alert when a required target never acknowledges.
 */
describe('CA rollover', () => {
  let t: RotationTestApp;
  let api: ReturnType<typeof http>;
  let scheduler: RotationScheduler;
  let dir: string;
  const gate = new GateDouble();

  beforeAll(async () => {
    t = await startRotationTestApp({ clock: new TestClock(new Date()), gate });
    api = http(t.app, t.adminToken);
    scheduler = t.app.get(RotationScheduler);
    dir = tempDir('rollover-');
  });
  afterAll(() => t.close());

  const generations = async (ca: string) =>
    (await api('GET', `/v1/cas/${ca}`)).body.generations as Array<{
      name: string;
      state: string;
      certificate: string | null;
      urls: { ocsp: string; crl: string };
    }>;
  const tick = () => scheduler.tick(t.clock.now());

  async function ocspStatus(issuerPem: string, leafPem: string, responderGeneration: string): Promise<string> {
    const req = path.join(dir, `req-${Math.random()}.der`);
    expect(openssl(['ocsp', '-issuer', issuerPem, '-cert', leafPem, '-no_nonce', '-reqout', req], dir).ok).toBe(true);
    const response = await t.app.inject({
      method: 'POST',
      url: `/ocsp/${responderGeneration}`,
      headers: { 'content-type': 'application/ocsp-request' },
      payload: fs.readFileSync(req),
    });
    expect(response.statusCode).toBe(200);
    fs.writeFileSync(`${req}.resp`, response.rawPayload);
    // -verify_other + -CAfile: the response must be signed by the generation that issued the leaf.
    const checked = openssl(
      [
        'ocsp',
        '-respin',
        `${req}.resp`,
        '-CAfile',
        'root-g1.pem',
        '-verify_other',
        issuerPem,
        '-issuer',
        issuerPem,
        '-cert',
        leafPem,
        '-no_nonce',
        '-resp_text',
      ],
      dir,
    );
    expect(checked.out).toContain('Response verify OK');
    return checked.out;
  }

  it('renews an issuing CA: g2 issues new leaves; OCSP and the CRL of a g1 leaf still answer at the URLs in that leaf, signed by g1 (OpenSSL)', async () => {
    const officer = (await api('POST', '/v1/tokens', { name: 'officer', role: 'security-officer' })).body.token;
    const [root] = await generations(DEV_ROOT_CA);
    const [g1] = await generations(DEV_ISSUING_CA);
    fs.writeFileSync(path.join(dir, 'root-g1.pem'), root.certificate!);
    fs.writeFileSync(path.join(dir, 'issuing-g1.pem'), g1.certificate!);
    await api('POST', '/v1/keys', { name: 'old-leaf', keySpec: 'EC-256', subject: { ...SUBJECT, CN: 'old-leaf' } });
    const oldSignature = await signWith(t.app, t.adminToken, 'old-leaf', 'EC-256', t.clock.now());
    writePem(dir, 'old-leaf.pem', oldSignature.chain[0]);

    expect((await http(t.app, officer)('POST', `/v1/cas/${DEV_ISSUING_CA}/renew`, {})).status).toBe(403);
    const renewed = await api('POST', `/v1/cas/${DEV_ISSUING_CA}/renew`, { reason: 'yearly renewal' });
    expect(renewed.status).toBe(202);
    expect(renewed.body).toMatchObject({
      kind: 'ca',
      subject: DEV_ISSUING_CA,
      trigger: 'manual',
      from: `${DEV_ISSUING_CA}-g1`,
      to: `${DEV_ISSUING_CA}-g2`,
    });
    await tick();
    expect((await api('GET', `/v1/rotations/${renewed.body.id}`)).body).toMatchObject({ state: 'completed' });
    const after = await generations(DEV_ISSUING_CA);
    expect(after.map((g) => [g.name, g.state])).toEqual([
      [`${DEV_ISSUING_CA}-g1`, 'retired'],
      [`${DEV_ISSUING_CA}-g2`, 'active'],
    ]);
    expect(after[1].urls.ocsp).toBe(`http://signet.test:8080/ocsp/${DEV_ISSUING_CA}-g2`);
    fs.writeFileSync(path.join(dir, 'issuing-g2.pem'), after[1].certificate!);

    // Leaves issued afterwards chain to g2, under the same root.
    await api('POST', '/v1/keys', { name: 'new-leaf', keySpec: 'EC-256', subject: { ...SUBJECT, CN: 'new-leaf' } });
    const newSignature = await signWith(t.app, t.adminToken, 'new-leaf', 'EC-256', t.clock.now());
    expect(signatureVerifies(newSignature)).toBe(true);
    writePem(dir, 'new-leaf.pem', newSignature.chain[0]);
    expect(
      openssl(['verify', '-x509_strict', '-CAfile', 'root-g1.pem', '-untrusted', 'issuing-g2.pem', 'new-leaf.pem'], dir)
        .out,
    ).toContain('new-leaf.pem: OK');
    expect(openssl(['x509', '-in', 'new-leaf.pem', '-noout', '-ocsp_uri'], dir).out.trim()).toBe(
      `http://signet.test:8080/ocsp/${DEV_ISSUING_CA}-g2`,
    );
    // The old key still signs with its g1 leaf, which still verifies.
    const stillOld = await signWith(t.app, t.adminToken, 'old-leaf', 'EC-256', t.clock.now());
    expect(Buffer.compare(stillOld.chain[1], oldSignature.chain[1])).toBe(0);
    expect(
      openssl(['verify', '-x509_strict', '-CAfile', 'root-g1.pem', '-untrusted', 'issuing-g1.pem', 'old-leaf.pem'], dir)
        .out,
    ).toContain('old-leaf.pem: OK');

    // The g1 leaf's own URLs: OCSP and CRL answered by g1 (its key signs them, OpenSSL checks).
    const ocspUrl = openssl(['x509', '-in', 'old-leaf.pem', '-noout', '-ocsp_uri'], dir).out.trim();
    expect(ocspUrl).toBe(`http://signet.test:8080/ocsp/${DEV_ISSUING_CA}-g1`);
    expect(await ocspStatus('issuing-g1.pem', 'old-leaf.pem', `${DEV_ISSUING_CA}-g1`)).toMatch(/old-leaf.pem: good/);
    const serial = new x509.X509Certificate(oldSignature.chain[0]).serialNumber;
    expect((await api('POST', `/v1/certificates/${serial}/revoke`, { reason: 'keyCompromise' })).status).toBe(200);
    await t.app
      .get(CrlService)
      .rebuild(
        (
          await query<{ id: string }>(t.database.url, `SELECT id FROM ca_generations WHERE name = $1`, [
            `${DEV_ISSUING_CA}-g1`,
          ])
        )[0].id,
      );
    expect(await ocspStatus('issuing-g1.pem', 'old-leaf.pem', `${DEV_ISSUING_CA}-g1`)).toMatch(/old-leaf.pem: revoked/);
    const crlText = openssl(['x509', '-in', 'old-leaf.pem', '-noout', '-text'], dir).out;
    expect(crlText).toContain(`URI:http://signet.test:8080/pki/${DEV_ISSUING_CA}-g1.crl`);
    const crl = await t.app.inject({ method: 'GET', url: `/pki/${DEV_ISSUING_CA}-g1.crl` });
    expect(crl.statusCode).toBe(200);
    fs.writeFileSync(path.join(dir, 'g1.crl'), crl.rawPayload);
    expect(openssl(['crl', '-inform', 'DER', '-in', 'g1.crl', '-out', 'g1.crl.pem'], dir).ok).toBe(true);
    expect(openssl(['crl', '-in', 'g1.crl.pem', '-noout', '-CAfile', 'issuing-g1.pem'], dir).out).toContain(
      'verify OK',
    );
    const revoked = openssl(
      [
        'verify',
        '-crl_check',
        '-CRLfile',
        'g1.crl.pem',
        '-CAfile',
        'root-g1.pem',
        '-untrusted',
        'issuing-g1.pem',
        'old-leaf.pem',
      ],
      dir,
    );
    expect(revoked.out).toContain('certificate revoked');
    // g2 neither signs g1's CRL nor knows g1's leaves.
    expect(openssl(['crl', '-in', 'g1.crl.pem', '-noout', '-CAfile', 'issuing-g2.pem'], dir).out).not.toContain(
      'verify OK',
    );
    // Revoking the old key's active version started its emergency rotation: the new version chains to g2.
    await tick();
    const rotatedOld = await signWith(t.app, t.adminToken, 'old-leaf', 'EC-256', t.clock.now());
    expect(rotatedOld.version).toBe(2);
    expect(
      Buffer.compare(rotatedOld.chain[1], Buffer.from(new x509.X509Certificate(after[1].certificate!).rawData)),
    ).toBe(0);
  });

  let rollover: { id: string };

  it('root rollover: the new root and its issuing generation wait at the distribution gate; a required target that never acknowledges leaves the old hierarchy in use and raises an alert (log, metric, audit)', async () => {
    const [rootG1] = await generations(DEV_ROOT_CA);
    const started = await api('POST', `/v1/cas/${DEV_ROOT_CA}/renew`, {});
    expect(started.status).toBe(202);
    rollover = started.body;
    expect(started.body).toMatchObject({ subject: DEV_ROOT_CA, from: `${DEV_ROOT_CA}-g1`, to: `${DEV_ROOT_CA}-g2` });
    await tick();
    let view = (await api('GET', `/v1/rotations/${rollover.id}`)).body;
    expect(view.steps.map((s: { name: string; state: string }) => [s.name, s.state])).toEqual([
      ['create-key', 'done'],
      ['issue-certificate', 'done'],
      ['issue-subordinates', 'done'],
      ['distribution-gate', 'waiting'],
      ['activate', 'pending'],
    ]);
    expect(view.steps[3].waitingFor).toMatch(/eu\/harbor/);
    expect(view.alert).toBeNull();
    const rootGenerations = await generations(DEV_ROOT_CA);
    expect(rootGenerations.map((g) => [g.name, g.state])).toEqual([
      [`${DEV_ROOT_CA}-g1`, 'active'],
      [`${DEV_ROOT_CA}-g2`, 'pending'],
    ]);
    const issuing = await generations(DEV_ISSUING_CA);
    expect(issuing.map((g) => [g.name, g.state])).toEqual([
      [`${DEV_ISSUING_CA}-g1`, 'retired'],
      [`${DEV_ISSUING_CA}-g2`, 'active'],
      [`${DEV_ISSUING_CA}-g3`, 'pending'],
    ]);
    // The gate was asked about the new root's certificate fingerprint.
    const newRoot = new x509.X509Certificate(rootGenerations[1].certificate!);
    const sha = Buffer.from(await newRoot.getThumbprint('SHA-256')).toString('hex');
    expect(gate.asked).toContain(sha);
    fs.writeFileSync(path.join(dir, 'root-g2.pem'), rootGenerations[1].certificate!);
    fs.writeFileSync(path.join(dir, 'issuing-g3.pem'), issuing[2].certificate!);
    expect(openssl(['verify', '-x509_strict', '-CAfile', 'root-g2.pem', 'issuing-g3.pem'], dir).out).toContain(
      'issuing-g3.pem: OK',
    );

    // Until then, nothing is issued under the new hierarchy.
    await api('POST', '/v1/keys', {
      name: 'during-gate',
      keySpec: 'EC-256',
      subject: { ...SUBJECT, CN: 'during-gate' },
    });
    const during = await signWith(t.app, t.adminToken, 'during-gate', 'EC-256', t.clock.now());
    expect(new x509.X509Certificate(during.chain[2]).subject).toBe(
      new x509.X509Certificate(rootG1.certificate!).subject,
    );
    expect(Buffer.compare(during.chain[2], Buffer.from(new x509.X509Certificate(rootG1.certificate!).rawData))).toBe(0);

    // Past the timeout: an alert, once; the rotation keeps waiting; the old hierarchy stays.
    t.clock.advance(71 * HOUR);
    await tick();
    expect((await api('GET', `/v1/rotations/${rollover.id}`)).body.alert).toBeNull();
    t.clock.advance(2 * HOUR);
    await tick();
    await tick();
    view = (await api('GET', `/v1/rotations/${rollover.id}`)).body;
    expect(view).toMatchObject({ state: 'running', step: 'distribution-gate' });
    expect(view.alert).toMatch(
      /eu\/harbor did not acknowledge the new root signet-dev-root-g2 within 72 h; the old hierarchy stays in use/,
    );
    expect(t.logs.join('')).toMatch(/ALERT root rollover of signet-dev-root/);
    const metrics = (
      await t.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${t.adminToken}` } })
    ).body;
    expect(metrics).toMatch(/signet_rotation_alerts_total\{type="root-distribution-gate",service="signet"\} 1\n/);
    expect(metrics).toMatch(/signet_rotation_alerts_open\{subject="signet-dev-root",service="signet"\} 1/);
    const audited = await query(
      t.database.url,
      `SELECT data FROM audit_events WHERE type = 'rotation.alert' AND data->>'rotationId' = $1`,
      [rollover.id],
    );
    expect(audited).toHaveLength(1);
    await api('POST', '/v1/keys', {
      name: 'after-timeout',
      keySpec: 'EC-256',
      subject: { ...SUBJECT, CN: 'after-timeout' },
    });
    const afterTimeout = await signWith(t.app, t.adminToken, 'after-timeout', 'EC-256', t.clock.now());
    expect(
      Buffer.compare(afterTimeout.chain[2], Buffer.from(new x509.X509Certificate(rootG1.certificate!).rawData)),
    ).toBe(0);
    expect((await generations(DEV_ROOT_CA)).map((g) => g.state)).toEqual(['active', 'pending']);
  });

  it('root rollover: once the required target acknowledges a bundle with the new root, the switch happens; old leaves keep verifying under the old root', async () => {
    const newRoot = new x509.X509Certificate((await generations(DEV_ROOT_CA))[1].certificate!);
    gate.acknowledged.add(Buffer.from(await newRoot.getThumbprint('SHA-256')).toString('hex'));
    // The next scheduler tick (a minute later) sees it.
    t.clock.advance(60_000);
    await tick();
    const view = (await api('GET', `/v1/rotations/${rollover.id}`)).body;
    expect(view).toMatchObject({ state: 'completed', alert: null });
    expect((await generations(DEV_ROOT_CA)).map((g) => g.state)).toEqual(['retired', 'active']);
    expect((await generations(DEV_ISSUING_CA)).map((g) => g.state)).toEqual(['retired', 'retired', 'active']);

    await api('POST', '/v1/keys', {
      name: 'after-switch',
      keySpec: 'EC-256',
      subject: { ...SUBJECT, CN: 'after-switch' },
    });
    const signed = await signWith(t.app, t.adminToken, 'after-switch', 'EC-256', t.clock.now());
    expect(signatureVerifies(signed)).toBe(true);
    writePem(dir, 'after-switch.pem', signed.chain[0]);
    expect(
      openssl(
        ['verify', '-x509_strict', '-CAfile', 'root-g2.pem', '-untrusted', 'issuing-g3.pem', 'after-switch.pem'],
        dir,
      ).out,
    ).toContain('after-switch.pem: OK');
    expect(
      openssl(
        ['verify', '-x509_strict', '-CAfile', 'root-g1.pem', '-untrusted', 'issuing-g3.pem', 'after-switch.pem'],
        dir,
      ).ok,
    ).toBe(false);
    // A key issued before the switch keeps its leaf, valid under the old root that stays trusted.
    const during = await signWith(t.app, t.adminToken, 'during-gate', 'EC-256', t.clock.now());
    writePem(dir, 'during-gate.pem', during.chain[0]);
    writePem(dir, 'during-issuing.pem', during.chain[1]);
    expect(
      openssl(
        ['verify', '-x509_strict', '-CAfile', 'root-g1.pem', '-untrusted', 'during-issuing.pem', 'during-gate.pem'],
        dir,
      ).out,
    ).toContain('during-gate.pem: OK');
  });

  it('an admin may force the gate with an audited reason; nobody else may', async () => {
    const officer = (await api('POST', '/v1/tokens', { name: 'officer-2', role: 'security-officer' })).body.token;
    const started = (await api('POST', `/v1/cas/${DEV_ROOT_CA}/renew`, {})).body;
    await tick();
    expect((await api('GET', `/v1/rotations/${started.id}`)).body.step).toBe('distribution-gate');
    expect(
      (
        await http(t.app, officer)('POST', `/v1/rotations/${started.id}/force`, {
          reason: 'the eu registry is decommissioned',
        })
      ).status,
    ).toBe(403);
    expect((await api('POST', `/v1/rotations/${started.id}/force`, {})).status).toBe(400);
    const forced = await api('POST', `/v1/rotations/${started.id}/force`, {
      reason: 'the eu registry is decommissioned',
    });
    expect(forced.status).toBe(200);
    await tick();
    const view = (await api('GET', `/v1/rotations/${started.id}`)).body;
    expect(view.state).toBe('completed');
    expect(view.steps[3].detail.forced).toMatchObject({ reason: 'the eu registry is decommissioned' });
    expect((await generations(DEV_ROOT_CA)).map((g) => g.state)).toEqual(['retired', 'retired', 'active']);
    const [event] = await query<{ actor: { role: string }; data: { reason: string } }>(
      t.database.url,
      `SELECT actor, data FROM audit_events WHERE type = 'rotation.gate.forced'`,
    );
    expect(event).toMatchObject({ actor: { role: 'admin' }, data: { reason: 'the eu registry is decommissioned' } });
    // Forcing a finished rotation, or a key rotation, is a conflict.
    expect((await api('POST', `/v1/rotations/${started.id}/force`, { reason: 'again please' })).status).toBe(409);
  });

  it('a root rollover resumes after a crash: key pairs created before it (root and subordinate) are adopted by their planned CKA_IDs, nothing orphaned', async () => {
    const { rotation } = await t.app.get(RotationService).requestCaRenewal(DEV_ROOT_CA);
    const plan = (
      await query<{ plan: CaRolloverPlan }>(t.database.url, 'SELECT plan FROM rotations WHERE id = $1', [rotation.id])
    )[0].plan;
    expect(plan.subordinates.map((s) => s.caName)).toEqual([DEV_ISSUING_CA]);
    // What a process killed between the HSM calls and their commits leaves behind.
    const keyStore = t.app.get<KeyStore>(KEY_STORE);
    for (const target of [plan, ...plan.subordinates]) {
      await keyStore.createKey({
        spec: 'EC-384',
        label: target.label,
        role: 'ca',
        id: Buffer.from(target.hsmId, 'hex'),
      });
    }
    const planned = await reconcileHsm(t.app.get(DataSource), keyStore);
    expect(planned.orphanObjects).toEqual([]);
    expect(planned.plannedObjects).toHaveLength(2);
    await tick();
    await api('POST', `/v1/rotations/${rotation.id}/force`, { reason: 'resumed after a crash in a test' });
    await tick();
    const view = (await api('GET', `/v1/rotations/${rotation.id}`)).body;
    expect(view.state).toBe('completed');
    expect(view.steps[0].detail).toMatchObject({ adoptedExistingObject: true });
    expect(view.steps[2].detail).toMatchObject({ adoptedExistingObjects: [plan.subordinates[0].generationName] });
    const listed = await keyStore.listKeys();
    for (const target of [plan, ...plan.subordinates])
      expect(listed.filter((k) => k.id === target.hsmId)).toHaveLength(1);
    const report = await reconcileHsm(t.app.get(DataSource), keyStore);
    expect(report).toEqual({ orphanObjects: [], missingObjects: [], plannedObjects: [] });
  });
});
