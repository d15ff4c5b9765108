import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { Role } from '../common/roles';

/** An API bearer token. The token itself is never stored: `tokenHash` is SHA-256 of it. */
@Entity('api_tokens')
export class ApiToken {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ type: 'text' })
  name!: string;

  @Column({ type: 'text' })
  role!: Role;

  /** Key names a signer may use. */
  @Column({ name: 'key_grants', type: 'text', array: true, default: () => `'{}'` })
  keyGrants!: string[];

  @Column({ name: 'token_hash', type: 'bytea', select: false })
  tokenHash!: Buffer;

  /** Overrides SIGNET_RATE_LIMIT_PER_SECOND for this token. */
  @Column({ name: 'rate_limit_per_second', type: 'integer', nullable: true })
  rateLimitPerSecond!: number | null;

  @Column({ name: 'expires_at', type: 'timestamptz', nullable: true })
  expiresAt!: Date | null;

  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true })
  revokedAt!: Date | null;

  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' })
  createdAt!: Date;

  /** Coarse (updated at most once a minute per replica), never on every request. */
  @Column({ name: 'last_used_at', type: 'timestamptz', nullable: true })
  lastUsedAt!: Date | null;
}
