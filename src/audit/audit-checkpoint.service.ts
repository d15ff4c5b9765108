import { Inject, Injectable, Logger, OnModuleInit, Optional } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { DataSource } from 'typeorm';
import { DomainError, ErrorCode } from '../common/errors';
import { nodeHashName } from '../pki/key-spec';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { ADVISORY_LOCKS } from '../database/advisory-lock';
import { HealthService } from '../observability/health.service';
import { canonicalTime, checkpointStatement } from './audit-canonical';
import { AuditCheckpointSigners, checkpointHash, verifyCheckpointSignature } from './audit-checkpoint-signer';
import { asAuditError, inTransaction, pgPool } from './audit-pg';
import { AuditService } from './audit.service';
import { AuditCheckpointView } from './audit.types';
import { AuditVerifier, CHECKPOINT_COLUMNS, StoredCheckpoint, toCheckpoint } from './audit-verifier';

/**
 * HSM-signed checkpoints of the chain head, periodic and on demand. Before signing, the chain
 * since the previous checkpoint is verified: a checkpoint never vouches for a broken chain.
 * Checkpoints are serialised across replicas by an advisory lock; the periodic path only tries
 * the lock and skips when the last checkpoint is recent or the head has not moved.
 */
@Injectable()
export class AuditCheckpointService implements OnModuleInit {
  private readonly logger = new Logger('AuditCheckpoints');
  private last?: { seq: string; time: string };

  constructor(
    private readonly dataSource: DataSource,
    private readonly verifier: AuditVerifier,
    private readonly signers: AuditCheckpointSigners,
    private readonly audit: AuditService,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    @Optional() private readonly health?: HealthService,
  ) {}

  onModuleInit(): void {
    // A detail, never a readiness failure: signing must not stop because checkpoints cannot be made.
    this.health?.register('auditCheckpoints', async () => ({
      ok: true,
      signer: this.signers.bound ? 'bound' : 'unavailable',
      ...(this.last ? { lastCheckpoint: this.last } : {}),
    }));
  }

  /** On demand (POST /v1/audit/checkpoints): waits for a concurrent checkpoint, then signs the head. */
  async create(): Promise<AuditCheckpointView> {
    const created = await this.checkpoint({ wait: true, onlyIfDue: false });
    if (!created) throw new DomainError(ErrorCode.CONFLICT, 'the audit log is empty; nothing to checkpoint');
    return created;
  }

  /** Periodic: does nothing when another replica is at it, the head has not moved, or no signer is bound. */
  async createIfDue(): Promise<AuditCheckpointView | undefined> {
    if (!this.signers.bound) return undefined;
    return this.checkpoint({ wait: false, onlyIfDue: true });
  }

  async list(options: { after?: string; limit?: number; order?: 'asc' | 'desc' } = {}): Promise<AuditCheckpointView[]> {
    const direction = options.order === 'desc' ? 'DESC' : 'ASC';
    const { rows } = await pgPool(this.dataSource)
      .query(`SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE seq > $1 ORDER BY audit_checkpoints.seq ${direction}, audit_checkpoints.id ${direction} LIMIT $2`, [options.after ?? '-1', options.limit ?? 100])
      .catch((error) => Promise.reject(asAuditError(error)));
    return rows.map((row) => view(toCheckpoint(row)));
  }

  private async checkpoint(options: { wait: boolean; onlyIfDue: boolean }): Promise<AuditCheckpointView | undefined> {
    if (!this.signers.bound) {
      throw new DomainError(ErrorCode.SERVICE_UNAVAILABLE, 'no audit checkpoint signer is configured');
    }
    const pool = pgPool(this.dataSource);
    try {
      return await inTransaction(pool, async (client) => {
        const lockSql = options.wait ? 'SELECT pg_advisory_xact_lock($1::bigint), true AS locked' : 'SELECT pg_try_advisory_xact_lock($1::bigint) AS locked';
        const { rows } = await client.query(lockSql, [ADVISORY_LOCKS.auditCheckpoint.toString()]);
        if (!rows[0].locked) return undefined;

        const latest = (await client.query(`SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY audit_checkpoints.seq DESC, audit_checkpoints.id DESC LIMIT 1`)).rows.map(toCheckpoint)[0];
        if (options.onlyIfDue && latest) {
          const headSeq = (await client.query('SELECT seq::text AS seq FROM audit_chain_head')).rows[0].seq as string;
          // 0.9: replicas' timers drift; a checkpoint a little early beats one skipped for a whole interval.
          const dueAt = latest.timeMs + this.config.audit.checkpointIntervalSeconds * 900;
          if (headSeq === latest.seq || this.audit.now() < dueAt) return undefined;
        }

        const verified = await this.verifier.verify('latest');
        if (!verified.ok) {
          this.logger.error(`refusing to checkpoint: the audit chain is broken at seq ${verified.firstBrokenSeq}: ${verified.reason}`);
          throw new DomainError(ErrorCode.CONFLICT, `the audit chain is broken at seq ${verified.firstBrokenSeq}; refusing to checkpoint it`, {
            firstBrokenSeq: verified.firstBrokenSeq,
            reason: verified.reason,
          });
        }
        if (verified.head === '0' || !verified.headHash) return undefined;
        if (options.onlyIfDue && latest && latest.seq === verified.head) return undefined;

        const signer = await this.signers.signer().catch((error: Error) => {
          throw new DomainError(ErrorCode.HSM_UNAVAILABLE, `the audit checkpoint signer is unavailable: ${error.message}`);
        });
        if (!signer) throw new DomainError(ErrorCode.SERVICE_UNAVAILABLE, 'no audit checkpoint signer is configured');
        const time = canonicalTime(this.audit.now());
        const statement = checkpointStatement({ seq: verified.head, hash: verified.headHash, time });
        const hash = checkpointHash(signer.spec);
        const signature = await signer.signDigest(createHash(nodeHashName(hash)).update(statement).digest(), hash);
        // A signer that produces unverifiable signatures would make every later verify fail.
        if (!verifyCheckpointSignature(signer.spec, signer.publicKeySpki, statement, signature)) {
          throw new DomainError(ErrorCode.INTERNAL, 'the audit checkpoint signer produced a signature that does not verify');
        }
        const inserted = await client.query(
          `INSERT INTO audit_checkpoints (seq, hash, time, key_spec, public_key, key_ref, signature) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${CHECKPOINT_COLUMNS}`,
          [verified.head, verified.headHash, time, signer.spec, signer.publicKeySpki, signer.keyRef ?? null, signature],
        );
        const checkpoint = toCheckpoint(inserted.rows[0]);
        this.last = { seq: checkpoint.seq, time };
        this.logger.log(`audit checkpoint at seq ${checkpoint.seq}`);
        return view(checkpoint);
      });
    } catch (error) {
      throw asAuditError(error);
    }
  }
}

export function view(c: StoredCheckpoint): AuditCheckpointView {
  const time = canonicalTime(c.timeMs);
  return {
    id: c.id,
    seq: c.seq,
    hash: c.hash.toString('hex'),
    time,
    keySpec: c.keySpec,
    keyRef: c.keyRef,
    publicKey: c.publicKey.toString('base64'),
    statement: checkpointStatement({ seq: c.seq, hash: c.hash, time }).toString('base64'),
    signature: c.signature.toString('base64'),
    hashAlgorithm: checkpointHash(c.keySpec),
  };
}
