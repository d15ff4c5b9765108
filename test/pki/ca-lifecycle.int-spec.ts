import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import { DEV_ISSUING_CA, DEV_ROOT_CA } from '../../src/ca/dev-hierarchy.bootstrap';
import { CaService } from '../../src/ca/ca.service';
import { CaCreationService } from '../../src/ca/ca-creation.service';
import { issueCodeSigningCertificate } from '../../src/pki/certificate-issuer';
import { CertificateEntity } from '../../src/ca/certificate.entity';
import { derToPem } from '../../src/pki/pem-codec';
import { KeysService } from '../../src/keys/keys.service';
import { CrlService } from '../../src/revocation/crl.service';
import { RevocationService } from '../../src/revocation/revocation.service';
import { KEY_STORE, KeyStore } from '../../src/hsm/key-store';
import { AuditVerifier } from '../../src/audit/audit-verifier';
import { AuditCheckpointService } from '../../src/audit/audit-checkpoint.service';
import { AUDIT_CHECKPOINT_KEY_ID } from '../../src/audit/hsm-checkpoint-signer';
import { ecdsaRawToDer } from '../../src/pki/signature-algorithms';
import { tempDir } from '../support/server-process';
import { startTestApp, TestApp } from '../support/test-app';

/**
 * The CA on the real parts — keys in a SoftHSM2 token, state in PostgreSQL — checked from the
 * outside with OpenSSL's CLI: chains, CRLs and OCSP answers fetched from the public endpoints.
 */
function openssl(args: string[], cwd: string): { ok: boolean; out: string } {
  const result = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  return { ok: result.status === 0, out: `${result.stdout}${result.stderr}` };
}

