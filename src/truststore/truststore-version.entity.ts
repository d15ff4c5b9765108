import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

export interface VersionReason {
  /** What made the content change: `created`, `updated`, `ca`, `crl`, `key`, `schedule`, `sync`. */
  trigger: string;
  /** Human summary of the differences to the previous version. */
  changes: string[];
}

/** One immutable truststore version: its canonical content and that content's digest. */
@Entity('truststore_versions')
export class TruststoreVersionEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column('uuid', { name: 'truststore_id' })
  truststoreId!: string;

  @Column('integer')
  version!: number;

  /** `sha256:<hex>` of `canonical`. */
  @Column('text')
  digest!: string;

  /** The canonical form (truststore-content.ts). */
  @Column('bytea')
  canonical!: Buffer;

  /** Lower-case hex SHA-256 of each root certificate held (the rotation gate's question). */
  @Column('text', { name: 'root_sha256', array: true })
  rootSha256!: string[];

  @Column('jsonb')
  reason!: VersionReason;

  /** Earliest revocation this version is the first to carry in a CRL (revoke → converged time). */
  @Column('timestamptz', { name: 'revoked_at', nullable: true })
  revokedAt!: Date | null;

  /** When every distribution target of the truststore first held this version or a later one. */
  @Column('timestamptz', { name: 'converged_at', nullable: true })
  convergedAt!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
