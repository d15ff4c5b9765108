import 'reflect-metadata';
import { DEV_TSA_CA, DEV_TSA_ROOT_CA } from '../../src/tsa/dev-tsa.bootstrap';
import { TsaService } from '../../src/tsa/tsa.service';
import { RotationScheduler } from '../../src/rotation/rotation.scheduler';
import { RotationDueService } from '../../src/rotation/rotation-due.service';
import { RotationStatusService } from '../../src/rotation/rotation-status.service';
import { OpenSslWorkspace } from '../tsa/tsa-fixtures';
import { http } from './rotation-helpers';
import { RotationTestApp, startRotationTestApp, TestClock } from './rotation-test-app';

const DAY = 86_400_000;

type Generation = { name: string; state: string; certificate: string | null; notAfter: string | null };

/**
 * The TSA's signing certificate lives at most 460 days; after it /tsa answers 503. A renewal (by
 * hand, or by the scheduler within SIGNET_CA_RENEWAL_MARGIN_DAYS of its expiry) gives the TSA CA a
 * new key generation in the HSM, certified by the TSA root, and /tsa signs with it at once, while
 * the timestamps of the old generation keep verifying. Checked with OpenSSL's `ts -verify`.
 */
describe('TSA CA renewal', () => {
  let t: RotationTestApp;
  let api: ReturnType<typeof http>;
  let workspace: OpenSslWorkspace;

  beforeAll(async () => {
    t = await startRotationTestApp({ clock: new TestClock(new Date()) });
    api = http(t.app, t.adminToken);
    workspace = new OpenSslWorkspace();
  });
  afterAll(async () => {
    await t?.close();
    workspace?.remove();
  });

  const generations = async (ca: string): Promise<Generation[]> => (await api('GET', `/v1/cas/${ca}`)).body.generations;
  const tick = () => t.app.get(RotationScheduler).tick(t.clock.now());

  /** A timestamp of `name`'s content from /tsa, with OpenSSL's query; returns the reply file. */
  async function timestamp(name: string): Promise<string> {
    workspace.write(`${name}.bin`, `artifact ${name}`);
    await workspace.openssl(['ts', '-query', '-data', `${name}.bin`, '-sha256', '-cert', '-out', `${name}.tsq`]);
    const response = await t.app.inject({
      method: 'POST',
      url: '/tsa',
      headers: { 'content-type': 'application/timestamp-query' },
      payload: workspace.read(`${name}.tsq`),
    });
    expect(response.statusCode).toBe(200);
    workspace.write(`${name}.tsr`, response.rawPayload);
    return `${name}.tsr`;
  }

  const verify = (name: string) =>
    workspace.tryOpenssl([
      'ts',
      '-verify',
      '-queryfile',
      `${name}.tsq`,
      '-in',
      `${name}.tsr`,
      '-CAfile',
      'tsa-root.pem',
    ]);

  /** The certificate the token carries (the TSA's signing certificate), as PEM text. */
  async function signerOf(name: string): Promise<string> {
    await workspace.openssl(['ts', '-reply', '-in', `${name}.tsr`, '-token_out', '-out', `${name}.token`]);
    return workspace.openssl(['pkcs7', '-inform', 'DER', '-in', `${name}.token`, '-print_certs']);
  }

  it('renews by hand: a new key and certificate under the TSA root, /tsa signs with it at once, old timestamps still verify', async () => {
    const [root] = await generations(DEV_TSA_ROOT_CA);
    workspace.write('tsa-root.pem', root.certificate!);
    await timestamp('before');
    expect((await verify('before')).output).toContain('Verification: OK');
    const [g1] = await generations(DEV_TSA_CA);

    const renewed = await api('POST', `/v1/cas/${DEV_TSA_CA}/renew`, { reason: 'yearly TSA renewal' });
    expect(renewed.status).toBe(202);
    expect(renewed.body).toMatchObject({
      kind: 'ca',
      subject: DEV_TSA_CA,
      trigger: 'manual',
      from: `${DEV_TSA_CA}-g1`,
      to: `${DEV_TSA_CA}-g2`,
    });
    await tick();
    expect((await api('GET', `/v1/rotations/${renewed.body.id}`)).body).toMatchObject({ state: 'completed' });
    const after = await generations(DEV_TSA_CA);
    expect(after.map((g) => [g.name, g.state])).toEqual([
      [`${DEV_TSA_CA}-g1`, 'retired'],
      [`${DEV_TSA_CA}-g2`, 'active'],
    ]);
    const g2 = after[1];
    workspace.write('tsa-g2.pem', g2.certificate!);
    // The timestamping profile again: EKU timeStamping only, critical; chains to the same TSA root.
    expect(await workspace.openssl(['x509', '-in', 'tsa-g2.pem', '-noout', '-ext', 'extendedKeyUsage'])).toMatch(
      /X509v3 Extended Key Usage: critical\s+Time Stamping\s*$/,
    );
    expect(
      await workspace.openssl([
        'verify',
        '-x509_strict',
        '-purpose',
        'timestampsign',
        '-CAfile',
        'tsa-root.pem',
        'tsa-g2.pem',
      ]),
    ).toContain('tsa-g2.pem: OK');

    // No wait for the refresh interval: the next timestamp is signed by g2.
    await timestamp('after');
    expect((await verify('after')).output).toContain('Verification: OK');
    expect(await signerOf('after')).toContain(g2.certificate!.trim().split('\n')[1]);
    expect(await signerOf('before')).toContain(g1.certificate!.trim().split('\n')[1]);
    expect((await verify('before')).output).toContain('Verification: OK');
    const g2Der = Buffer.from(g2.certificate!.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    expect((await t.app.get(TsaService).signingCertificate()).equals(g2Der)).toBe(true);
  });

  it('refuses to renew a TSA root in place (a new tsa-root CA replaces it), naming the kinds it renews', async () => {
    const refused = await api('POST', `/v1/cas/${DEV_TSA_ROOT_CA}/renew`, {});
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatchObject({ code: 'VALIDATION_ERROR' });
    expect(refused.body.error.message).toContain('root, issuing and tsa CAs');
  });

  it('renews by itself within the margin before the TSA certificate expires', async () => {
    const [, active] = await generations(DEV_TSA_CA);
    const notAfter = new Date(active.notAfter!);
    // One day outside the 30-day margin: nothing to do yet.
    t.clock.set(new Date(notAfter.getTime() - 31 * DAY));
    await tick();
    const tsaRotations = async () =>
      (
        (await api('GET', `/v1/rotations?ca=${DEV_TSA_CA}`)).body.rotations as Array<{
          trigger: string;
          state: string;
          to: string;
        }>
      ).filter((r) => r.trigger === 'ca-lifetime');
    expect(await tsaRotations()).toEqual([]);
    // Inside it: the scheduler starts the renewal and runs it to the end.
    t.clock.set(new Date(notAfter.getTime() - 29 * DAY));
    await tick();
    await tick();
    expect(await tsaRotations()).toEqual([
      expect.objectContaining({ trigger: 'ca-lifetime', state: 'completed', to: `${DEV_TSA_CA}-g3` }),
    ]);
    expect((await generations(DEV_TSA_CA)).map((g) => g.state)).toEqual(['retired', 'retired', 'active']);
  });

  it('near the end of the TSA root, starts no renewal and tells the operator to replace the TSA root', async () => {
    const [root] = await generations(DEV_TSA_ROOT_CA);
    const at = new Date(new Date(root.notAfter!).getTime() - 20 * DAY);
    expect((await t.app.get(RotationDueService).casDueForRenewal(at)).map((c) => c.name)).not.toContain(DEV_TSA_CA);
    const lines = await t.app.get(RotationStatusService).statusLines(at);
    expect(lines.filter((line) => line.includes(`TSA CA ${DEV_TSA_CA}`))).toEqual([
      expect.stringMatching(
        new RegExp(
          `^expiry ALERT: TSA CA ${DEV_TSA_CA} cannot be renewed under its TSA root \\(.*\\); create a new tsa-root CA`,
        ),
      ),
    ]);
  });
});
