import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { Counter } from 'prom-client';
import { CaGenerationState } from '../ca/ca-generation.entity';
import { CaRepository } from '../ca/ca.repository';
import {
  derToPem,
  encodeRejectionResponse,
  parseTimestampRequest,
  PkiFailureInfo,
  TimestampRejection,
  TimestampRequest,
  TimestampTokenBuilder,
} from '../pki';
import { DomainError, ErrorCode } from '../common/errors';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { SIGNER_FACTORY, SignerFactory } from '../hsm/signer-factory';
import { MetricsService } from '../observability/metrics.service';
import { ClockSyncProbe } from './clock-sync.probe';
import { TsaSerialAllocator } from './tsa-serial.allocator';
import { TSA_EVENT_SINK, TsaEventSink } from './tsa-event-sink';
import { TsaRepository } from './tsa.repository';

/** Injection token of the TSA's time source (epoch ms); tests bind a fixed clock. */
export const TSA_TIME = Symbol('TSA_TIME');
export type TsaTime = () => number;

/** How long the active TSA generation is trusted from memory; a renewal is picked up within it. */
const CONTEXT_REFRESH_MS = 30_000;

export type TsaReply =
  | { granted: true; der: Buffer; serial: bigint; genTime: Date }
  | { granted: false; der: Buffer; failInfo: PkiFailureInfo; reason: string };

/** A TSA root certificate for truststore bundles (Notation `tsa` stores, PEM bundles). */
export interface TsaRootCertificate {
  caName: string;
  /** CA key generation name, e.g. `signet-dev-tsa-root-g1`. */
  generation: string;
  state: CaGenerationState;
  der: Buffer;
  pem: string;
  notBefore: Date | null;
  notAfter: Date | null;
}

interface SigningContext {
  generationId: string;
  generationName: string;
  builder: TimestampTokenBuilder;
}

/**
 * RFC 3161 time-stamping: answers a TimeStampReq with a token signed in the HSM by the active key
 * generation of the configured `tsa` CA. Malformed or unacceptable queries get a `rejection`
 * response; only failures of the service itself (database, HSM, audit, no TSA configured) are
 * thrown as DomainErrors (503).
 */
@Injectable()
export class TsaService {
  private readonly logger = new Logger('Tsa');
  private context?: SigningContext;
  private contextCheckedAt = -Infinity;
  private loading?: Promise<SigningContext>;
  /** A generation this process just activated: looked for on every request until it is seen. */
  private expected?: { generationId: string; until: number };
  private readonly responses?: Counter<'status'>;
  private readonly now: TsaTime;

  constructor(
    private readonly tsa: TsaRepository,
    @Inject(SIGNER_FACTORY) private readonly signers: SignerFactory,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    private readonly serials: TsaSerialAllocator,
    private readonly clockSync: ClockSyncProbe,
    @Inject(TSA_EVENT_SINK) private readonly events: TsaEventSink,
    private readonly cas: CaRepository,
    @Optional() metrics?: MetricsService,
    @Optional() @Inject(TSA_TIME) now?: TsaTime,
  ) {
    this.now = now ?? Date.now;
    if (metrics) {
      const name = 'signet_tsa_responses_total';
      this.responses =
        (metrics.registry.getSingleMetric(name) as Counter<'status'> | undefined) ??
        new Counter({
          name,
          help: 'RFC 3161 responses by PKIStatus (granted) or failure info',
          labelNames: ['status'],
          registers: [metrics.registry],
        });
    }
  }

  /** Answers one DER TimeStampReq with a DER TimeStampResp. */
  async respond(query: Buffer | undefined, clientAddress?: string): Promise<TsaReply> {
    let request: TimestampRequest;
    try {
      request = parseTimestampRequest(query, this.config.tsa.maxQueryBytes);
      if (request.reqPolicy !== undefined && request.reqPolicy !== this.config.tsa.policyOid) {
        throw new TimestampRejection(
          'unacceptedPolicy',
          `policy ${request.reqPolicy} is not offered; this TSA issues under ${this.config.tsa.policyOid}`,
        );
      }
      // A clock the host says is unsynchronised must not be signed as the truth (RFC 3161 timeNotAvailable).
      if (this.clockSync.current().synchronised === false) {
        throw new TimestampRejection('timeNotAvailable', 'the TSA clock is not synchronised');
      }
    } catch (error) {
      if (!(error instanceof TimestampRejection)) throw error;
      this.responses?.inc({ status: error.failInfo });
      return { granted: false, der: encodeRejectionResponse(error), failInfo: error.failInfo, reason: error.message };
    }

    const context = await this.signingContext();
    const serial = await this.serials.next();
    // Read after the serial so that, within a replica, a higher serial never carries an earlier time.
    const genTime = new Date(this.now());
    const { builder } = context;
    if (genTime < builder.notBefore || genTime > builder.notAfter) {
      throw new DomainError(
        ErrorCode.SERVICE_UNAVAILABLE,
        `the TSA certificate of ${context.generationName} is not valid now; renew the TSA CA`,
      );
    }
    const der = await builder.buildGrantedResponse({ request, serial, genTime });
    await this.events.timestampIssued({
      serial: serial.toString(),
      hashAlgorithm: request.hashAlgorithm,
      imprint: request.hashedMessage.toString('hex'),
      genTime: genTime.toISOString(),
      policy: builder.policyOid,
      ...(request.nonce !== undefined ? { nonce: request.nonce.toString() } : {}),
      certReq: request.certReq,
      tsaGeneration: context.generationName,
      tsaCertificateSerial: builder.certificateSerialHex,
      ...(clientAddress ? { clientAddress } : {}),
    });
    this.responses?.inc({ status: 'granted' });
    return { granted: true, der, serial, genTime };
  }

