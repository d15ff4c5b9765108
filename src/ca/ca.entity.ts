import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';
import type { KeySpec } from '../pki/key-spec';
import type { CertificateSubject } from '../pki';

export type CaKind = 'root' | 'issuing' | 'tsa-root' | 'tsa';

@Entity('cas')
export class CaEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column('text', { unique: true })
  name!: string;

  @Column('text')
  kind!: CaKind;

  @Column('uuid', { name: 'parent_id', nullable: true })
  parentId!: string | null;

  @Column('text', { name: 'key_spec' })
  keySpec!: KeySpec;

  @Column('jsonb')
  subject!: CertificateSubject;

  @Column('integer', { name: 'validity_days' })
  validityDays!: number;

  @Column('boolean')
  external!: boolean;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
