import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { TruststoreEntity } from './truststore.entity';
import { TruststoreVersionEntity } from './truststore-version.entity';

/** The columns a new truststore is given (id and timestamps come from the database). */
export type NewTruststore = Omit<TruststoreEntity, 'id' | 'createdAt' | 'updatedAt'>;
/** What an update may change of a truststore's settings. */
export type TruststoreSettings = Pick<TruststoreEntity, 'caIds' | 'trustPolicy' | 'trustManager'>;
/** The columns a new version is given (its id comes from the database). */
export type NewTruststoreVersion = Omit<TruststoreVersionEntity, 'id'>;

/**
 * Reads and writes of the truststore aggregate (truststores and their versions). Writes take the
 * caller's transaction; reads that callers also make inside one take it as an optional last argument.
 */
@Injectable()
export class TruststoreRepository {
  constructor(private readonly dataSource: DataSource) {}

  /**
   * Re-reads a truststore with its row locked (`FOR UPDATE`) until the caller's transaction ends:
   * replicas storing a new version of the same truststore take turns, so each builds on the
   * version the previous one committed. Null when it does not exist (any more).
   */
  lockForNewVersion(manager: EntityManager, truststoreId: string): Promise<TruststoreEntity | null> {
    return manager
      .getRepository(TruststoreEntity)
      .findOne({ where: { id: truststoreId }, lock: { mode: 'pessimistic_write' } });
  }

  nameTaken(name: string): Promise<boolean> {
    return this.dataSource.getRepository(TruststoreEntity).existsBy({ name });
  }

  byName(name: string): Promise<TruststoreEntity | null> {
    return this.dataSource.getRepository(TruststoreEntity).findOneBy({ name });
  }

  byId(id: string): Promise<TruststoreEntity | null> {
    return this.dataSource.getRepository(TruststoreEntity).findOneBy({ id });
  }

  /** Every truststore, by name. */
  all(): Promise<TruststoreEntity[]> {
    return this.dataSource.getRepository(TruststoreEntity).find({ order: { name: 'ASC' } });
  }

  /** Id and name of every truststore, by name. */
  allIdsAndNames(): Promise<Array<Pick<TruststoreEntity, 'id' | 'name'>>> {
    return this.dataSource
      .getRepository(TruststoreEntity)
      .find({ select: { id: true, name: true }, order: { name: 'ASC' } });
  }

  insert(manager: EntityManager, fields: NewTruststore): Promise<TruststoreEntity> {
    const repository = manager.getRepository(TruststoreEntity);
    return repository.save(repository.create(fields));
  }

  async updateSettings(manager: EntityManager, truststoreId: string, settings: TruststoreSettings): Promise<void> {
    await manager.update(TruststoreEntity, { id: truststoreId }, settings);
  }

  /** Version `version` of a truststore, or null. */
  version(
    truststoreId: string,
    version: number,
    manager: EntityManager = this.dataSource.manager,
  ): Promise<TruststoreVersionEntity | null> {
    return manager.getRepository(TruststoreVersionEntity).findOneBy({ truststoreId, version });
  }

  /** Stores a version and makes it the truststore's current one. */
  async insertCurrentVersion(manager: EntityManager, fields: NewTruststoreVersion): Promise<TruststoreVersionEntity> {
    const repository = manager.getRepository(TruststoreVersionEntity);
    const row = await repository.save(repository.create(fields));
    await manager.update(
      TruststoreEntity,
      { id: fields.truststoreId },
      { currentVersion: fields.version, currentDigest: fields.digest },
    );
    return row;
  }
}