  /** The TSA signing certificate (DER) currently in use, for clients' `-untrusted` / diagnostics. */
  async signingCertificate(): Promise<Buffer> {
    return (await this.signingContext()).builder.certificate;
  }

  /**
   * Every TSA root certificate, for truststore bundles (`truststore/x509/tsa/<store>/` and the PEM
   * bundles' TSA section). Expired and retired generations are included: Notation verifies a
   * timestamp's chain as of its genTime, so a root stays needed as long as signatures timestamped
   * under it are verified. Callers filter if they want fewer.
   */
  async tsaRootCertificates(): Promise<TsaRootCertificate[]> {
    return (await this.cas.certifiedGenerationsOfKind('tsa-root')).map(({ caName, generation }) => ({
      caName,
      generation: generation.name,
      state: generation.state,
      der: generation.certificate,
      pem: derToPem(generation.certificate, 'CERTIFICATE'),
      notBefore: generation.notBefore,
      notAfter: generation.notAfter,
    }));
  }

  /**
   * A renewal in this process activated `generationId` of the TSA CA (its transaction may not have
   * committed yet): sign with it as soon as the database shows it, not after the refresh interval.
   * Other replicas switch within CONTEXT_REFRESH_MS.
   */
  expectGeneration(generationId: string): void {
    this.expected = { generationId, until: performance.now() + CONTEXT_REFRESH_MS };
  }

  /** The signing context of the active TSA generation; a stale one is refreshed in the background. */
  private async signingContext(): Promise<SigningContext> {
    const awaited =
      this.expected &&
      this.context?.generationId !== this.expected.generationId &&
      performance.now() < this.expected.until;
    const fresh = !awaited && performance.now() - this.contextCheckedAt < CONTEXT_REFRESH_MS;
    if (this.context && fresh) return this.context;
    if (!this.loading) {
      this.loading = this.loadContext().finally(() => (this.loading = undefined));
      if (this.context)
        this.loading.catch((error: Error) =>
          this.logger.warn(`could not refresh the TSA generation: ${error.message}`),
        );
    }
    // Keep serving with the current generation while the database is asked for a newer one, unless
    // this process just activated the newer one.
    return awaited ? this.loading : (this.context ?? this.loading);
  }

  private async loadContext(): Promise<SigningContext> {
    const name = this.config.tsa.caName;
    const ca = await this.tsa.caNamed(name);
    if (!ca || ca.kind !== 'tsa') {
      throw new DomainError(
        ErrorCode.SERVICE_UNAVAILABLE,
        `no TSA configured: SIGNET_TSA_CA names '${name}', which is not a CA of kind tsa`,
      );
    }
    const generation = await this.tsa.activeGeneration(ca.id);
    if (!generation?.certificate)
      throw new DomainError(
        ErrorCode.SERVICE_UNAVAILABLE,
        `the TSA CA '${name}' has no active key generation with a certificate`,
      );
    if (this.context?.generationId !== generation.id) {
      const signer = await this.signers.getSigner(generation.keyUri);
      const builder = TimestampTokenBuilder.create({
        certificate: generation.certificate,
        signer,
        policyOid: this.config.tsa.policyOid,
        accuracyMs: this.config.tsa.accuracyMs,
      });
      if (this.context) this.logger.log(`TSA now signs with ${generation.name} (was ${this.context.generationName})`);
      this.context = { generationId: generation.id, generationName: generation.name, builder };
    }
    this.contextCheckedAt = performance.now();
    if (this.expected?.generationId === this.context.generationId) this.expected = undefined;
    return this.context;
  }
}
