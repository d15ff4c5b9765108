import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** A federated region: a group of targets (registries, clusters) that serve its verifiers. */
@Entity('distribution_regions')
export class RegionEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column('text', { unique: true })
  name!: string;

  /** Its verifiers cannot reach Signet's OCSP/CRL URLs and rely on the bundle's CRLs. */
  @Column('boolean')
  offline!: boolean;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
