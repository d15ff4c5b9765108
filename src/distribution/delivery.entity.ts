import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** One confirmed delivery: a target read back holding a truststore version. */
@Entity('distribution_deliveries')
export class DeliveryEntity {
  @PrimaryGeneratedColumn('increment', { type: 'bigint' })
  id!: string;

  @Column('uuid', { name: 'target_id' })
  targetId!: string;

  @Column('uuid', { name: 'truststore_id' })
  truststoreId!: string;

  @Column('integer')
  version!: number;

  @Column('text')
  digest!: string;

  @Column('timestamptz', { name: 'delivered_at' })
  deliveredAt!: Date;

  /** Attempts this version took on this target (1 = first try). */
  @Column('integer')
  attempts!: number;

  /** From the version's creation to this delivery. */
  @Column('bigint', { name: 'converge_ms' })
  convergeMs!: string;

  /** The target already held the digest (pushed by an earlier attempt or another replica). */
  @Column('boolean')
  skipped!: boolean;

  @Column('jsonb')
  details!: Record<string, unknown>;
}
