import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager, In } from 'typeorm';
import { CaGenerationEntity } from './ca-generation.entity';
import { CaEntity, CaKind } from './ca.entity';

/** A CA key generation with a certificate, and the name of its CA. */
export interface CertifiedGeneration {
  caName: string;
  generation: CaGenerationEntity & { certificate: Buffer };
}

/** The columns a new CA row is given (id and created_at come from the database). */
export type NewCa = Omit<CaEntity, 'id' | 'createdAt'>;
/** The columns a new key generation is given; its CRL columns start empty. */
export type NewCaGeneration = Omit<CaGenerationEntity, 'id' | 'createdAt' | 'crl' | 'crlThisUpdate' | 'crlNextUpdate'>;
/** What an imported chain sets on a pending generation. */
export type ImportedGenerationCertificate = Pick<
  CaGenerationEntity,
  'certificate' | 'chain' | 'serial' | 'parentGenerationId' | 'notBefore' | 'notAfter'
>;

/**
 * Reads and writes of the CA aggregate (CAs and their key generations). Writes take the caller's
 * transaction; reads that callers also make inside one take it as an optional last argument.
 */
@Injectable()
export class CaRepository {
  constructor(private readonly dataSource: DataSource) {}

  nameTaken(name: string): Promise<boolean> {
    return this.dataSource.getRepository(CaEntity).existsBy({ name });
  }

  byName(name: string, manager: EntityManager = this.dataSource.manager): Promise<CaEntity | null> {
    return manager.getRepository(CaEntity).findOneBy({ name });
  }

  byId(id: string): Promise<CaEntity | null> {
    return this.dataSource.getRepository(CaEntity).findOneBy({ id });
  }

  byNames(names: string[]): Promise<CaEntity[]> {
    return this.dataSource.getRepository(CaEntity).findBy({ name: In(names) });
  }

  byIds(ids: string[], manager: EntityManager = this.dataSource.manager): Promise<CaEntity[]> {
    return manager.getRepository(CaEntity).findBy({ id: In(ids) });
  }

  /** Every CA, oldest first. */
  all(): Promise<CaEntity[]> {
    return this.dataSource.getRepository(CaEntity).find({ order: { createdAt: 'ASC' } });
  }

  /** Every CA of `kind`, oldest first. */
  ofKind(kind: CaKind): Promise<CaEntity[]> {
    return this.dataSource.getRepository(CaEntity).find({ where: { kind }, order: { createdAt: 'ASC' } });
  }

  /** Ids of the CAs directly under any of `parentIds`. */
  async childIds(parentIds: string[], manager: EntityManager = this.dataSource.manager): Promise<string[]> {
    const children = await manager
      .getRepository(CaEntity)
      .find({ select: { id: true }, where: { parentId: In(parentIds) } });
    return children.map((ca) => ca.id);
  }

  insertCa(manager: EntityManager, fields: NewCa): Promise<CaEntity> {
    const repository = manager.getRepository(CaEntity);
    return repository.save(repository.create(fields));
  }

  async setParent(manager: EntityManager, caId: string, parentId: string): Promise<void> {
    await manager.update(CaEntity, { id: caId }, { parentId });
  }

  insertGeneration(manager: EntityManager, fields: NewCaGeneration): Promise<CaGenerationEntity> {
    const repository = manager.getRepository(CaGenerationEntity);
    return repository.save(repository.create(fields));
  }

  /** A pending generation becomes the active one with the certificate an offline root signed. */
  async activateImportedGeneration(
    manager: EntityManager,
    generationId: string,
    certificate: ImportedGenerationCertificate,
  ): Promise<void> {
    await manager.update(CaGenerationEntity, { id: generationId }, { state: 'active', ...certificate });
  }

  /** The generation in state `active` of a CA (it may still lack a certificate), or null. */
  activeGeneration(caId: string, manager: EntityManager = this.dataSource.manager): Promise<CaGenerationEntity | null> {
    return manager.getRepository(CaGenerationEntity).findOneBy({ caId, state: 'active' });
  }

