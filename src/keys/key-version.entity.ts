import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** ARCHITECTURE.md: pending → published → active → retiring → retired (→ destroyed); revoked from any. */
export type KeyVersionState = 'pending' | 'published' | 'active' | 'retiring' | 'retired' | 'destroyed' | 'revoked';

@Entity('key_versions')
export class KeyVersionEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column('uuid', { name: 'key_id' })
  keyId!: string;

  @Column('integer')
  version!: number;

  @Column('text')
  state!: KeyVersionState;

  @Column('text', { name: 'key_uri' })
  keyUri!: string;

  @Column('bytea', { name: 'public_key' })
  publicKey!: Buffer;

  @Column('bytea', { nullable: true })
  certificate!: Buffer | null;

  @Column('bytea', { nullable: true })
  csr!: Buffer | null;

  /** CA certificates above the leaf, DER, the leaf's issuer first and the root last. */
  @Column('bytea', { array: true })
  chain!: Buffer[];

  @Column('text', { nullable: true })
  serial!: string | null;

  @Column('uuid', { name: 'issuer_generation_id', nullable: true })
  issuerGenerationId!: string | null;

  @Column('timestamptz', { name: 'not_before', nullable: true })
  notBefore!: Date | null;

  @Column('timestamptz', { name: 'not_after', nullable: true })
  notAfter!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @Column('timestamptz', { name: 'activated_at', nullable: true })
  activatedAt!: Date | null;

  @Column('timestamptz', { name: 'retired_at', nullable: true })
  retiredAt!: Date | null;

  @Column('timestamptz', { name: 'destroyed_at', nullable: true })
  destroyedAt!: Date | null;

  @Column('timestamptz', { name: 'revoked_at', nullable: true })
  revokedAt!: Date | null;
}
