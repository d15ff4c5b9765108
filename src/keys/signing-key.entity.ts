import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';
import type { KeySpec } from '../pki/key-spec';
import type { CertificateSubject } from '../pki';

export interface RotationPolicy {
  /** 'quarterly' (1 Jan/Apr/Jul/Oct 00:00 UTC) or a cron expression. */
  schedule: string;
  /** Days the previous version stays listed (retiring) after a rotation. */
  overlapDays: number;
  /** Days after retirement before the previous private key is destroyed. */
  retentionDays: number;
}

@Entity('signing_keys')
export class SigningKeyEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column('text', { unique: true })
  name!: string;

  @Column('text', { name: 'key_spec' })
  keySpec!: KeySpec;

  /** Identical across rotations so Notation trust policies keep matching. */
  @Column('jsonb')
  subject!: CertificateSubject;

  @Column('uuid', { name: 'issuer_ca_id', nullable: true })
  issuerCaId!: string | null;

  @Column('boolean')
  external!: boolean;

  @Column('integer', { name: 'certificate_validity_days' })
  certificateValidityDays!: number;

  @Column('jsonb')
  rotation!: RotationPolicy;

  /** Keys that must have signed an artifact before this one may (promotion). */
  @Column('text', { array: true })
  requires!: string[];

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
