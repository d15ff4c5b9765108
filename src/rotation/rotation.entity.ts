import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';
import type { AuditActor } from '../audit/audit.types';
import type { RotationKind, RotationPlan, RotationState, RotationTrigger, StepRecord } from './rotation-steps';

/** One rotation of a signing key or rollover of a CA, with the outcome of each of its steps. */
@Entity('rotations')
export class RotationEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column('text')
  kind!: RotationKind;

  @Column('uuid', { name: 'key_id', nullable: true })
  keyId!: string | null;

  @Column('uuid', { name: 'ca_id', nullable: true })
  caId!: string | null;

  /** Key or CA name. */
  @Column('text')
  subject!: string;

  @Column('text')
  trigger!: RotationTrigger;

  @Column('timestamptz', { name: 'due_at', nullable: true })
  dueAt!: Date | null;

  @Column('text')
  state!: RotationState;

  @Column('jsonb')
  steps!: StepRecord[];

  @Column('jsonb')
  plan!: RotationPlan;

  @Column('timestamptz', { name: 'next_run_at' })
  nextRunAt!: Date;

  @Column('text', { nullable: true })
  alert!: string | null;

  @Column('text', { nullable: true })
  reason!: string | null;

  @Column('jsonb', { name: 'requested_by', nullable: true })
  requestedBy!: AuditActor | null;

  /** On the rotation clock (tests drive it); created_at/updated_at are the database's. */
  @Column('timestamptz', { name: 'started_at' })
  startedAt!: Date;

  @Column('timestamptz', { name: 'completed_at', nullable: true })
  completedAt!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
