import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

export type CaGenerationState = 'pending' | 'active' | 'retired';

/**
 * One key generation of a CA: its own HSM key, certificate and public URLs (/pki/{name}.crt,
 * /pki/{name}.crl, /ocsp/{name}). A renewal adds a generation; older ones keep serving their CRL
 * and OCSP until their last certificate expires.
 */
@Entity('ca_generations')
export class CaGenerationEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column('uuid', { name: 'ca_id' })
  caId!: string;

  @Column('integer')
  generation!: number;

  @Column('text', { unique: true })
  name!: string;

  @Column('text')
  state!: CaGenerationState;

  @Column('text', { name: 'key_uri' })
  keyUri!: string;

  @Column('bytea', { nullable: true })
  certificate!: Buffer | null;

  @Column('bytea', { nullable: true })
  csr!: Buffer | null;

  @Column('bytea', { array: true })
  chain!: Buffer[];

  @Column('text', { nullable: true })
  serial!: string | null;

  @Column('uuid', { name: 'parent_generation_id', nullable: true })
  parentGenerationId!: string | null;

  @Column('timestamptz', { name: 'not_before', nullable: true })
  notBefore!: Date | null;

  @Column('timestamptz', { name: 'not_after', nullable: true })
  notAfter!: Date | null;

  @Column('bigint', { name: 'crl_number' })
  crlNumber!: string;

  @Column('bytea', { nullable: true })
  crl!: Buffer | null;

  @Column('timestamptz', { name: 'crl_this_update', nullable: true })
  crlThisUpdate!: Date | null;

  @Column('timestamptz', { name: 'crl_next_update', nullable: true })
  crlNextUpdate!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
