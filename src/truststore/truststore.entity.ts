import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';
import type { TrustManagerSettings, TrustPolicySettings } from './truststore-content';

/** A named set of root CAs (and what follows from them); its content lives in versions. */
@Entity('truststores')
export class TruststoreEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column('text', { unique: true })
  name!: string;

  /** The root CAs selected (every usable key generation of each is included). */
  @Column('uuid', { name: 'ca_ids', array: true })
  caIds!: string[];

  @Column('jsonb', { name: 'trust_policy' })
  trustPolicy!: TrustPolicySettings;

  /** trust-manager settings (the Bundle's namespace selector); null = the defaults. */
  @Column('jsonb', { name: 'trust_manager', nullable: true })
  trustManager!: TrustManagerSettings | null;

  /** 0 until the first version is stored (in the creating transaction). */
  @Column('integer', { name: 'current_version' })
  currentVersion!: number;

  @Column('text', { name: 'current_digest', nullable: true })
  currentDigest!: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
