import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager, In } from 'typeorm';
import { KeyVersionEntity } from './key-version.entity';
import { SigningKeyEntity } from './signing-key.entity';

/** The columns a new key is given (id and created_at come from the database). */
export type NewSigningKey = Omit<SigningKeyEntity, 'id' | 'createdAt'>;
/** The columns a new key version is given (id and created_at come from the database). */
export type NewKeyVersion = Omit<KeyVersionEntity, 'id' | 'createdAt'>;
/** What an imported chain sets on a pending version. */
export type ImportedVersionCertificate = Pick<
  KeyVersionEntity,
  'state' | 'certificate' | 'chain' | 'serial' | 'notBefore' | 'notAfter' | 'activatedAt'
>;

/**
 * Reads and writes of the signing-key aggregate (keys and their versions). Writes take the
 * caller's transaction; reads that callers also make inside one take it as an optional last argument.
 */
@Injectable()
export class KeysRepository {
  constructor(private readonly dataSource: DataSource) {}

  nameTaken(name: string): Promise<boolean> {
    return this.dataSource.getRepository(SigningKeyEntity).existsBy({ name });
  }

  byName(name: string): Promise<SigningKeyEntity | null> {
    return this.dataSource.getRepository(SigningKeyEntity).findOneBy({ name });
  }

  byNames(names: string[]): Promise<SigningKeyEntity[]> {
    return this.dataSource.getRepository(SigningKeyEntity).findBy({ name: In(names) });
  }

  /** Every key, by name. */
  all(): Promise<SigningKeyEntity[]> {
    return this.dataSource.getRepository(SigningKeyEntity).find({ order: { name: 'ASC' } });
  }

  /** The keys whose certificates come from any of the CAs `caIds`. */
  issuedBy(caIds: string[], manager: EntityManager = this.dataSource.manager): Promise<SigningKeyEntity[]> {
    return manager.getRepository(SigningKeyEntity).findBy({ issuerCaId: In(caIds) });
  }

  /** A key not stored yet: `insertKey` stores it with its first version. */
  newKey(fields: NewSigningKey): SigningKeyEntity {
    return this.dataSource.getRepository(SigningKeyEntity).create(fields);
  }

  insertKey(manager: EntityManager, key: SigningKeyEntity): Promise<SigningKeyEntity> {
    return manager.getRepository(SigningKeyEntity).save(key);
  }

  insertVersion(manager: EntityManager, fields: NewKeyVersion): Promise<KeyVersionEntity> {
    const repository = manager.getRepository(KeyVersionEntity);
    return repository.save(repository.create(fields));
  }

  /** A pending version takes the certificate issued elsewhere (external-CA mode). */
  async storeImportedCertificate(
    manager: EntityManager,
    versionId: string,
    certificate: ImportedVersionCertificate,
  ): Promise<void> {
    await manager.update(KeyVersionEntity, { id: versionId }, certificate);
  }

  /** Every version of every key, in version order. */
  allVersions(): Promise<KeyVersionEntity[]> {
    return this.dataSource.getRepository(KeyVersionEntity).find({ order: { version: 'ASC' } });
  }

  /** A key's versions in order. */
  versionsOf(keyId: string): Promise<KeyVersionEntity[]> {
    return this.dataSource.getRepository(KeyVersionEntity).find({ where: { keyId }, order: { version: 'ASC' } });
  }

  activeVersion(keyId: string, manager: EntityManager = this.dataSource.manager): Promise<KeyVersionEntity | null> {
    return manager.getRepository(KeyVersionEntity).findOneBy({ keyId, state: 'active' });
  }

  latestVersion(keyId: string): Promise<KeyVersionEntity | null> {
    return this.dataSource.getRepository(KeyVersionEntity).findOne({ where: { keyId }, order: { version: 'DESC' } });
  }

  versionByNumber(keyId: string, version: number): Promise<KeyVersionEntity | null> {
    return this.dataSource.getRepository(KeyVersionEntity).findOneBy({ keyId, version });
  }
}
