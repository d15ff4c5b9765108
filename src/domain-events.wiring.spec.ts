import type { EntityManager } from 'typeorm';
import type { CaGenerationEntity } from './ca/ca-generation.entity';
import type { CaEntity } from './ca/ca.entity';
import type { CertificateEntity } from './ca/certificate.entity';
import { DomainEventBus } from './common/domain-events';
import type { SignetConfig } from './config/config';
import type { DistributionScheduler } from './distribution/distribution-scheduler.service';
import { DomainEventsWiring } from './domain-events.wiring';
import type { OcspService } from './revocation/ocsp.service';
import type { RotationScheduler } from './rotation/rotation.scheduler';
import type { RevocationInvalidation } from './signing/revocation-invalidation';
import type { TruststoreVersionsService } from './truststore/truststore-versions.service';
import type { TsaService } from './tsa/tsa.service';

describe(DomainEventsWiring.name, () => {
  const calls: string[] = [];
  const record = (name: string) => async () => void calls.push(name);
  const bus = new DomainEventBus();
  const preparers: unknown[] = [];
  new DomainEventsWiring(
    bus,
    { announceRevoking: record('ocsp.announce'), dropRevoked: record('ocsp.drop') } as unknown as OcspService,
    {
      announceRevoking: record('signing.announce'),
      dropRevoked: record('signing.drop'),
    } as unknown as RevocationInvalidation,
    { onRevoked: record('rotation.emergency') } as unknown as RotationScheduler,
    {
      announceTruststoreChange: async (_manager: EntityManager, what: string) =>
        void calls.push(`distribution.truststore ${what}`),
      announceTruststoreVersion: async (_manager: EntityManager, name: string) =>
        void calls.push(`distribution.version ${name}`),
      onCrlPublished: record('distribution.crl'),
    } as unknown as DistributionScheduler,
    { addPreparer: (preparer: unknown) => preparers.push(preparer) } as unknown as TruststoreVersionsService,
    { expectGeneration: (id: string) => void calls.push(`tsa.expect ${id}`) } as unknown as TsaService,
    { tsa: { caName: 'tsa-ca' } } as SignetConfig,
  ).onModuleInit();
  const manager = {} as EntityManager;
  const certificate = { serial: '01' } as CertificateEntity;
  beforeEach(() => (calls.length = 0));

  it('on a revocation: OCSP, then signing, inside the transaction; after commit OCSP, signing, then the emergency rotation', async () => {
    await bus.publish('certificate.revoking', { certificate, manager });
    await bus.publishEach('certificate.revoked', { certificate }, (error) => {
      throw error;
    });
    expect(calls).toEqual(['ocsp.announce', 'signing.announce', 'ocsp.drop', 'signing.drop', 'rotation.emergency']);
  });

  it('on a CA generation activated: distribution announces first, then the TSA switches if it is its CA', async () => {
    const generation = { id: 'g2' } as CaGenerationEntity;
    await bus.publish('ca.generation.activated', {
      ca: { name: 'tsa-ca' } as CaEntity,
      generation,
      previous: null,
      manager,
    });
    await bus.publish('ca.generation.activated', {
      ca: { name: 'root' } as CaEntity,
      generation,
      previous: null,
      manager,
    });
    expect(calls).toEqual(['distribution.truststore ca:tsa-ca', 'tsa.expect g2', 'distribution.truststore ca:root']);
  });

  it('announces CA, key and truststore changes to distribution, and gives the truststore its CRL preparer', async () => {
    await bus.publish('ca.created', {
      ca: { name: 'root' } as CaEntity,
      generation: {} as CaGenerationEntity,
      manager,
    });
    await bus.publish('ca.generation.created', {
      ca: { name: 'root' } as CaEntity,
      generation: {} as CaGenerationEntity,
      manager,
    });
    await bus.publish('key.created', { key: { name: 'release' }, version: {}, manager } as never);
    await bus.publish('truststore.version.created', { truststore: { name: 'prod' }, version: {}, manager } as never);
    expect(calls).toEqual([
      'distribution.truststore ca:root',
      'distribution.truststore ca:root',
      'distribution.truststore key:release',
      'distribution.version prod',
    ]);
    expect(preparers).toHaveLength(1);
  });

  it('hands a published CRL to distribution (truststores carry the CRLs)', async () => {
    await bus.publish('crl.published', { generation: {} as CaGenerationEntity, crlNumber: 2n, entryCount: 1 });
    expect(calls).toEqual(['distribution.crl']);
  });
});
