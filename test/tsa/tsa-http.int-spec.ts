import 'reflect-metadata';
import { Global, Module } from '@nestjs/common';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import * as x509 from '@peculiar/x509';
import * as pkijs from 'pkijs';
import { AuditService } from '../../src/audit/audit.service';
import { CaService } from '../../src/ca/ca.service';
import { CaRepository } from '../../src/ca/ca.repository';
import { readChildren, readSingle } from '../../src/pki/der-reader';
import { DomainError, ErrorCode } from '../../src/common/errors';
import { SIGNET_CONFIG, SignetConfig, loadConfig } from '../../src/config/config';
import { DatabaseModule } from '../../src/database/database.module';
import { HsmModule } from '../../src/hsm/hsm.module';
import { KEY_STORE, KeyStore } from '../../src/hsm/key-store';
import { SIGNER_FACTORY, SignerFactory } from '../../src/hsm/signer-factory';
import { HttpExceptionFilter } from '../../src/observability/http-exception.filter';
import { ObservabilityModule } from '../../src/observability/observability.module';
import { ClockSyncProbe } from '../../src/tsa/clock-sync.probe';
import { DEV_TSA_CA, DEV_TSA_ROOT_CA, DevTsaBootstrap } from '../../src/tsa/dev-tsa.bootstrap';
import { TsaSerialAllocator } from '../../src/tsa/tsa-serial.allocator';
import { TsaModule } from '../../src/tsa/tsa.module';
import { TsaRepository } from '../../src/tsa/tsa.repository';
import { TsaService } from '../../src/tsa/tsa.service';
import { createTestDatabase, query, TestDatabase } from '../support/database';
import { createTestToken } from '../support/softhsm';
import { OpenSslWorkspace, buildQuery, nonceFromText } from './tsa-fixtures';

/**
 * POST /tsa end to end on a real PostgreSQL and a real SoftHSM2 token, with the OpenSSL CLI as the
 * independent client and verifier. The app is assembled from the platform modules and TsaModule
 * (the dev TSA hierarchy is created by the first-start bootstrap, keys in the token).
 */
