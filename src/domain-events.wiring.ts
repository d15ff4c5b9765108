import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { DomainEventBus } from './common/domain-events';
import { SIGNET_CONFIG, SignetConfig } from './config/config';
import { DistributionScheduler } from './distribution/distribution-scheduler.service';
import { OcspService } from './revocation/ocsp.service';
import { RotationScheduler } from './rotation/rotation.scheduler';
import { RevocationInvalidation } from './signing/revocation-invalidation';
import { TruststoreVersionsService } from './truststore/truststore-versions.service';
import { TsaService } from './tsa/tsa.service';

/**
 * Who reacts to what, in one place. Publishers (ca, keys, revocation, crl, truststore services) know no
 * subscriber; `DomainEventBus` runs the subscribers of an event in the order they are listed here,
 * each awaited. Events published inside a transaction (`*.revoking`, `*.created`, `*.activated`)
 * hand subscribers its EntityManager: their NOTIFYs are delivered to every replica on commit, and
 * a failure rolls the change back. `certificate.revoked` comes after the commit: a failure there is
 * logged and the next subscriber still runs. `crl.published` also comes after the commit, but a
 * failure there rejects the CRL rebuild that published it (its one subscriber catches its own).
 * docs/architecture.md tells the resulting flows.
 */
@Injectable()
export class DomainEventsWiring implements OnModuleInit {
  constructor(
    private readonly events: DomainEventBus,
    private readonly ocsp: OcspService,
    private readonly signingInvalidation: RevocationInvalidation,
    private readonly rotationScheduler: RotationScheduler,
    private readonly distribution: DistributionScheduler,
    private readonly truststoreVersions: TruststoreVersionsService,
    private readonly tsa: TsaService,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
  ) {}

  onModuleInit(): void {
    const { events } = this;

    // Revocation (revocation/revocation.service.ts). In the revoking transaction: announce to
    // every replica's OCSP cache and active-key cache; after commit: drop this replica's entries
    // at once, then start the emergency rotation of the revoked key.
    events.subscribe('certificate.revoking', ({ certificate, manager }) =>
      this.ocsp.announceRevoking(certificate.serial, manager),
    );
    events.subscribe('certificate.revoking', ({ certificate, manager }) =>
      this.signingInvalidation.announceRevoking(certificate, manager),
    );
    events.subscribe('certificate.revoked', ({ certificate }) => this.ocsp.dropRevoked(certificate.serial));
    events.subscribe('certificate.revoked', ({ certificate }) => this.signingInvalidation.dropRevoked(certificate));
    events.subscribe('certificate.revoked', ({ certificate }) => this.rotationScheduler.onRevoked(certificate));

    // CAs (ca/ca-creation.service.ts, rotation/ca-rollover.steps.ts through ca/ca.service.ts): truststores on every replica rebuild
    // on commit. A root rollover's new generation enters truststores while still pending; the old
    // one may leave once retired.
    events.subscribe('ca.created', ({ ca, manager }) =>
      this.distribution.announceTruststoreChange(manager, `ca:${ca.name}`),
    );
    events.subscribe('ca.generation.created', ({ ca, manager }) =>
      this.distribution.announceTruststoreChange(manager, `ca:${ca.name}`),
    );
    events.subscribe('ca.generation.activated', ({ ca, manager }) =>
      this.distribution.announceTruststoreChange(manager, `ca:${ca.name}`),
    );
    // A TSA renewal run by this process: /tsa signs with the new generation once it is committed.
    events.subscribe('ca.generation.activated', ({ ca, generation }) => {
      if (ca.name === this.config.tsa.caName) this.tsa.expectGeneration(generation.id);
    });

    // Keys (keys/key-versions.service.ts): a new key is a new trusted identity in Notation trust policies.
    events.subscribe('key.created', ({ key, manager }) =>
      this.distribution.announceTruststoreChange(manager, `key:${key.name}`),
    );

    // CRLs (revocation/crl.service.ts), after the CRL's commit: a server rebuilds its truststores
    // (they carry the CRLs); a CLI process announces the CRL to the servers.
    events.subscribe('crl.published', () => this.distribution.onCrlPublished());

    // Truststores (truststore/truststore-versions.service.ts): every replica's reconciler pushes the new version.
    events.subscribe('truststore.version.created', ({ truststore, manager }) =>
      this.distribution.announceTruststoreVersion(manager, truststore.name),
    );

    // Not an event: the truststore needs this done before it reads CRLs (it builds the first CRL
    // of a generation that has none), so it stays a direct call the truststore makes and awaits.
    this.truststoreVersions.addPreparer((generations) => this.distribution.ensureCrls(generations));
  }
}
