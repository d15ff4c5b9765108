import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { CaGenerationEntity } from '../ca/ca-generation.entity';
import { CaService } from '../ca/ca.service';
import {
  createOcspResponder,
  ocspErrorResponse,
  OcspMalformedRequestError,
  OcspResponder,
  ocspResponseForError,
  ParsedOcspRequest,
  parseOcspRequest,
  respondToOcspRequest,
} from '../pki';
import { DomainError, ErrorCode } from '../common/errors';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { ChangeNotifier } from '../database/change-notifier';
import { RevocationService } from './revocation.service';

export const REVOCATION_CHANNEL = 'signet_revocation';

interface CachedResponse {
  der: Buffer;
  /** Reused until half the response's validity has passed. */
  until: number;
}

/**
 * OCSP answers per CA key generation. Nonce-less single-certificate responses (what Notation
 * sends) are cached per serial until a revocation (announced to every replica) or half their
 * validity, so public load does not compete with signing for the HSM; a request with a nonce is
 * signed fresh, as the nonce must be echoed.
 */
@Injectable()
export class OcspService implements OnModuleInit {
  private readonly logger = new Logger(OcspService.name);
  private readonly responders = new Map<
    string,
    { generation: CaGenerationEntity; responder: Promise<OcspResponder>; until: number }
  >();
  private readonly cache = new Map<string, CachedResponse>();
  private cacheHits = 0;
  private signed = 0;

  constructor(
    private readonly cas: CaService,
    private readonly revocations: RevocationService,
    private readonly notifier: ChangeNotifier,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
  ) {}

  onModuleInit(): void {
    this.notifier.on(REVOCATION_CHANNEL, (serial) => this.invalidate(serial));
  }

  /** In the revoking transaction: every replica drops its cached answers for the serial on commit. */
  announceRevoking(serial: string, manager: EntityManager): Promise<void> {
    return this.notifier.notify(manager, REVOCATION_CHANNEL, serial);
  }

  /** After the commit, this replica at once, without waiting for the notification's round trip. */
  dropRevoked(serial: string): void {
    this.invalidate(serial);
  }

  get stats(): { cacheHits: number; signed: number; cached: number } {
    return { cacheHits: this.cacheHits, signed: this.signed, cached: this.cache.size };
  }

  private invalidate(serial: string): void {
    if (serial === '*') {
      this.cache.clear();
      return;
    }
    for (const key of this.cache.keys()) if (key.endsWith(`:${serial}`)) this.cache.delete(key);
  }

  /** Always an OCSP response (DER): errors become OCSP error statuses, never HTTP 5xx. */
  async respond(generationName: string, requestDer: Buffer): Promise<Buffer> {
    let parsed: ParsedOcspRequest;
    try {
      parsed = parseOcspRequest(requestDer);
    } catch (error) {
      return ocspResponseForError(
        error instanceof OcspMalformedRequestError ? error : new OcspMalformedRequestError('unparsable request'),
      );
    }
    let entry;
    try {
      entry = await this.responderFor(generationName);
    } catch (error) {
      if (error instanceof DomainError && error.code === ErrorCode.NOT_FOUND) return ocspErrorResponse('unauthorized');
      this.logger.error(`OCSP responder for ${generationName} unavailable: ${(error as Error).message}`);
      return ocspErrorResponse('tryLater');
    }
    const cacheable = !parsed.nonce && parsed.certIds.length === 1;
    const cacheKey = cacheable
      ? `${generationName}:${parsed.certIds[0].hashAlgorithm}:${parsed.certIds[0].serialHex}`
      : '';
    if (cacheable) {
      const hit = this.cache.get(cacheKey);
      if (hit && hit.until > Date.now()) {
        this.cacheHits++;
        return hit.der;
      }
    }
    const validitySeconds = this.config.pki.ocspValidityMinutes * 60;
    try {
      const der = await respondToOcspRequest(
        await entry.responder,
        parsed,
        (serial) => this.revocations.status(entry.generation.id, serial),
        { validitySeconds },
      );
      this.signed++;
      if (cacheable) {
        if (this.cache.size > 100_000) this.cache.clear();
        this.cache.set(cacheKey, { der, until: Date.now() + (validitySeconds * 1000) / 2 });
      }
      return der;
    } catch (error) {
      this.logger.error(`OCSP response for ${generationName} failed: ${(error as Error).message}`);
      return ocspErrorResponse(
        error instanceof DomainError && error.code === ErrorCode.HSM_UNAVAILABLE ? 'tryLater' : 'internalError',
      );
    }
  }

  private async responderFor(
    generationName: string,
  ): Promise<{ generation: CaGenerationEntity; responder: Promise<OcspResponder> }> {
    const cached = this.responders.get(generationName);
    if (cached && cached.until > Date.now()) return cached;
    const generation = await this.cas.generationByName(generationName);
    const responder = this.cas.issuerFor(generation).then((issuer) => createOcspResponder(issuer));
    const entry = { generation, responder, until: Date.now() + 60_000 };
    responder.catch(() => this.responders.delete(generationName));
    this.responders.set(generationName, entry);
    return entry;
  }
}