describe('POST /tsa (RFC 3161 against OpenSSL, SoftHSM2 and PostgreSQL)', () => {
  let database: TestDatabase;
  let app: NestFastifyApplication;
  let config: SignetConfig;
  let tsa: TsaService;
  let workspace: OpenSslWorkspace;
  let tsaCertificate: Buffer;
  let tsaRoot: Buffer;

  beforeAll(async () => {
    const token = await createTestToken('tsa');
    database = await createTestDatabase();
    config = loadConfig({
      DATABASE_URL: database.url,
      SIGNET_DEV_BOOTSTRAP: 'true',
      SIGNET_TSA_MAX_QUERY_BYTES: '512',
      SIGNET_BODY_LIMIT_BYTES: '4096',
    });

    @Global()
    @Module({
      providers: [{ provide: SIGNET_CONFIG, useValue: config }, AuditService],
      exports: [SIGNET_CONFIG, AuditService],
    })
    class TestRootModule {}

    const moduleRef = await Test.createTestingModule({
      imports: [
        TestRootModule,
        ObservabilityModule,
        DatabaseModule.forRoot({ url: database.url, poolSize: 8 }),
        HsmModule.forRoot({ modulePath: token.modulePath, tokenLabel: token.tokenLabel, pin: token.pin, poolSize: 4 }),
        TsaModule,
      ],
    }).compile();
    app = moduleRef.createNestApplication<NestFastifyApplication>(
      new FastifyAdapter({ bodyLimit: config.bodyLimitBytes }),
      { logger: false },
    );
    app.useGlobalFilters(new HttpExceptionFilter());
    await app.init();
    await app.getHttpAdapter().getInstance().ready();

    tsa = app.get(TsaService);
    tsaCertificate = await tsa.signingCertificate();
    [{ der: tsaRoot }] = await tsa.tsaRootCertificates();
    workspace = new OpenSslWorkspace();
    workspace.write('artifact.bin', 'sha256:0123456789abcdef image manifest signature');
    workspace.write('other.bin', 'something else');
    workspace.writeCertificate('tsa-root.pem', tsaRoot);
    workspace.writeCertificate('tsa.pem', tsaCertificate);
  });

  afterAll(async () => {
    await app?.close();
    await database?.drop();
    workspace?.remove();
  });

  async function post(body: Buffer, contentType = 'application/timestamp-query') {
    return app.inject({ method: 'POST', url: '/tsa', headers: { 'content-type': contentType }, payload: body });
  }

  /** openssl ts -query … → POST → reply file; returns the reply text. */
  async function timestamp(name: string, queryArgs: string[]): Promise<string> {
    await workspace.openssl(['ts', '-query', '-data', 'artifact.bin', ...queryArgs, '-out', `${name}.tsq`]);
    const response = await post(workspace.read(`${name}.tsq`));
    if (response.statusCode !== 200) throw new Error(`POST /tsa answered ${response.statusCode}: ${response.body}`);
    expect(response.headers['content-type']).toBe('application/timestamp-reply');
    workspace.write(`${name}.tsr`, response.rawPayload);
    return workspace.openssl(['ts', '-reply', '-in', `${name}.tsr`, '-text']);
  }

  async function storedState(): Promise<{ audited: number; sequence: string }> {
    const [{ count }] = await query<{ count: string }>(
      database.url,
      `SELECT count(*)::text AS count FROM audit_events WHERE type = 'tsa.timestamp'`,
    );
    const [{ last_value, is_called }] = await query<{ last_value: string; is_called: boolean }>(
      database.url,
      'SELECT last_value::text, is_called FROM tsa_serial_seq',
    );
    return { audited: Number(count), sequence: `${last_value}/${is_called}` };
  }

  it('grants a -sha256 -cert query with a nonce: the reply shows every field and verifies with the TSA root', async () => {
    const text = await timestamp('cert-nonce', ['-sha256', '-cert']);
    const queryText = await workspace.openssl(['ts', '-query', '-in', 'cert-nonce.tsq', '-text']);
    expect(text).toContain('Status: Granted.');
    expect(text).toContain(`Policy OID: ${config.tsa.policyOid}`);
    expect(text).toContain('Hash Algorithm: sha256');
    expect(text).toMatch(/Serial number: 0x[0-9A-F]+/);
    expect(text).toMatch(/Time stamp: \w{3} +\d+ \d\d:\d\d:\d\d(\.\d+)? \d{4} GMT/);
    expect(text).toContain('Accuracy: 0x01 seconds, unspecified millis, unspecified micros');
    expect(text).toContain('Ordering: no');
    expect(nonceFromText(text)).toBe(nonceFromText(queryText));
    expect(nonceFromText(text)).toBeDefined();
    expect(text).toMatch(/TSA: DirName:.*CN ?= ?Signet Development TSA/);

    // The token carries the TSA certificate, so the root alone verifies it …
    const verified = await workspace.openssl([
      'ts',
      '-verify',
      '-data',
      'artifact.bin',
      '-in',
      'cert-nonce.tsr',
      '-CAfile',
      'tsa-root.pem',
    ]);
    expect(verified).toContain('Verification: OK');
    // … and against the query, OpenSSL also checks the imprint, the nonce and that the certificate was included.
    const againstQuery = await workspace.openssl([
      'ts',
      '-verify',
      '-queryfile',
      'cert-nonce.tsq',
      '-in',
      'cert-nonce.tsr',
      '-CAfile',
      'tsa-root.pem',
      '-untrusted',
      'tsa.pem',
    ]);
    expect(againstQuery).toContain('Verification: OK');
  });

  it('grants a query without -cert and without a nonce: no certificate in the token, verifiable with -untrusted', async () => {
    const text = await timestamp('plain', ['-sha256', '-no_nonce']);
    expect(text).toContain('Status: Granted.');
    expect(text).toContain('Nonce: unspecified');
    const response = pkijs.TimeStampResp.fromBER(workspace.read('plain.tsr'));
    const signedData = new pkijs.SignedData({ schema: response.timeStampToken!.content });
    expect(signedData.certificates).toBeUndefined();

    const withoutCert = await workspace.tryOpenssl([
      'ts',
      '-verify',
      '-data',
      'artifact.bin',
      '-in',
      'plain.tsr',
      '-CAfile',
      'tsa-root.pem',
    ]);
    expect(withoutCert.ok).toBe(false);
    const verified = await workspace.openssl([
      'ts',
      '-verify',
      '-data',
      'artifact.bin',
      '-in',
      'plain.tsr',
      '-CAfile',
      'tsa-root.pem',
      '-untrusted',
      'tsa.pem',
    ]);
    expect(verified).toContain('Verification: OK');
  });

  it.each(['sha384', 'sha512'])('grants a -%s imprint with a nonce and it verifies against the query', async (hash) => {
    const text = await timestamp(`imprint-${hash}`, [`-${hash}`, '-cert']);
    expect(text).toContain(`Hash Algorithm: ${hash}`);
    const verified = await workspace.openssl([
      'ts',
      '-verify',
      '-queryfile',
      `imprint-${hash}.tsq`,
      '-in',
      `imprint-${hash}.tsr`,
      '-CAfile',
      'tsa-root.pem',
    ]);
    expect(verified).toContain('Verification: OK');
  });

  it('a tampered token, or the token against other data, fails verification', async () => {
    await timestamp('tamper', ['-sha256', '-cert', '-no_nonce']);
    const reply = workspace.read('tamper.tsr');
    // Change one digit of genTime inside the signed TSTInfo.
    const genTime = /\d{14}(\.\d+)?Z/.exec(reply.toString('latin1'))!;
    const tampered = Buffer.from(reply);
    const at = genTime.index + 13;
    tampered[at] = tampered[at] === 0x30 ? 0x31 : 0x30;
    workspace.write('tampered.tsr', tampered);
    const result = await workspace.tryOpenssl([
      'ts',
      '-verify',
      '-data',
      'artifact.bin',
      '-in',
      'tampered.tsr',
      '-CAfile',
      'tsa-root.pem',
    ]);
    expect(result.ok).toBe(false);
    expect(result.output).toMatch(/Verification: FAILED|digest|signature/i);

    const otherData = await workspace.tryOpenssl([
      'ts',
      '-verify',
      '-data',
      'other.bin',
      '-in',
      'tamper.tsr',
      '-CAfile',
      'tsa-root.pem',
    ]);
    expect(otherData.ok).toBe(false);
    expect(otherData.output).toMatch(/message imprint mismatch/i);
    // The untampered token still verifies: the failure above is the tampering.
    expect(
      (
        await workspace.tryOpenssl([
          'ts',
          '-verify',
          '-data',
          'artifact.bin',
          '-in',
          'tamper.tsr',
          '-CAfile',
          'tsa-root.pem',
        ])
      ).ok,
    ).toBe(true);
  });

  it('hands out strictly increasing serials, sequentially and under concurrency, and audits each timestamp', async () => {
    // TimeStampResp → ContentInfo → SignedData → encapContentInfo → eContent → TSTInfo.serialNumber, walked
    // with the plain DER reader (pkijs is too slow for 74 tokens under jest's transform).
    const serialOf = (der: Buffer): bigint => {
      const [, token] = readChildren(readSingle(der, 0x30));
      const signedData = readSingle(readChildren(token)[1].content, 0x30);
      const encapsulated = readChildren(signedData)[2];
      const eContent = readSingle(readChildren(encapsulated)[1].content, 0x04);
      const serial = readChildren(readSingle(eContent.content, 0x30))[3];
      return BigInt('0x' + serial.content.toString('hex'));
    };
    const before = await storedState();
    const sequential: bigint[] = [];
    for (let i = 0; i < 10; i++)
      sequential.push(serialOf((await post(buildQuery({ nonce: BigInt(i + 1) }))).rawPayload));
    for (let i = 1; i < sequential.length; i++) expect(sequential[i]).toBeGreaterThan(sequential[i - 1]);

    const concurrent = await Promise.all(
      Array.from({ length: 64 }, (_, i) => post(buildQuery({ nonce: BigInt(1000 + i) }))),
    );
    const serials = concurrent.map((r) => serialOf(r.rawPayload));
    expect(new Set(serials.map(String)).size).toBe(64);
    expect(serials.every((s) => s > sequential[9])).toBe(true);

    const after = await storedState();
    expect(after.audited - before.audited).toBe(74);
    const [last] = await query<{
      subject: string;
      data: Record<string, unknown>;
      actor: Record<string, unknown> | null;
    }>(database.url, `SELECT subject, data, actor FROM audit_events WHERE type = 'tsa.timestamp' AND subject = $1`, [
      sequential[9].toString(),
    ]);
    expect(last.data).toMatchObject({
      serial: sequential[9].toString(),
      hashAlgorithm: 'SHA-256',
      imprint: 'ab'.repeat(32),
      nonce: '10',
      certReq: false,
      policy: config.tsa.policyOid,
      tsaGeneration: `${DEV_TSA_CA}-g1`,
    });
    expect(last.actor).toMatchObject({ address: '127.0.0.1' });
  });

  it.each([
    [
      'random bytes',
      () => Buffer.from('5c0a9e7713f1d2b48866aa01fe3c9d5e7b2e10c4', 'hex'),
      'the data submitted has the wrong format',
    ],
    [
      'an unknown hash algorithm',
      () => buildQuery({ hashOid: '1.2.3.4.5' }),
      'unrecognized or unsupported algorithm identifier',
    ],
    [
      'an oversized query',
      () => Buffer.concat([buildQuery(), Buffer.alloc(600)]),
      'the data submitted has the wrong format',
    ],
  ])('answers %s with a rejection and stores nothing', async (_name, body, failure) => {
    const before = await storedState();
    const response = await post(body());
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/timestamp-reply');
    workspace.write('rejected.tsr', response.rawPayload);
    const text = await workspace.openssl(['ts', '-reply', '-in', 'rejected.tsr', '-text']);
    expect(text).toContain('Status: Rejected.');
    expect(text).toContain(`Failure info: ${failure}`);
    expect(text).toContain('TST info:\nNot included.');
    expect(await storedState()).toEqual(before);
  });

  it('answers an OpenSSL -sha1 query with a rejection (badAlg)', async () => {
    const text = await timestamp('sha1', ['-sha1', '-cert']);
    expect(text).toContain('Status: Rejected.');
    expect(text).toContain('Failure info: unrecognized or unsupported algorithm identifier');
  });

  it('answers a body above the server limit with 413 and a foreign content type with 415, in the error shape', async () => {
    const tooLarge = await post(Buffer.alloc(5000, 0x30));
    expect(tooLarge.statusCode).toBe(413);
    expect(tooLarge.json().error.code).toBe('PAYLOAD_TOO_LARGE');
    const wrongType = await post(buildQuery(), 'application/octet-stream');
    expect(wrongType.statusCode).toBe(415);
    expect(wrongType.json().error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('issues the TSA certificate with EKU timeStamping only (critical) under a self-signed TSA root, keys in the HSM', async () => {
    const certificate = new x509.X509Certificate(tsaCertificate);
    const eku = certificate.extensions.find((e) => e.type === '2.5.29.37')!;
    expect(eku.critical).toBe(true);
    expect(new x509.ExtendedKeyUsageExtension(eku.rawData).usages).toEqual(['1.3.6.1.5.5.7.3.8']);
    const keyUsage = certificate.getExtension(x509.KeyUsagesExtension)!;
    expect(keyUsage.critical).toBe(true);
    expect(keyUsage.usages).toBe(x509.KeyUsageFlags.digitalSignature);
    expect(certificate.getExtension(x509.BasicConstraintsExtension)?.ca ?? false).toBe(false);

    const root = new x509.X509Certificate(tsaRoot);
    expect(root.subject).toBe(root.issuer);
    expect(await root.isSelfSigned()).toBe(true);
    expect(certificate.issuer).toBe(root.subject);
    expect(await certificate.verify({ publicKey: root.publicKey, signatureOnly: true })).toBe(true);
    expect(root.getExtension(x509.BasicConstraintsExtension)).toMatchObject({ ca: true, critical: true });
    expect(root.extensions.find((e) => e.type === '2.5.29.37')).toBeUndefined();
    expect(
      await workspace.openssl(['verify', '-CAfile', 'tsa-root.pem', '-purpose', 'timestampsign', 'tsa.pem']),
    ).toContain('tsa.pem: OK');

    const cas = app.get(CaService);
    const keyStore = app.get<KeyStore>(KEY_STORE);
    for (const [name, spec] of [
      [DEV_TSA_ROOT_CA, 'EC-384'],
      [DEV_TSA_CA, 'EC-256'],
    ] as const) {
      const generation = await cas.activeGeneration((await cas.byName(name)).id);
      expect(generation.keyUri).toMatch(/^pkcs11:/);
      expect((await keyStore.describeKey(generation.keyUri)).spec).toBe(spec);
    }
  });

  it('lists the TSA root (not the code-signing root) for truststore bundles', async () => {
    const roots = await tsa.tsaRootCertificates();
    expect(roots.map((r) => r.generation)).toEqual([`${DEV_TSA_ROOT_CA}-g1`]);
    expect(roots[0]).toMatchObject({ caName: DEV_TSA_ROOT_CA, state: 'active' });
    expect(roots[0].pem).toMatch(/^-----BEGIN CERTIFICATE-----\n/);
    expect(roots[0].der).toEqual(tsaRoot);
    expect((await app.get(CaService).list()).some((ca) => ca.kind === 'root')).toBe(true);
  });

  it('runs the dev TSA bootstrap idempotently', async () => {
    const cas = app.get(CaService);
    const before = (await cas.list()).length;
    await app.get(DevTsaBootstrap).run();
    expect((await cas.list()).length).toBe(before);
  });

  it('reports the clock in /readyz, healthy unless a source says unsynchronised', async () => {
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    const clock = (response.statusCode === 200 ? response.json().checks : response.json().error.details.checks).clock;
    expect(clock).toBeDefined();
    expect(clock.ok).toBe(clock.synchronised !== false);
    if (clock.synchronised === 'unknown') expect(clock.source).toBeNull();
  });

  it('withholds the token when the audit event cannot be written (fail closed)', async () => {
    const failing = new TsaService(
      app.get(TsaRepository),
      app.get<SignerFactory>(SIGNER_FACTORY),
      config,
      app.get(TsaSerialAllocator),
      app.get(ClockSyncProbe),
      { timestampIssued: () => Promise.reject(new DomainError(ErrorCode.DATABASE_UNAVAILABLE, 'audit down')) },
      app.get(CaRepository),
    );
    await expect(failing.respond(buildQuery())).rejects.toThrow('audit down');
  });
});
