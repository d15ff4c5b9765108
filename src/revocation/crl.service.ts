import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { Interval } from '@nestjs/schedule';
import { DataSource, EntityManager } from 'typeorm';
import { CaGenerationEntity } from '../ca/ca-generation.entity';
import { CaService } from '../ca/ca.service';
import { buildCrl, CrlEntry } from '../pki';
import { EXTERNAL_KEY_URI } from '../ca/ca.service';
import { RevocationRepository } from './revocation.repository';
import { DomainEventBus } from '../common/domain-events';
import { DomainError, ErrorCode } from '../common/errors';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';

const HOUR_MS = 3_600_000;
/** A burst of revocations within this window becomes one CRL rebuild. */
export const CRL_COALESCE_MS = 1000;

export interface CrlPublishedEvent {
  generation: CaGenerationEntity;
  crlNumber: bigint;
  entryCount: number;
}

declare module '../common/domain-events' {
  interface DomainEvents {
    /** After the CRL's commit; `rebuild` awaits every subscriber, and a failing one rejects it. */
    'crl.published': CrlPublishedEvent;
  }
}

/**
 * CRLs per CA key generation: signed by that generation's HSM key, monotonic cRLNumber, rebuilt
 * on revocation (coalesced) and on a schedule before half their validity has passed, so they never
 * lapse. Entries are read in pages and encoded as they arrive (100,000 entries fit).
 */
@Injectable()
export class CrlService implements OnModuleDestroy {
  private readonly logger = new Logger(CrlService.name);
  private readonly pending = new Map<string, { timer: NodeJS.Timeout; done: Promise<void>; resolve: () => void }>();
  private readonly cache = new Map<string, { der: Buffer; until: number }>();

  constructor(
    private readonly dataSource: DataSource,
    private readonly cas: CaService,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    private readonly revocations: RevocationRepository,
    private readonly events: DomainEventBus,
  ) {}

  private get validityMs(): number {
    return this.config.pki.crlValidityHours * HOUR_MS;
  }

  /** Coalesces rebuild requests for a generation; resolves when the CRL that includes them is stored. */
  scheduleRebuild(generationId: string): Promise<void> {
    const existing = this.pending.get(generationId);
    if (existing) return existing.done;
    let resolve!: () => void;
    const done = new Promise<void>((r) => (resolve = r));
    const timer = setTimeout(() => {
      this.pending.delete(generationId);
      this.rebuild(generationId)
        .catch((error) =>
          this.logger.error(`CRL rebuild for generation ${generationId} failed: ${(error as Error).message}`),
        )
        .finally(resolve);
    }, CRL_COALESCE_MS);
    this.pending.set(generationId, { timer, done, resolve });
    return done;
  }

  /** Resolves once no coalesced rebuild is waiting or running (rebuilds scheduled meanwhile included). */
  async whenIdle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending.values()].map((rebuild) => rebuild.done));
  }

  /** Builds, signs and stores the next CRL of a generation. Replicas serialise on the row lock. */
  async rebuild(
    generationId: string,
    options: { onlyIfDue?: boolean; now?: Date } = {},
  ): Promise<CrlPublishedEvent | undefined> {
    const event = await this.dataSource.transaction(async (manager) => {
      const generation = await this.revocations.lockGenerationForCrl(manager, generationId);
      // A generation without a key here (an offline root) publishes its CRL elsewhere.
      if (!generation?.certificate || generation.keyUri === EXTERNAL_KEY_URI) return undefined;
      if ((await this.revocations.caKind(manager, generation.caId)) === 'tsa') return undefined;
      const now = options.now ?? new Date();
      if (
        options.onlyIfDue &&
        !(await this.revocations.isCrlDue(manager, generation.id, now, this.config.pki.crlValidityHours))
      )
        return undefined;
      const issuer = await this.cas.issuerFor(generation);
      const crlNumber = BigInt(generation.crlNumber) + 1n;
      const built = await buildCrl({
        issuer,
        crlNumber,
        thisUpdate: now,
        nextUpdate: new Date(now.getTime() + this.validityMs),
        entries: this.revokedEntries(manager, generation.id),
      });
      await this.revocations.storeCrl(manager, generation.id, {
        crlNumber: crlNumber.toString(),
        der: built.der,
        thisUpdate: built.thisUpdate,
        nextUpdate: built.nextUpdate,
      });
      generation.crl = built.der;
      generation.crlNumber = crlNumber.toString();
      return { generation, crlNumber, entryCount: built.entryCount };
    });
    if (event) {
      this.cache.delete(event.generation.name);
      this.logger.log(`published CRL #${event.crlNumber} of ${event.generation.name} (${event.entryCount} entries)`);
      await this.events.publish('crl.published', event);
    }
    return event;
  }

  private async *revokedEntries(manager: EntityManager, generationId: string): AsyncGenerator<CrlEntry> {
    for await (const row of this.revocations.revokedCertificates(manager, generationId)) {
      yield {
        serialHex: row.serial,
        revokedAt: row.revoked_at,
        reason: row.revocation_reason ?? undefined,
        invalidityDate: row.invalidity_date ?? undefined,
      };
    }
  }

  /** The current CRL (DER) of a generation, built on first request. */
  async current(generationName: string): Promise<Buffer> {
    const cached = this.cache.get(generationName);
    if (cached && cached.until > Date.now()) return cached.der;
    let generation = await this.cas.generationByName(generationName);
    if (!generation.crl || (generation.crlNextUpdate && generation.crlNextUpdate.getTime() <= Date.now())) {
      await this.rebuild(generation.id, { onlyIfDue: true });
      generation = await this.cas.generationByName(generationName);
    }
    if (!generation.crl) throw new DomainError(ErrorCode.NOT_FOUND, `no CRL is published here for ${generationName}`);
    this.cache.set(generationName, { der: generation.crl, until: Date.now() + 2000 });
    return generation.crl;
  }

  /** Every generation that still has unexpired certificates below it keeps a fresh CRL. */
  @Interval('crl-refresh', 60_000)
  async refreshDue(now = new Date()): Promise<number> {
    const due = await this.revocations.generationIdsWithCrlDue(now, this.config.pki.crlValidityHours);
    let rebuilt = 0;
    for (const id of due) {
      try {
        if (await this.rebuild(id, { onlyIfDue: true, now })) rebuilt++;
      } catch (error) {
        this.logger.error(`scheduled CRL refresh of ${id} failed: ${(error as Error).message}`);
      }
    }
    return rebuilt;
  }

  /** Pending (coalesced) rebuilds run now rather than being lost with the process. */
  async onModuleDestroy(): Promise<void> {
    const pending = [...this.pending.entries()];
    this.pending.clear();
    await Promise.all(
      pending.map(async ([generationId, { timer, resolve }]) => {
        clearTimeout(timer);
        await this.rebuild(generationId).catch((error) =>
          this.logger.error(`CRL rebuild at shutdown failed: ${(error as Error).message}`),
        );
        resolve();
      }),
    );
  }
}
