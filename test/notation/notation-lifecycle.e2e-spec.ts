import * as fs from 'node:fs';
import * as path from 'node:path';
import { TestRegistry } from '../support/registry';
import { freePort, ServerProcess } from '../support/server-process';
import {
  buildServerAndPlugin,
  createKey,
  describeWithNotation,
  expectSuccess,
  notationBundle,
  NotationHome,
  openssl,
  PublicEndpointProxy,
  pushImage,
  run,
  SignetApi,
  signerToken,
  sleep,
  startSignet,
  stopSignet,
  tsaRootPem,
  waitFor,
} from './support/notation-kit';

/**
 * What happens to signatures over time, seen by the real `notation verify` with Signet's bundle:
 * key rotation, a root rollover, and revocation through OCSP and through the CRL alone. The
 * certificates' CRL and OCSP URLs lead to a proxy in front of Signet (SIGNET_PUBLIC_URL), which
 * can drop OCSP connections: Notation then falls back to the CRL (notation-core-go tries OCSP and
 * uses the CRL when OCSP gives no answer).
 */
describeWithNotation('real Notation across rotation, root rollover and revocation', (binary) => {
  let server: ServerProcess;
  let api: SignetApi;
  let dir: string;
  let registry: TestRegistry;
  let proxy: PublicEndpointProxy;
  let home: NotationHome;
  let tokenFile: string;
  let tsaRoot: string;

  const KEYS = ['life-rotating', 'life-ocsp', 'life-crl', 'life-invalidity'];
  const notation = (args: string[]) => home.notation(args);
  const ok = expectSuccess;
  const image = (name: string) => pushImage(registry, 'team/life', name, dir);
  const sign = async (key: string, ref: string, timestamp = false) => {
    const flags = timestamp ? ['--timestamp-url', `${server.url}/tsa`, '--timestamp-root-cert', tsaRoot] : [];
    ok(
      await notation([
        'sign',
        '--insecure-registry',
        '--id',
        key,
        '--plugin',
        'signet',
        '--plugin-config',
        `url=${server.url}`,
        '--plugin-config',
        `token_file=${tokenFile}`,
        ...flags,
        ref,
      ]),
    );
  };
  const verify = async (ref: string) => {
    home.clearCache(); // no CRL from an earlier verify
    return notation(['verify', '--insecure-registry', '--verbose', ref]);
  };
  const activeVersion = async (key: string) => {
    const view = (await api('GET', `/v1/keys/${key}`)).json as {
      versions: Array<{ version: number; state: string; serial: string; issuerGeneration: string }>;
    };
    return view.versions.find((v) => v.state === 'active')!;
  };
  /** Until the new version or generation is the active one (retiring the old one waits out the overlap). */
  const waitRotation = async (id: string) =>
    waitFor(
      `rotation ${id}`,
      async () => ['activated', 'completed'].includes((await api('GET', `/v1/rotations/${id}`)).json.state as string),
      60_000,
    );
  const leafOf = async (ref: string) => {
    const inspected = JSON.parse((await notation(['inspect', '--insecure-registry', '-o', 'json', ref])).stdout) as {
      Signatures: Array<{ certificates: Array<{ SHA256Fingerprint: string; issuedBy: string }> }>;
    };
    return inspected.Signatures[0].certificates;
  };
  /** Waits until the CRL of `generation` lists `serial`; returns the CRL's `openssl crl -text`. */
  const crlListing = async (generation: string, serial: string) => {
    let text = '';
    await waitFor(`CRL of ${generation} listing ${serial}`, async () => {
      const crl = Buffer.from(await (await fetch(`${server.url}/pki/${generation}.crl`)).arrayBuffer());
      const file = path.join(dir, `${generation}.crl`);
      fs.writeFileSync(file, crl);
      text = openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-text']).out;
      return text
        .toUpperCase()
        .replace(/SERIAL NUMBER: 0*/g, 'SERIAL NUMBER: ')
        .includes(`SERIAL NUMBER: ${serial.toUpperCase().replace(/^0+/, '')}`);
    });
    return text;
  };

  beforeAll(async () => {
    const plugin = buildServerAndPlugin();
    proxy = await PublicEndpointProxy.start();
    const port = await freePort();
    proxy.forwardTo(port);
    ({ server, api, dir } = await startSignet(
      'notation-life-',
      { SIGNET_PUBLIC_URL: proxy.url, SIGNET_ROTATION_TICK_SECONDS: '1' },
      port,
    ));
    registry = await TestRegistry.start();
    home = new NotationHome(binary, 'notation-life-home-');
    ok(await notation(['plugin', 'install', '--file', plugin]));
    for (const key of KEYS) await createKey(api, key, 'EC-256');
    ({ file: tokenFile } = await signerToken(api, dir, 'life', KEYS));
    expect((await api('POST', '/v1/truststores', { name: 'life', cas: ['signet-dev-root'] })).status).toBe(201);
    home.installBundle(await notationBundle(api, 'life'));
    tsaRoot = await tsaRootPem(server.url, dir);
  }, 600_000);

  afterAll(async () => {
    await stopSignet(server);
    await registry?.dispose();
    await proxy?.close();
  });

  it('key rotation: a signature made before the rotation and one made after it both verify', async () => {
    const before = await image('before-rotation');
    await sign('life-rotating', before);
    const rotation = await api('POST', '/v1/keys/life-rotating/rotate', {});
    expect(rotation.status).toBe(202);
    await waitRotation(rotation.json.id as string);
    expect((await activeVersion('life-rotating')).version).toBe(2);
    const after = await image('after-rotation');
    await sign('life-rotating', after);

    expect((await leafOf(before))[0].SHA256Fingerprint).not.toBe((await leafOf(after))[0].SHA256Fingerprint);
    for (const ref of [before, after]) ok(await verify(ref));
  });

  it('revocation through OCSP: a signature verifies while its leaf is good and is rejected once the leaf is revoked', async () => {
    const ref = await image('ocsp');
    await sign('life-ocsp', ref, true);
    const good = await verify(ref);
    ok(good);
    const { serial } = await activeVersion('life-ocsp');
    proxy.seen.ocsp = 0;
    expect((await api('POST', `/v1/certificates/${serial}/revoke`, { reason: 'keyCompromise' })).status).toBe(200);
    const revoked = await verify(ref);
    expect(revoked.code).not.toBe(0);
    expect(revoked.output).toContain(
      'signing certificate with subject "CN=life-ocsp,O=Signet Notation Tier,ST=Berlin,C=DE" is revoked',
    );
    expect(proxy.seen.ocsp).toBeGreaterThan(0);
  });

  it('revocation through the CRL alone: with the OCSP responder unreachable, Notation falls back to the CRL, which first passes and then rejects the revoked leaf', async () => {
    const ref = await image('crl');
    await sign('life-crl', ref, true);
    proxy.blockOcsp = true;
    try {
      proxy.seen.ocspRefused = 0;
      proxy.seen.crl = 0;
      ok(await verify(ref));
      expect(proxy.seen.ocspRefused).toBeGreaterThan(0); // OCSP was tried and got no answer…
      expect(proxy.seen.crl).toBeGreaterThan(0); // …so the CRL decided

      const { serial, issuerGeneration } = await activeVersion('life-crl');
      expect((await api('POST', `/v1/certificates/${serial}/revoke`, { reason: 'keyCompromise' })).status).toBe(200);
      await crlListing(issuerGeneration, serial);
      const revoked = await verify(ref);
      expect(revoked.code).not.toBe(0);
      expect(revoked.output).toContain(
        'signing certificate with subject "CN=life-crl,O=Signet Notation Tier,ST=Berlin,C=DE" is revoked',
      );
    } finally {
      proxy.blockOcsp = false;
    }
  });

  it('a revocation with an invalidityDate: the date is in the OCSP answer and the CRL entry; Notation 1.x still rejects timestamped signatures from before it (it passes no signing time for notary.x509)', async () => {
    const early = await image('invalidity-early');
    await sign('life-invalidity', early, true);
    await sleep(2_500); // beyond the timestamp's accuracy (1 s): the early genTime is before the date, the late one after it
    const invalidityDate = new Date(Math.floor(Date.now() / 1000) * 1000);
    await sleep(2_500);
    const late = await image('invalidity-late');
    await sign('life-invalidity', late, true);

    const { serial, issuerGeneration } = await activeVersion('life-invalidity');
    const revoked = await api('POST', `/v1/certificates/${serial}/revoke`, {
      reason: 'keyCompromise',
      invalidityDate: invalidityDate.toISOString(),
    });
    expect(revoked.status).toBe(200);

    // Independent readers: OpenSSL sees the date in the OCSP single extensions and in the CRL entry.
    const chain = (await api('GET', '/v1/keys/life-invalidity/certificate-chain?version=1')).raw.toString('utf8');
    const [leafPem, issuerPem] = chain.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)!;
    fs.writeFileSync(path.join(dir, 'inv-leaf.pem'), `${leafPem}\n`);
    fs.writeFileSync(path.join(dir, 'inv-issuer.pem'), `${issuerPem}\n`);
    const expectedText = invalidityDate
      .toUTCString()
      .replace(
        /^\w+, (\d+) (\w+) (\d+) ([\d:]+) GMT$/,
        (_m, d: string, mo: string, y: string, t: string) => `${mo} ${d.replace(/^0/, ' ')} ${t} ${y} GMT`,
      );
    // Asynchronously: the proxy answering it runs in this process.
    const ocsp = await run(
      'openssl',
      [
        'ocsp',
        '-issuer',
        'inv-issuer.pem',
        '-cert',
        'inv-leaf.pem',
        '-url',
        `${proxy.url}/ocsp/${issuerGeneration}`,
        '-no_nonce',
        '-noverify',
        '-resp_text',
      ],
      { cwd: dir, timeoutMs: 30_000 },
    );
    expect(ocsp.output).toContain('Cert Status: revoked');
    expect(ocsp.output).toMatch(new RegExp(`Response Single Extensions:\\s+Invalidity Date:\\s+${expectedText}`));
    const crl = await crlListing(issuerGeneration, serial);
    expect(crl).toMatch(new RegExp(`Invalidity Date:\\s+${expectedText}`));

    // notation-go 1.3 (verifier.verifyRevocation) hands notation-core-go an authentic signing time
    // only for the signingAuthority scheme; `notation sign` makes notary.x509 signatures, whose
    // revocation check therefore gets a zero time and ignores the invalidityDate: a revoked leaf
    // rejects every signature it made, timestamped or not, through OCSP and through the CRL.
    for (const blockOcsp of [false, true]) {
      proxy.blockOcsp = blockOcsp;
      try {
        for (const ref of [early, late]) {
          const result = await verify(ref);
          expect({ blockOcsp, ref, code: result.code }).toEqual({ blockOcsp, ref, code: 1 });
          expect(result.output).toContain(
            'signing certificate with subject "CN=life-invalidity,O=Signet Notation Tier,ST=Berlin,C=DE" is revoked',
          );
        }
      } finally {
        proxy.blockOcsp = false;
      }
    }
  });

  it('root rollover: signatures under the old root and under the new root both verify while both roots are in the bundle', async () => {
    const underOld = await image('old-root');
    await sign('life-rotating', underOld, true);
    const rollover = await api('POST', '/v1/cas/signet-dev-root/renew', { reason: 'notation tier root rollover' });
    expect(rollover.status).toBe(202);
    await waitRotation(rollover.json.id as string);
    // Leaves issued before the switch keep their chain; a rotation issues one under the new root.
    const rotation = await api('POST', '/v1/keys/life-rotating/rotate', {});
    expect(rotation.status).toBe(202);
    await waitRotation(rotation.json.id as string);
    const underNew = await image('new-root');
    await sign('life-rotating', underNew, true);

    const [oldChain, newChain] = [await leafOf(underOld), await leafOf(underNew)];
    expect(oldChain.at(-1)!.SHA256Fingerprint).not.toBe(newChain.at(-1)!.SHA256Fingerprint);

    home.installBundle(await notationBundle(api, 'life'));
    const roots = fs.readdirSync(path.join(home.notationDir, 'truststore', 'x509', 'ca', 'life')).sort();
    expect(roots).toEqual(['signet-dev-root-g1.pem', 'signet-dev-root-g2.pem']);
    for (const ref of [underOld, underNew]) ok(await verify(ref));
  });
});
