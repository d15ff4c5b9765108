import { Logger } from '@nestjs/common';
import { createHash, generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import type { AuditService } from '../audit/audit.service';
import type { AuditEventInput } from '../audit/audit.types';
import { TokenPrincipal } from '../auth/principal';
import { DomainError, ErrorCode } from '../common/errors';
import { loadConfig } from '../config/config';
import type { ChangeNotifier } from '../database/change-notifier';
import type { SignerFactory } from '../hsm/signer-factory';
import { ActiveKeyCache, ActiveKeyRecord } from './active-key-cache';
import type { IdempotencyStore } from './idempotency.store';
import type { PromotionPolicy } from './promotion.policy';
import { SigningMetrics } from './signing.metrics';
import { SigningService } from './signing.service';
import { notarySigningInput } from '../../test/signing/support/signing-kit';

/**
 * The use case with its collaborators replaced by doubles (the database- and HSM-backed paths are
 * covered by test/signing): ordering (audit before answer, promotion before the HSM), and what
 * happens when the key's active version changes while a request is signing.
 */
describe(SigningService.name, () => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const principal = new TokenPrincipal('00000000-0000-4000-8000-000000000001', 'ci', 'signer', ['release'], '10.0.0.7');
  const digest = createHash('sha256').update('artifact').digest();
  const body = { digest: digest.toString('base64'), hashAlgorithm: 'SHA-256' };

  let active: ActiveKeyRecord;
  let cache: ActiveKeyCache;
  let audited: AuditEventInput[];
  let auditFails: boolean;
  let signed: string[];
  let duringSign: (() => void) | undefined;
  let promotionChecks: number;
  let promotionSaw: unknown[];
  let promotionRecorded: unknown[];
  let service: SigningService;

  const record = (version: number, requires: string[] = []): ActiveKeyRecord => ({
    keyId: 'k',
    keyName: 'release',
    keySpec: 'EC-256',
    requires,
    version: {
      id: `v${version}`,
      version,
      keyUri: `pkcs11:object=release-v${version}`,
      certificate: Buffer.from([version]),
      chain: [Buffer.from([9])],
      notBefore: null,
      notAfter: null,
    },
  });

  beforeAll(() => Logger.overrideLogger(['error']));
  afterAll(() => Logger.overrideLogger(['log', 'error', 'warn', 'debug', 'verbose', 'fatal']));

  beforeEach(() => {
    active = record(1);
    audited = [];
    auditFails = false;
    signed = [];
    duringSign = undefined;
    promotionChecks = 0;
    promotionSaw = [];
    promotionRecorded = [];
    cache = new ActiveKeyCache(
      undefined as never,
      { on: () => undefined } as unknown as ChangeNotifier,
      loadConfig({}),
      { source: async () => active },
    );
    const signers = {
      keySigner: () => ({
        sign: async (uri: string, data: Buffer) => {
          signed.push(uri);
          duringSign?.();
          // DER from Node; the key store contract returns raw r‖s for ECDSA.
          return nodeSign(null, data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
        },
      }),
    } as unknown as SignerFactory;
    const recordEvent = async (event: AuditEventInput) => {
      if (auditFails) throw new DomainError(ErrorCode.DATABASE_UNAVAILABLE, 'the database is unavailable; retry later');
      audited.push(event);
      return { seq: String(audited.length) };
    };
    const audit = {
      record: recordEvent,
      recordSign: async (actor: AuditEventInput['actor'], subject: string, data: Record<string, unknown>) =>
        (await recordEvent({ type: 'sign', actor, subject, data })).seq,
    } as unknown as AuditService;
    const promotion = {
      check: async (key: { requires: readonly string[] }, artifact: unknown) => {
        promotionChecks++;
        promotionSaw.push(artifact);
        if (key.requires.length > 0) throw new DomainError(ErrorCode.PROMOTION_REQUIRED, 'not yet');
      },
      record: async (_key: unknown, artifact: unknown) => {
        promotionRecorded.push(artifact);
      },
    } as unknown as PromotionPolicy;
    service = new SigningService(cache, signers, audit, promotion, {} as IdempotencyStore, new SigningMetrics());
  });

  it('answers with the precomputed response around the signature, after recording the sign event', async () => {
    const json = JSON.parse(await service.sign('release', body, principal));
    expect(json).toEqual({
      keyName: 'release',
      keyVersion: 1,
      keySpec: 'EC-256',
      signingAlgorithm: 'ECDSA-SHA-256',
      signature: expect.any(String),
      certificateChain: ['AQ==', 'CQ=='],
    });
    expect(Buffer.from(json.signature, 'base64')).toHaveLength(64);
    expect(audited).toEqual([
      {
        type: 'sign',
        actor: { tokenId: principal.tokenId, tokenName: 'ci', role: 'signer', address: '10.0.0.7' },
        subject: 'release',
        data: expect.objectContaining({
          version: 1,
          digest: `sha256:${digest.toString('hex')}`,
          signature: json.signature,
          algorithm: 'ECDSA-SHA-256',
          artifact: null,
        }),
      },
    ]);
  });

  it('returns DER on request for ECDSA', async () => {
    const json = JSON.parse(await service.sign('release', { ...body, signatureFormat: 'der' }, principal));
    expect(Buffer.from(json.signature, 'base64')[0]).toBe(0x30);
  });

  it('withholds the signature when its audit row cannot be written (503)', async () => {
    auditFails = true;
    await expect(service.sign('release', body, principal)).rejects.toMatchObject({
      code: ErrorCode.DATABASE_UNAVAILABLE,
    });
    expect(signed).toHaveLength(1);
  });

  it('applies promotion before the HSM is asked, to the artifact read from the payload', async () => {
    active = record(1, ['test-key']);
    const jws = notarySigningInput('EC-256', 'image', new Date());
    const payload = Buffer.from(jws.signingInput).toString('base64');
    await expect(
      service.sign('release', { payload, hashAlgorithm: 'SHA-256', artifact: { digest: jws.digest } }, principal),
    ).rejects.toMatchObject({ code: ErrorCode.PROMOTION_REQUIRED });
    expect(promotionChecks).toBe(1);
    expect(promotionSaw).toEqual([
      { digest: jws.digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: jws.size },
    ]);
    expect(signed).toEqual([]);
  });

  it('refuses digest mode for a key with requires (400 PAYLOAD_REQUIRED), whatever artifact the client claims', async () => {
    active = record(1, ['test-key']);
    await expect(
      service.sign('release', { ...body, artifact: { digest: `sha256:${'a'.repeat(64)}` } }, principal),
    ).rejects.toMatchObject({ code: ErrorCode.PAYLOAD_REQUIRED });
    expect(promotionChecks).toBe(0);
    expect(signed).toEqual([]);
  });

  it('never hands a claimed artifact to promotion: an opaque payload with an artifact field counts as none', async () => {
    active = record(1, ['test-key']);
    const payload = Buffer.from('opaque bytes').toString('base64');
    await expect(
      service.sign(
        'release',
        { payload, hashAlgorithm: 'SHA-256', artifact: { digest: `sha256:${'a'.repeat(64)}` } },
        principal,
      ),
    ).rejects.toMatchObject({ code: ErrorCode.PROMOTION_REQUIRED });
    expect(promotionSaw).toEqual([undefined]);
  });

  it('records a client-sent artifact as claimed, and not as promotion evidence', async () => {
    const artifact = { digest: `sha256:${'b'.repeat(64)}` };
    const json = JSON.parse(await service.sign('release', { ...body, artifact }, principal));
    expect(json.artifact).toEqual(artifact);
    expect(audited[0].data).toMatchObject({ artifact, artifactSource: 'claimed', mode: 'digest' });
    expect(promotionRecorded).toEqual([]);
    const jws = notarySigningInput('EC-256', 'image', new Date());
    await service.sign(
      'release',
      { payload: Buffer.from(jws.signingInput).toString('base64'), hashAlgorithm: 'SHA-256' },
      principal,
    );
    expect(audited[1].data).toMatchObject({
      artifact: { digest: jws.digest },
      artifactSource: 'payload',
      mode: 'payload',
    });
    expect(promotionRecorded).toEqual([
      { digest: jws.digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: jws.size },
    ]);
  });

  it('re-signs with the new active version when the key changed during signing, and records the withheld one', async () => {
    await cache.get('release');
    duringSign = () => {
      duringSign = undefined;
      active = record(2);
      cache.invalidate('release'); // what a KEYS_CHANNEL notification does
    };
    const json = JSON.parse(await service.sign('release', body, principal));
    expect(json.keyVersion).toBe(2);
    expect(signed).toEqual(['pkcs11:object=release-v1', 'pkcs11:object=release-v2']);
    expect(audited.map((e) => [e.type, (e.data as { version: number }).version])).toEqual([
      ['sign', 1],
      ['sign.withheld', 1],
      ['sign', 2],
    ]);
  });

  it('returns the signature when the invalidation turned out not to change the active version', async () => {
    await cache.get('release');
    duringSign = () => {
      duringSign = undefined;
      cache.invalidate('release');
    };
    expect(JSON.parse(await service.sign('release', body, principal)).keyVersion).toBe(1);
    expect(signed).toHaveLength(1);
  });

  it('refuses to sign once the version is gone, after a change during signing', async () => {
    await cache.get('release');
    duringSign = () => {
      duringSign = undefined;
      active = { ...record(1), version: null };
      cache.invalidate('release');
    };
    await expect(service.sign('release', body, principal)).rejects.toMatchObject({ code: ErrorCode.NO_ACTIVE_VERSION });
    expect(audited.map((e) => e.type)).toEqual(['sign', 'sign.withheld']);
  });

  it('refuses an expired certificate without signing', async () => {
    active = record(1);
    active.version!.notAfter = new Date(Date.now() - 1000);
    await expect(service.sign('release', body, principal)).rejects.toMatchObject({ code: ErrorCode.NO_ACTIVE_VERSION });
    expect(signed).toEqual([]);
  });
});