  /** The newest generation of a CA, or only the newest pending one. */
  latestGeneration(caId: string, options: { pending?: boolean } = {}): Promise<CaGenerationEntity | null> {
    return this.dataSource.getRepository(CaGenerationEntity).findOne({
      where: { caId, ...(options.pending ? { state: 'pending' as const } : {}) },
      order: { generation: 'DESC' },
    });
  }

  generationByName(name: string): Promise<CaGenerationEntity | null> {
    return this.dataSource.getRepository(CaGenerationEntity).findOneBy({ name });
  }

  generationById(id: string): Promise<CaGenerationEntity | null> {
    return this.dataSource.getRepository(CaGenerationEntity).findOneBy({ id });
  }

  /** A CA's generations in order. */
  generationsOf(caId: string): Promise<CaGenerationEntity[]> {
    return this.dataSource.getRepository(CaGenerationEntity).find({ where: { caId }, order: { generation: 'ASC' } });
  }

  /** Every generation of every CA, in generation order. */
  allGenerations(): Promise<CaGenerationEntity[]> {
    return this.dataSource.getRepository(CaGenerationEntity).find({ order: { generation: 'ASC' } });
  }

  /**
   * Every generation that has a certificate, of every CA of `kind`: CAs oldest first, each CA's
   * generations in order (truststore bundles and the TSA list them in this order).
   */
  async certifiedGenerationsOfKind(kind: CaKind): Promise<CertifiedGeneration[]> {
    const cas = await this.ofKind(kind);
    const result: CertifiedGeneration[] = [];
    for (const ca of cas) {
      const generations = await this.generationsOf(ca.id);
      for (const generation of generations) {
        if (generation.certificate)
          result.push({ caName: ca.name, generation: generation as CertifiedGeneration['generation'] });
      }
    }
    return result;
  }

  /**
   * The generations of the root CAs `caIds` that a truststore holds at `now`: certified and
   * unexpired, and not retired unless an unexpired leaf below it still needs it (NOTARY.md).
   */
  trustedRootGenerations(manager: EntityManager, caIds: string[], now: Date): Promise<CaGenerationEntity[]> {
    return manager
      .getRepository(CaGenerationEntity)
      .createQueryBuilder('g')
      .where('g.ca_id = ANY(:caIds)', { caIds })
      .andWhere('g.certificate IS NOT NULL AND g.not_after > :now', { now })
      .andWhere(
        `(g.state <> 'retired' OR EXISTS (
            SELECT 1 FROM ca_generations i JOIN certificates c ON c.issuer_generation_id = i.id
             WHERE i.parent_generation_id = g.id AND c.not_after > :now))`,
      )
      .getMany();
  }

  /** Certified, unexpired generations issued by any of the generations `parentGenerationIds`. */
  certifiedGenerationsBeneath(
    manager: EntityManager,
    parentGenerationIds: string[],
    now: Date,
  ): Promise<CaGenerationEntity[]> {
    return manager
      .getRepository(CaGenerationEntity)
      .createQueryBuilder('g')
      .where('g.parent_generation_id = ANY(:parentGenerationIds)', { parentGenerationIds })
      .andWhere('g.certificate IS NOT NULL AND g.not_after > :now', { now })
      .getMany();
  }

  /**
   * Certified generations unexpired by the database's clock of the CAs `caIds` and of the CAs
   * beneath them (what a truststore's content draws on).
   */
  unexpiredGenerationsOfAndBeneath(caIds: string[]): Promise<CaGenerationEntity[]> {
    return this.dataSource
      .getRepository(CaGenerationEntity)
      .createQueryBuilder('g')
      .where('g.certificate IS NOT NULL AND g.not_after > now()')
      .andWhere(
        '(g.ca_id = ANY(:caIds) OR g.parent_generation_id IN (SELECT r.id FROM ca_generations r WHERE r.ca_id = ANY(:caIds)))',
        { caIds },
      )
      .getMany();
  }
}
