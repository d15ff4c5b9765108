import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager, In } from 'typeorm';
import { CertificateEntity } from './certificate.entity';

/** The columns a new certificate row is given (created_at comes from the database). */
export type NewCertificate = Omit<CertificateEntity, 'createdAt'>;

/** Reads and writes of issued certificates and their revocations (the source of CRLs and OCSP answers). */
@Injectable()
export class CertificatesRepository {
  constructor(private readonly dataSource: DataSource) {}

  /**
   * A plain INSERT (one round trip; `save` would first SELECT by serial and upsert): a serial
   * that is already stored is refused (unique violation), never overwritten.
   */
  async insert(manager: EntityManager, fields: NewCertificate): Promise<CertificateEntity> {
    const repository = manager.getRepository(CertificateEntity);
    const row = repository.create(fields);
    // INSERT … RETURNING created_at, merged into `row`.
    await repository.insert(row);
    return row;
  }

  /** Certificates of the key versions `keyVersionIds`, oldest first. */
  ofKeyVersions(keyVersionIds: string[]): Promise<CertificateEntity[]> {
    return this.dataSource
      .getRepository(CertificateEntity)
      .find({ where: { keyVersionId: In(keyVersionIds) }, order: { notBefore: 'ASC' } });
  }

  /**
   * The earliest revocation among certificates issued by the CA generation `issuerGenerationName`
   * revoked no later than `upTo` and after `after` (any time when null), or null when none was.
   */
  async earliestRevocation(
    manager: EntityManager,
    issuerGenerationName: string,
    window: { after: string | null; upTo: string },
  ): Promise<Date | null> {
    const [row] = await manager.query(
      `SELECT min(c.revoked_at) AS revoked_at FROM certificates c JOIN ca_generations g ON g.id = c.issuer_generation_id
        WHERE g.name = $1 AND c.revoked_at IS NOT NULL AND c.revoked_at <= $2 AND ($3::timestamptz IS NULL OR c.revoked_at > $3::timestamptz)`,
      [issuerGenerationName, window.upTo, window.after],
    );
    return row?.revoked_at ? new Date(row.revoked_at) : null;
  }
}
