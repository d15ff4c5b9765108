import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';
import type { TrustTargetKind } from './drivers/trust-target';
import type { TargetSettings } from './target-definition';

export type TargetState = 'pending' | 'delivered' | 'retrying' | 'blocked';

/**
 * A distribution target and its reconcile state. Desired = its truststore's current version;
 * delivered = what the target was last read back holding. Claimed by one replica at a time through
 * a lease (`lease_token`, `lease_until`) taken with SELECT … FOR UPDATE SKIP LOCKED.
 */
@Entity('distribution_targets')
export class DistributionTargetEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column('uuid', { name: 'region_id' })
  regionId!: string;

  @Column('text')
  name!: string;

  @Column('text')
  kind!: TrustTargetKind;

  @Column('text')
  endpoint!: string;

  /** Kind-specific, non-secret settings (repository, namespace, tls, allowedHosts, formats, …). */
  @Column('jsonb')
  settings!: TargetSettings;

  @Column('uuid', { name: 'truststore_id' })
  truststoreId!: string;

  /** Counts for the rotation gate. */
  @Column('boolean')
  required!: boolean;

  /**
   * JSON credentials sealed with the HSM sealing key, bound to the target and its endpoint's origin
   * (AAD `distribution-target:<id>@<origin>`; values from before that binding: `distribution-target:<id>`,
   * re-sealed on first use). See target-credentials.ts. Never returned.
   */
  @Column('bytea', { name: 'credentials_sealed', nullable: true, select: false })
  credentialsSealed!: Buffer | null;

  @Column('integer', { name: 'config_revision' })
  configRevision!: number;

  @Column('integer', { name: 'delivered_version', nullable: true })
  deliveredVersion!: number | null;

  @Column('text', { name: 'delivered_digest', nullable: true })
  deliveredDigest!: string | null;

  /** When the target first held the delivered digest. */
  @Column('timestamptz', { name: 'delivered_at', nullable: true })
  deliveredAt!: Date | null;

  /** Last successful read-back. */
  @Column('timestamptz', { name: 'verified_at', nullable: true })
  verifiedAt!: Date | null;

  /** The digest `attempts` count for: a new desired digest starts again at 0, at once. */
  @Column('text', { name: 'attempt_digest', nullable: true })
  attemptDigest!: string | null;

  @Column('integer')
  attempts!: number;

  @Column('timestamptz', { name: 'last_attempt_at', nullable: true })
  lastAttemptAt!: Date | null;

  @Column('timestamptz', { name: 'next_attempt_at' })
  nextAttemptAt!: Date;

  @Column('text')
  state!: TargetState;

  @Column('text', { name: 'last_error', nullable: true })
  lastError!: string | null;

  @Column('text', { name: 'last_error_kind', nullable: true })
  lastErrorKind!: string | null;

  /** Push even if the target already holds the digest (its settings changed). */
  @Column('boolean', { name: 'force_push' })
  forcePush!: boolean;

  @Column('uuid', { name: 'lease_token', nullable: true })
  leaseToken!: string | null;

  @Column('timestamptz', { name: 'lease_until', nullable: true })
  leaseUntil!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
