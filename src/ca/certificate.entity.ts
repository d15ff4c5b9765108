import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';
import type { CertificateProfile, RevocationReason } from '../pki';

/** Every certificate Signet issued or imported; the source of CRLs and OCSP answers. */
@Entity('certificates')
export class CertificateEntity {
  /** Canonical lower-case hex (serial-number.ts). */
  @PrimaryColumn('text')
  serial!: string;

  @Column('text')
  kind!: CertificateProfile;

  @Column('uuid', { name: 'issuer_generation_id', nullable: true })
  issuerGenerationId!: string | null;

  @Column('uuid', { name: 'key_version_id', nullable: true })
  keyVersionId!: string | null;

  @Column('uuid', { name: 'ca_generation_id', nullable: true })
  caGenerationId!: string | null;

  @Column('text', { name: 'subject_dn' })
  subjectDn!: string;

  @Column('timestamptz', { name: 'not_before' })
  notBefore!: Date;

  @Column('timestamptz', { name: 'not_after' })
  notAfter!: Date;

  @Column('bytea')
  der!: Buffer;

  @Column('timestamptz', { name: 'revoked_at', nullable: true })
  revokedAt!: Date | null;

  @Column('text', { name: 'revocation_reason', nullable: true })
  revocationReason!: RevocationReason | null;

  @Column('timestamptz', { name: 'invalidity_date', nullable: true })
  invalidityDate!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
