import { Inject, Injectable, Logger } from '@nestjs/common';
import { hash as cryptoHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { AuditService } from '../audit/audit.service';
import type { AuditActor } from '../audit/audit.types';
import type { Principal } from '../auth/principal';
import { DomainError, ErrorCode } from '../common/errors';
import { HashAlgorithm, nodeHashName } from '../pki/key-spec';
import { ecdsaRawToDer } from '../hsm/ecdsa-signature';
import { type KeySigner, SIGNER_FACTORY, type SignerFactory } from '../hsm/signer-factory';
import { ActiveKey, ActiveKeyCache } from './active-key-cache';
import { IdempotencyStore, requestFingerprint } from './idempotency.store';
import { readNotarySigningInput } from './notary-signing-input';
import { PromotionPolicy } from './promotion.policy';
import { ArtifactRef, ArtifactSource, checkAgainstKey, parseSignRequest, SignRequest } from './sign-request';
import { SigningMetrics } from './signing.metrics';

/** A request checked against its key: nothing left to refuse but promotion. */
interface PreparedSign {
  key: ActiveKey;
  hash: HashAlgorithm;
  digest: Buffer;
  artifact?: ArtifactRef;
  /** `payload`: read from the signed bytes (the only kind promotion counts); `claimed`: the client's `artifact`. */
  artifactSource?: ArtifactSource;
}

/** Per request: what the metrics need to know however the request ends. */
interface SignContext {
  key?: ActiveKey;
  replayed?: boolean;
}

/**
 * `POST /v1/keys/{name}/sign` (API.md): checks the request completely before the HSM is touched,
 * signs with the key's single active version, and returns the signature only after its audit row
 * is committed — a database that cannot take the row means 503 and no signature (fail closed).
 *
 * Per request, beyond the audit write, the database is asked only for what the request uses:
 * promotion (keys with `requires`), the artifact record (requests naming an artifact) and
 * idempotency (requests with an `idempotencyKey`). The active version comes from ActiveKeyCache.
 */
@Injectable()
export class SigningService {
  private readonly logger = new Logger(SigningService.name);
  /** One request per I/O callback: the signing threads get the whole poll's requests in one message. */
  private readonly signer: KeySigner;

  constructor(
    private readonly keys: ActiveKeyCache,
    @Inject(SIGNER_FACTORY) signers: SignerFactory,
    private readonly audit: AuditService,
    private readonly promotion: PromotionPolicy,
    private readonly idempotency: IdempotencyStore,
    private readonly metrics: SigningMetrics,
  ) {
    this.signer = signers.keySigner({ flushAtCheckPhase: true });
  }

  /** Returns the response body as JSON text (precomputed parts; replays return the stored text). */
  async sign(keyName: string, body: unknown, principal: Principal): Promise<string> {
    const started = performance.now();
    const context: SignContext = {};
    try {
      const request = parseSignRequest(body);
      const json =
        request.idempotencyKey === undefined
          ? await this.signOnce(keyName, request, principal, context)
          : await this.signIdempotent(keyName, request, principal, context);
      this.metrics.signed(context.key?.keyName ?? keyName, (performance.now() - started) / 1000, context.replayed);
      return json;
    } catch (error) {
      this.metrics.failed(context.key?.keyName, error, (performance.now() - started) / 1000);
      throw error;
    }
  }

  private async signIdempotent(
    keyName: string,
    request: SignRequest,
    principal: Principal,
    context: SignContext,
  ): Promise<string> {
    const idempotencyKey = request.idempotencyKey!;
    // Invalid input is refused before the idempotency table is touched.
    const active = (await this.prepare(keyName, request)).key;
    context.key = active;
    const claim = await this.idempotency.claim(principal.tokenId, idempotencyKey, requestFingerprint(keyName, request));
    if (claim.kind === 'replay') {
      // The stored answer was made by the version active then. Once that version may no longer
      // sign (rotated, retired, revoked), the old answer is refused too: a revoked version's
      // signature must not come back. The active version is the one prepare() just read from the
      // cache; read again only if a change to the key was announced while the claim was made.
      const current = active.stale ? await this.keys.get(keyName) : active;
      const storedVersion = keyVersionOf(claim.response);
      if (storedVersion !== current.version) {
        throw new DomainError(
          ErrorCode.VERSION_CANNOT_SIGN,
          `sign: the idempotencyKey's answer was signed by version ${storedVersion} of "${keyName}", which may no longer sign; use a new idempotencyKey`,
          {
            field: 'idempotencyKey',
            key: keyName,
            version: storedVersion,
            activeVersion: current.version,
          },
        );
      }
      context.replayed = true;
      return claim.response;
    }
    let json: string;
    try {
      json = await this.signOnce(keyName, request, principal, context);
    } catch (error) {
      await this.idempotency.release(principal.tokenId, idempotencyKey).catch(() => undefined);
      throw error;
    }
    // Stored before it is sent: a retry after a lost answer gets this same signature.
    await this.idempotency.complete(principal.tokenId, idempotencyKey, json);
    return json;
  }

  private async signOnce(
    keyName: string,
    request: SignRequest,
    principal: Principal,
    context: SignContext,
    attempt = 1,
  ): Promise<string> {
    // No await on the hot path when the key is cached and has no promotion rule.
    const { key, hash, digest, artifact, artifactSource } = this.prepareWith(
      this.keys.peek(keyName) ?? (await this.keys.get(keyName)),
      request,
    );
    context.key = key;
    // A claimed artifact is the client's word: it never satisfies promotion.
    const promotion = this.promotion.check(key, artifactSource === 'payload' ? artifact : undefined);
    if (promotion) await promotion;

    let signature = await this.signer.sign(key.keyUri, digest, { hash });
    if (request.signatureFormat === 'der') signature = ecdsaRawToDer(signature);
    const signatureB64 = signature.toString('base64');

    const seq = await this.audit.recordSign(actorFor(principal, key.keyName), key.keyName, {
      version: key.version,
      keySpec: key.spec,
      algorithm: key.info.signingAlgorithm,
      digest: `${nodeHashName(hash)}:${digest.toString('hex')}`,
      mode: request.mode,
      signatureFormat: request.signatureFormat,
      signature: signatureB64,
      artifact: artifact ?? null,
      artifactSource,
      idempotencyKey: request.idempotencyKey,
    });
    // Only what Signet read from the bytes it signed is evidence for a later promotion.
    if (artifact && artifactSource === 'payload') await this.promotion.record(key, artifact, seq);

    if (key.stale) {
      // The key changed (rotation, retirement, revocation) while this request was signing: return
      // the signature only if the version that made it is still the active one.
      let current: ActiveKey;
      try {
        current = await this.keys.get(keyName);
      } catch (error) {
        await this.withhold(key, seq, principal);
        throw error;
      }
      if (current.versionId !== key.versionId) {
        await this.withhold(key, seq, principal);
        if (attempt > 1)
          throw new DomainError(ErrorCode.SERVICE_UNAVAILABLE, 'sign: the key is changing; retry', {
            retryAfterSeconds: 1,
          });
        return this.signOnce(keyName, request, principal, context, attempt + 1);
      }
    }

    let json = key.responseHead + signatureB64 + key.responseChain;
    if (artifact) json += `,"artifact":${JSON.stringify(artifact)}`;
    return `${json}}`;
  }

  /** A signature made and audited but not returned: say so in the log (best effort; the sign row stands). */
  private async withhold(key: ActiveKey, seq: string, principal: Principal): Promise<void> {
    this.logger.warn(
      `key ${key.keyName}: version ${key.version} stopped being active during a sign request; signature withheld`,
    );
    await this.audit
      .record({
        type: 'sign.withheld',
        actor: actorFor(principal, key.keyName),
        subject: key.keyName,
        data: { version: key.version, seq, reason: 'the key version stopped being active while signing' },
      })
      .catch(() => undefined);
  }

  /** Every check that needs the key, in order; none touches the HSM. */
  private async prepare(keyName: string, request: SignRequest): Promise<PreparedSign> {
    return this.prepareWith(await this.keys.get(keyName), request);
  }

  private prepareWith(key: ActiveKey, request: SignRequest): PreparedSign {
    const hash = checkAgainstKey(request, key.info);
    if (key.notAfterMs !== null && key.notAfterMs <= Date.now()) {
      throw new DomainError(
        ErrorCode.NO_ACTIVE_VERSION,
        `sign: the certificate of key "${key.keyName}" version ${key.version} has expired; rotate the key`,
        {
          key: key.keyName,
          version: key.version,
        },
      );
    }
    let artifact = request.artifact;
    let artifactSource: ArtifactSource | undefined = artifact ? 'claimed' : undefined;
    let digest: Buffer;
    if (request.mode === 'payload') {
      const input = readNotarySigningInput(request.bytes, key.info);
      if (input?.artifact) {
        if (artifact && artifact.digest !== input.artifact.digest) {
          throw new DomainError(
            ErrorCode.VALIDATION_ERROR,
            `sign: 'artifact.digest' differs from the targetArtifact of the ${input.format === 'jws' ? 'JWS' : 'COSE'} payload`,
            { field: 'artifact.digest' },
          );
        }
        artifact = input.artifact;
        artifactSource = 'payload';
      }
      digest = cryptoHash(nodeHashName(hash), request.bytes, 'buffer');
    } else {
      // A digest says nothing Signet can check about what was hashed.
      if (key.requires.length > 0) {
        throw new DomainError(
          ErrorCode.PAYLOAD_REQUIRED,
          `sign: key "${key.keyName}" signs only payloads Signet reads the artifact from (a Notary JWS signing input or COSE Sig_structure), not digests`,
          { key: key.keyName, field: 'digest' },
        );
      }
      digest = request.bytes;
    }
    return { key, hash, digest, artifact, artifactSource };
  }
}

/** keyVersion of a stored sign response (Signet's own JSON: ActiveKey.responseHead). */
function keyVersionOf(response: string): number {
  const version = (JSON.parse(response) as { keyVersion?: unknown }).keyVersion;
  if (typeof version !== 'number') throw new Error('stored sign response without keyVersion');
  return version;
}

/** Who signed with `keyName`, as the audit row records it (a workload identity names its rule). */
function actorFor(principal: Principal, keyName: string): AuditActor {
  return principal.auditActorFor ? principal.auditActorFor(keyName) : principal.auditActor;
}
