import { Inject, Injectable, Logger, OnModuleInit, Optional } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { DomainError, ErrorCode } from '../common/errors';
import { nodeHashName } from '../pki/key-spec';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { HealthService } from '../observability/health.service';
import { canonicalTime, checkpointStatement } from './audit-canonical';
import { AuditCheckpointSigners, checkpointHash, verifyCheckpointSignature } from './audit-checkpoint-signer';
import { AuditCheckpointsRepository, StoredCheckpoint } from './audit-checkpoints.repository';
import { asAuditError } from './audit-pg';
import { AuditVerifier } from './audit-verifier';
import { AuditRepository } from './audit.repository';
import { AuditService } from './audit.service';
import { AuditCheckpointView } from './audit.types';

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
    private readonly checkpoints: AuditCheckpointsRepository,
    private readonly rows: AuditRepository,
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
    const checkpoints = await this.checkpoints
      .page(options.after ?? '-1', options.limit ?? 100, options.order ?? 'asc')
      .catch((error) => Promise.reject(asAuditError(error)));
    return checkpoints.map(view);
  }

  private async checkpoint(options: { wait: boolean; onlyIfDue: boolean }): Promise<AuditCheckpointView | undefined> {
    if (!this.signers.bound) {
      throw new DomainError(ErrorCode.SERVICE_UNAVAILABLE, 'no audit checkpoint signer is configured');
    }
    try {
      return await this.checkpoints.transaction(async (client) => {
        if (!(await this.checkpoints.lock(client, options.wait))) return undefined;

        const latest = await this.checkpoints.latest(client);
        if (options.onlyIfDue && latest) {
          const headSeq = await this.rows.headSeq(client);
          // 0.9: replicas' timers drift; a checkpoint a little early beats one skipped for a whole interval.
          const dueAt = latest.timeMs + this.config.audit.checkpointIntervalSeconds * 900;
          if (headSeq === latest.seq || this.audit.now() < dueAt) return undefined;
        }

        const verified = await this.verifier.verify('latest');
        if (!verified.ok) {
          this.logger.error(
            `refusing to checkpoint: the audit chain is broken at seq ${verified.firstBrokenSeq}: ${verified.reason}`,
          );
          throw new DomainError(
            ErrorCode.CONFLICT,
            `the audit chain is broken at seq ${verified.firstBrokenSeq}; refusing to checkpoint it`,
            {
              firstBrokenSeq: verified.firstBrokenSeq,
              reason: verified.reason,
            },
          );
        }
        if (verified.head === '0' || !verified.headHash) return undefined;
        if (options.onlyIfDue && latest && latest.seq === verified.head) return undefined;

        const signer = await this.signers.signer().catch((error: Error) => {
          throw new DomainError(
            ErrorCode.HSM_UNAVAILABLE,
            `the audit checkpoint signer is unavailable: ${error.message}`,
          );
        });
        if (!signer) throw new DomainError(ErrorCode.SERVICE_UNAVAILABLE, 'no audit checkpoint signer is configured');
        const time = canonicalTime(this.audit.now());
        const statement = checkpointStatement({ seq: verified.head, hash: verified.headHash, time });
        const hash = checkpointHash(signer.spec);
        const signature = await signer.signDigest(createHash(nodeHashName(hash)).update(statement).digest(), hash);
        // A signer that produces unverifiable signatures would make every later verify fail.
        if (!verifyCheckpointSignature(signer.spec, signer.publicKeySpki, statement, signature)) {
          throw new DomainError(
            ErrorCode.INTERNAL,
            'the audit checkpoint signer produced a signature that does not verify',
          );
        }
        const checkpoint = await this.checkpoints.insert(client, {
          seq: verified.head,
          hash: verified.headHash,
          time,
          keySpec: signer.spec,
          publicKey: signer.publicKeySpki,
          keyRef: signer.keyRef ?? null,
          signature,
        });
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