describe('CA hierarchy, leaf issuance and revocation (SoftHSM2 + PostgreSQL, verified with OpenSSL)', () => {
  let t: TestApp;
  let cas: CaService;
  let keys: KeysService;
  let revocations: RevocationService;
  let crls: CrlService;
  let dir: string;
  let issuingGeneration: string;
  const subject = { C: 'US', ST: 'Washington', O: 'Example Corp', CN: 'release' };

  beforeAll(async () => {
    t = await startTestApp();
    cas = t.app.get(CaService);
    keys = t.app.get(KeysService);
    revocations = t.app.get(RevocationService);
    crls = t.app.get(CrlService);
    dir = tempDir('pki-');
    const issuing = await cas.get(DEV_ISSUING_CA);
    issuingGeneration = issuing.generations[0].name;
    fs.writeFileSync(path.join(dir, 'root.pem'), (await cas.get(DEV_ROOT_CA)).generations[0].certificate!);
    fs.writeFileSync(path.join(dir, 'issuing.pem'), issuing.generations[0].certificate!);
  });
  afterAll(() => t.close());

  async function fetchCrl(name: string): Promise<string> {
    const response = await t.app.inject({ method: 'GET', url: `/pki/${name}.crl` });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/pkix-crl');
    const file = path.join(dir, `${name}-${Date.now()}.crl`);
    fs.writeFileSync(file, response.rawPayload);
    execFileSync('openssl', ['crl', '-inform', 'DER', '-in', file, '-out', `${file}.pem`]);
    return `${file}.pem`;
  }

  async function ocsp(leafPem: string, extra: string[] = []): Promise<string> {
    const req = path.join(dir, `req-${Date.now()}-${Math.random()}.der`);
    const reqResult = openssl(['ocsp', '-issuer', 'issuing.pem', ...extra, '-cert', leafPem, '-reqout', req], dir);
    expect(reqResult.ok).toBe(true);
    const response = await t.app.inject({
      method: 'POST',
      url: `/ocsp/${issuingGeneration}`,
      headers: { 'content-type': 'application/ocsp-request' },
      payload: fs.readFileSync(req),
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/ocsp-response');
    expect(response.rawPayload.length).toBeLessThan(20 * 1024);
    const resp = `${req}.resp`;
    fs.writeFileSync(resp, response.rawPayload);
    // With -cert, `openssl ocsp -respin` builds a new request with a fresh nonce, so its own nonce
    // check cannot apply: the echo is compared with the request's nonce explicitly instead.
    const digest = extra.filter((flag) => /^-sha\d+$/.test(flag));
    const checked = openssl(
      [
        'ocsp',
        '-respin',
        resp,
        '-CAfile',
        'root.pem',
        '-verify_other',
        'issuing.pem',
        '-issuer',
        'issuing.pem',
        ...digest,
        '-cert',
        leafPem,
        '-resp_text',
        '-no_nonce',
      ],
      dir,
    );
    expect(checked.out).toContain('Response verify OK');
    if (!extra.includes('-no_nonce')) {
      const requestNonce = /OCSP Nonce:\s*\n\s*([0-9A-F]+)/.exec(
        openssl(['ocsp', '-reqin', req, '-req_text'], dir).out,
      )?.[1];
      const responseNonce = /OCSP Nonce:\s*\n\s*([0-9A-F]+)/.exec(checked.out)?.[1];
      expect(requestNonce).toMatch(/^0410[0-9A-F]{32}$/);
      expect(responseNonce).toBe(requestNonce);
    }
    return checked.out;
  }

  it('creates the development hierarchy on first start: EC-384 root and issuing CA with their own URLs', async () => {
    const list = await cas.list();
    expect(
      list.filter((ca) => ca.kind === 'root' || ca.kind === 'issuing').map((ca) => [ca.name, ca.kind, ca.keySpec]),
    ).toEqual([
      [DEV_ROOT_CA, 'root', 'EC-384'],
      [DEV_ISSUING_CA, 'issuing', 'EC-384'],
    ]);
    const issuing = list.find((ca) => ca.name === DEV_ISSUING_CA)!.generations[0];
    expect(issuing.urls).toEqual({
      caIssuers: `http://signet.test:8080/pki/${issuing.name}.crt`,
      crl: `http://signet.test:8080/pki/${issuing.name}.crl`,
      ocsp: `http://signet.test:8080/ocsp/${issuing.name}`,
    });
    const rootText = openssl(['x509', '-in', 'root.pem', '-noout', '-text'], dir).out;
    expect(rootText).toMatch(/Not After : .*20(3[5-7])/);
    const issuingText = openssl(['x509', '-in', 'issuing.pem', '-noout', '-text'], dir).out;
    expect(issuingText).toContain('CA:TRUE, pathlen:0');
    // The issuing CA points at its parent's (the root generation's) endpoints.
    expect(issuingText).toContain(
      `URI:http://signet.test:8080/pki/${list.find((ca) => ca.name === DEV_ROOT_CA)!.generations[0].name}.crl`,
    );
  });

  it('issues a code-signing leaf over an HSM key that OpenSSL verifies strictly up to the root, and serves the CA certificate', async () => {
    const created = await keys.create({ name: 'release', keySpec: 'EC-256', subject });
    expect(created.versions).toHaveLength(1);
    expect(created.versions[0]).toMatchObject({ version: 1, state: 'active', issuerGeneration: issuingGeneration });
    const chain = await keys.certificateChainPem('release');
    const blocks = chain.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g)!;
    expect(blocks).toHaveLength(3);
    fs.writeFileSync(path.join(dir, 'leaf.pem'), blocks[0]);
    const verified = openssl(
      ['verify', '-x509_strict', '-CAfile', 'root.pem', '-untrusted', 'issuing.pem', 'leaf.pem'],
      dir,
    );
    expect(verified.out).toContain('leaf.pem: OK');
    const text = openssl(['x509', '-in', 'leaf.pem', '-noout', '-text'], dir).out;
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\s/);
    expect(text).toMatch(/X509v3 Extended Key Usage: \s+Code Signing\s/);
    expect(text).toContain(`OCSP - URI:http://signet.test:8080/ocsp/${issuingGeneration}`);

    const crt = await t.app.inject({ method: 'GET', url: `/pki/${issuingGeneration}.crt` });
    expect(crt.statusCode).toBe(200);
    expect(crt.headers['content-type']).toBe('application/pkix-cert');
    expect(derToPem(crt.rawPayload, 'CERTIFICATE')).toBe(fs.readFileSync(path.join(dir, 'issuing.pem'), 'utf8'));
  });

  it('stores an issued certificate row with its created_at, and refuses a second one with the same serial instead of overwriting it', async () => {
    const dataSource = t.app.get(DataSource);
    const generation = await cas.generationByName(issuingGeneration);
    const issuer = await cas.issuerFor(generation);
    const key = await t.app
      .get<KeyStore>(KEY_STORE)
      .createKey({ spec: 'EC-256', label: 'record-once', role: 'signing' });
    const issued = await issueCodeSigningCertificate({
      issuer,
      subject: { ...subject, CN: 'record-once' },
      publicKeySpki: key.publicKeySpki,
      validityDays: 30,
    });

    const row = await cas.recordCertificate(dataSource.manager, issued, { issuerGenerationId: generation.id });
    expect(row.createdAt).toBeInstanceOf(Date);
    const stored = await dataSource.getRepository(CertificateEntity).findOneByOrFail({ serial: issued.serialHex });
    expect(stored).toMatchObject({
      kind: 'code-signing',
      issuerGenerationId: generation.id,
      keyVersionId: null,
      subjectDn: issued.subjectDn,
      revokedAt: null,
    });
    expect(stored.der.equals(issued.der)).toBe(true);
    expect(stored.createdAt.getTime()).toBe(row.createdAt.getTime());

    await expect(
      cas.recordCertificate(
        dataSource.manager,
        { ...issued, subjectDn: 'CN=overwritten' },
        { issuerGenerationId: null },
      ),
    ).rejects.toMatchObject({ driverError: { code: '23505' } });
    const after = await dataSource.getRepository(CertificateEntity).findOneByOrFail({ serial: issued.serialHex });
    expect(after).toMatchObject({ subjectDn: issued.subjectDn, issuerGenerationId: generation.id });
  });

  it('answers OCSP good (SHA-1 and SHA-256 CertIDs, POST and GET) with the nonce echoed, signed by the issuing generation', async () => {
    const sha1 = await ocsp('leaf.pem');
    expect(sha1).toMatch(/leaf.pem: good/);
    expect(sha1).toContain('OCSP Nonce');
    expect(sha1).toMatch(/Next Update: /);
    const sha256 = await ocsp('leaf.pem', ['-sha256']);
    expect(sha256).toMatch(/leaf.pem: good/);
    expect(sha256).toContain('Hash Algorithm: sha256');

    const req = path.join(dir, 'get-req.der');
    openssl(['ocsp', '-issuer', 'issuing.pem', '-cert', 'leaf.pem', '-no_nonce', '-reqout', req], dir);
    const b64 = fs.readFileSync(req).toString('base64');
    for (const encoded of [encodeURIComponent(b64), b64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')]) {
      const response = await t.app.inject({ method: 'GET', url: `/ocsp/${issuingGeneration}/${encoded}` });
      expect(response.statusCode).toBe(200);
      fs.writeFileSync(`${req}.resp`, response.rawPayload);
      const checked = openssl(
        [
          'ocsp',
          '-respin',
          `${req}.resp`,
          '-no_nonce',
          '-CAfile',
          'root.pem',
          '-verify_other',
          'issuing.pem',
          '-issuer',
          'issuing.pem',
          '-cert',
          'leaf.pem',
          '-resp_text',
        ],
        dir,
      );
      expect(checked.out).toContain('Response verify OK');
      expect(checked.out).toMatch(/leaf.pem: good/);
    }
  });

  it('publishes a CRL (cRLNumber, AKI, nextUpdate) that OpenSSL accepts for -crl_check while the leaf is good', async () => {
    const crl = await fetchCrl(issuingGeneration);
    const text = openssl(['crl', '-in', crl, '-noout', '-text', '-CAfile', 'issuing.pem'], dir).out;
    expect(text).toContain('verify OK');
    expect(text).toMatch(/X509v3 CRL Number: \s+\d+/);
    expect(text).toContain('X509v3 Authority Key Identifier');
    expect(text).toContain('Next Update:');
    expect(text).toContain('No Revoked Certificates');
    const bundle = path.join(dir, 'chain-with-crl.pem');
    fs.writeFileSync(bundle, fs.readFileSync(path.join(dir, 'root.pem'), 'utf8') + fs.readFileSync(crl, 'utf8'));
    const rootCrl = await fetchCrl((await cas.get(DEV_ROOT_CA)).generations[0].name);
    fs.appendFileSync(bundle, fs.readFileSync(rootCrl, 'utf8'));
    expect(
      openssl(['verify', '-crl_check_all', '-CAfile', bundle, '-untrusted', 'issuing.pem', 'leaf.pem'], dir).out,
    ).toContain('leaf.pem: OK');
  });

  it('revokes: the version stops signing at once, the CRL lists it with its reason, OCSP says revoked; revoking again changes nothing', async () => {
    const before = await keys.get('release');
    const serial = before.versions[0].serial!;
    const crlBefore = openssl(['crl', '-in', await fetchCrl(issuingGeneration), '-noout', '-crlnumber'], dir).out;

    const revoked = await revocations.revoke(serial.toUpperCase(), {
      reason: 'keyCompromise',
      invalidityDate: new Date(Date.now() - 3600_000).toISOString(),
    });
    expect(revoked).toMatchObject({ serial, reason: 'keyCompromise', changed: true });
    expect((await keys.get('release')).versions[0].state).toBe('revoked');
    expect((await keys.get('release')).activeVersion).toBeNull();

    // Waits for the (coalesced) rebuild the revocation scheduled.
    await crls.scheduleRebuild((await cas.generationByName(issuingGeneration)).id);
    const crl = await fetchCrl(issuingGeneration);
    const text = openssl(['crl', '-in', crl, '-noout', '-text'], dir).out;
    expect(text.toLowerCase()).toContain(serial.toLowerCase());
    expect(text).toContain('Key Compromise');
    expect(text).toContain('Invalidity Date');
    expect(openssl(['crl', '-in', crl, '-noout', '-crlnumber'], dir).out).not.toBe(crlBefore);

    const bundle = path.join(dir, 'revoked-bundle.pem');
    fs.writeFileSync(bundle, fs.readFileSync(path.join(dir, 'root.pem'), 'utf8') + fs.readFileSync(crl, 'utf8'));
    const verify = openssl(['verify', '-crl_check', '-CAfile', bundle, '-untrusted', 'issuing.pem', 'leaf.pem'], dir);
    expect(verify.ok).toBe(false);
    expect(verify.out).toContain('certificate revoked');

    const answer = await ocsp('leaf.pem');
    expect(answer).toMatch(/leaf.pem: revoked/);
    expect(answer).toMatch(/Reason: keyCompromise/);
    // A cached nonce-less answer is dropped on revocation too.
    expect(await ocsp('leaf.pem', ['-no_nonce'])).toMatch(/leaf.pem: revoked/);

    const again = await revocations.revoke(serial, { reason: 'superseded' });
    expect(again).toMatchObject({ changed: false, reason: 'keyCompromise' });
  });

  it('answers garbage sent to the OCSP endpoint with malformedRequest, and an unknown CA generation with unauthorized', async () => {
    const garbage = await t.app.inject({
      method: 'POST',
      url: `/ocsp/${issuingGeneration}`,
      headers: { 'content-type': 'application/ocsp-request' },
      payload: Buffer.from('definitely not DER'),
    });
    expect(garbage.statusCode).toBe(200);
    expect(garbage.rawPayload.equals(Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x01]))).toBe(true);
    const badGet = await t.app.inject({
      method: 'GET',
      url: `/ocsp/${issuingGeneration}/${Buffer.from('not an OCSP request').toString('base64')}`,
    });
    expect(badGet.rawPayload.equals(Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x01]))).toBe(true);
    // Not even a valid URL: answered before routing, but never with a 5xx.
    const badUrl = await t.app.inject({ method: 'GET', url: `/ocsp/${issuingGeneration}/%%%` });
    expect(badUrl.statusCode).toBeLessThan(500);
    const req = fs.readFileSync(path.join(dir, 'get-req.der'));
    const unknown = await t.app.inject({
      method: 'POST',
      url: '/ocsp/no-such-generation',
      headers: { 'content-type': 'application/ocsp-request' },
      payload: req,
    });
    expect(unknown.rawPayload.equals(Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x06]))).toBe(true);
  });

  it('rejects bad input with clear 4xx errors and stores nothing (no rows, no HSM objects)', async () => {
    const dataSource = t.app.get(DataSource);
    const keyStore = t.app.get<KeyStore>(KEY_STORE);
    const count = async () => ({
      keys: Number((await dataSource.query('SELECT count(*) FROM signing_keys'))[0].count),
      certs: Number((await dataSource.query('SELECT count(*) FROM certificates'))[0].count),
      hsm: (await keyStore.listKeys()).length,
    });
    const before = await count();
    await expect(
      keys.create({ name: 'nope', keySpec: 'EC-256', subject: { C: 'US', O: 'x', CN: 'y' } }),
    ).rejects.toMatchObject({ code: 'INVALID_SUBJECT', details: { field: 'ST' } });
    await expect(
      keys.create({ name: 'nope', keySpec: 'EC-256', subject: { ...subject, emailAddress: 'a@b.c' } }),
    ).rejects.toMatchObject({ code: 'INVALID_SUBJECT' });
    await expect(keys.create({ name: 'nope', keySpec: 'EC-256', subject, issuer: 'no-such-ca' })).rejects.toMatchObject(
      { code: 'NOT_FOUND' },
    );
    await expect(keys.create({ name: 'release', keySpec: 'EC-256', subject })).rejects.toMatchObject({
      code: 'ALREADY_EXISTS',
    });
    await expect(
      keys.create({ name: 'nope', keySpec: 'EC-256', subject, certificateValidityDays: 461 }),
    ).rejects.toMatchObject({ code: 'VALIDATION_ERROR' });
    await expect(revocations.revoke('00ff00ff', { reason: 'keyCompromise' })).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
    await expect(revocations.revoke('not-hex', {})).rejects.toMatchObject({ code: 'VALIDATION_ERROR' });
    await expect(revocations.revoke('01', { reason: 'because' })).rejects.toMatchObject({ code: 'VALIDATION_ERROR' });
    await expect(
      t.app.get(CaCreationService).create({ name: 'x', kind: 'issuing', subject, parent: 'no-such-root' }),
    ).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await count()).toEqual(before);
  });

  it('external-CA mode: a pending version hands out a CSR, and a chain signed elsewhere (OpenSSL) is validated before the version may sign', async () => {
    const created = await keys.create({
      name: 'vendor-signed',
      keySpec: 'EC-384',
      subject: { ...subject, CN: 'vendor-signed' },
      external: true,
    });
    expect(created.versions[0].state).toBe('pending');
    expect(created.activeVersion).toBeNull();
    fs.writeFileSync(path.join(dir, 'ext.csr'), await keys.csrPem('vendor-signed', 1));
    expect(openssl(['req', '-in', 'ext.csr', '-noout', '-verify'], dir).out).toMatch(
      /verify OK|Certificate request self-signature verify OK/,
    );

    // An outside CA made with OpenSSL: root → intermediate → our leaf.
    const ext = (name: string, body: string) => fs.writeFileSync(path.join(dir, name), body);
    ext(
      'ca.ext',
      'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\n',
    );
    ext(
      'int.ext',
      'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
    );
    ext(
      'leaf.ext',
      'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\ncrlDistributionPoints=URI:http://outside.test/issuing.crl\nauthorityInfoAccess=OCSP;URI:http://outside.test/ocsp\n',
    );
    const run = (args: string[]) => expect(openssl(args, dir).ok).toBe(true);
    run([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-384',
      '-nodes',
      '-keyout',
      'xroot.key',
      '-out',
      'xroot.pem',
      '-days',
      '3650',
      '-subj',
      '/C=US/ST=X/O=Outside/CN=Outside Root',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    run([
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-384',
      '-nodes',
      '-keyout',
      'xint.key',
      '-out',
      'xint.csr',
      '-subj',
      '/C=US/ST=X/O=Outside/CN=Outside Issuing',
    ]);
    run([
      'x509',
      '-req',
      '-in',
      'xint.csr',
      '-CA',
      'xroot.pem',
      '-CAkey',
      'xroot.key',
      '-CAcreateserial',
      '-out',
      'xint.pem',
      '-days',
      '1800',
      '-sha384',
      '-extfile',
      'int.ext',
    ]);
    run([
      'x509',
      '-req',
      '-in',
      'ext.csr',
      '-CA',
      'xint.pem',
      '-CAkey',
      'xint.key',
      '-CAcreateserial',
      '-out',
      'xleaf.pem',
      '-days',
      '300',
      '-sha384',
      '-extfile',
      'leaf.ext',
    ]);
    const chain = ['xleaf.pem', 'xint.pem', 'xroot.pem'].map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));

    // A chain certifying some other key is refused, and the version stays pending.
    run([
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-384',
      '-nodes',
      '-keyout',
      'other.key',
      '-out',
      'other.csr',
      '-subj',
      '/C=US/ST=Washington/O=Example Corp/CN=vendor-signed',
    ]);
    run([
      'x509',
      '-req',
      '-in',
      'other.csr',
      '-CA',
      'xint.pem',
      '-CAkey',
      'xint.key',
      '-CAcreateserial',
      '-out',
      'other.pem',
      '-days',
      '300',
      '-sha384',
      '-extfile',
      'leaf.ext',
    ]);
    await expect(
      keys.importCertificate('vendor-signed', 1, [
        fs.readFileSync(path.join(dir, 'other.pem'), 'utf8'),
        chain[1],
        chain[2],
      ]),
    ).rejects.toMatchObject({ code: expect.stringMatching(/INVALID_CERTIFICATE|VALIDATION_ERROR/) });
    expect((await keys.get('vendor-signed')).versions[0].state).toBe('pending');

    const imported = await keys.importCertificate('vendor-signed', 1, chain);
    expect(imported.activeVersion).toBe(1);
    expect(await keys.certificateChainPem('vendor-signed')).toBe(chain.join(''));
  });

  it('audits every CA, key, certificate and revocation event in the hash chain, which verifies', async () => {
    const rows: Array<{ type: string; subject: string; data: Record<string, unknown> }> = await t.app
      .get(DataSource)
      .query('SELECT type, subject, data FROM audit_events ORDER BY seq');
    const of = (type: string) => rows.filter((row) => row.type === type);
    expect(of('ca.created').map((row) => row.subject)).toEqual(expect.arrayContaining([DEV_ROOT_CA, DEV_ISSUING_CA]));
    expect(of('key.created').map((row) => row.subject)).toEqual(expect.arrayContaining(['release', 'vendor-signed']));
    expect(of('key.certificate.imported').map((row) => row.subject)).toEqual(['vendor-signed']);
    const revoked = of('certificate.revoked');
    expect(revoked.map((row) => row.data.changed)).toEqual([true, false]);
    expect(revoked[0].data.reason).toBe('keyCompromise');
    const verified = await t.app.get(AuditVerifier).verify('full');
    expect(verified).toMatchObject({ ok: true });
    expect(verified.checked).toBeGreaterThanOrEqual(rows.length);
  });

  it('signs audit checkpoints with an HSM key (created once) that OpenSSL verifies, and verification starts from them', async () => {
    const checkpoints = t.app.get(AuditCheckpointService);
    const first = await checkpoints.create();
    expect(first.keyRef).toContain(
      `id=${[...AUDIT_CHECKPOINT_KEY_ID].map((b) => '%' + b.toString(16).padStart(2, '0')).join('')}`,
    );
    fs.writeFileSync(path.join(dir, 'cp.pub.der'), Buffer.from(first.publicKey, 'base64'));
    fs.writeFileSync(path.join(dir, 'cp.stmt'), Buffer.from(first.statement, 'base64'));
    // The signature is raw r||s; OpenSSL wants it DER-encoded.
    fs.writeFileSync(path.join(dir, 'cp.sig'), ecdsaRawToDer(Buffer.from(first.signature, 'base64')));
    expect(openssl(['pkey', '-pubin', '-inform', 'DER', '-in', 'cp.pub.der', '-out', 'cp.pub.pem'], dir).ok).toBe(true);
    expect(openssl(['dgst', '-sha256', '-verify', 'cp.pub.pem', '-signature', 'cp.sig', 'cp.stmt'], dir).out).toContain(
      'Verified OK',
    );

    const second = await checkpoints.create();
    expect(second.keyRef).toBe(first.keyRef);
    const keyStore = t.app.get<KeyStore>(KEY_STORE);
    expect((await keyStore.listKeys()).filter((k) => k.id === AUDIT_CHECKPOINT_KEY_ID.toString('hex'))).toHaveLength(1);
    const verified = await t.app.get(AuditVerifier).verify('incremental');
    expect(verified).toMatchObject({ ok: true, lastCheckpoint: { seq: second.seq } });
  });
});
