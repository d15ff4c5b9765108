import { Injectable, Optional } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { canonicalJson, canonicalTime, checkpointStatement, eventHash, GENESIS_HASH } from './audit-canonical';
import { AuditCheckpointSigners, verifyCheckpointSignature } from './audit-checkpoint-signer';
import { AuditCheckpointsRepository, StoredCheckpoint } from './audit-checkpoints.repository';
import { AuditMetrics } from './audit-metrics';
import { AuditRepository, StoredRow } from './audit.repository';
import { AuditVerifyResult, JsonValue } from './audit.types';

/** The hash a row should have, recomputed from its stored fields with Signet's canonical bytes. */
export function recomputeHash(row: StoredRow): Buffer {
  return eventHash(
    {
      seq: row.seq,
      time: canonicalTime(row.timeMs),
      type: row.type,
      actor: row.actor,
      subject: row.subject,
      data: row.data,
      prevHash: row.prevHash,
    },
    {
      actorJson: row.actor === null ? 'null' : canonicalJson(row.actor as { [key: string]: JsonValue }),
      dataJson: canonicalJson(row.data),
    },
  );
}

interface Failure {
  seq: bigint;
  reason: string;
}

export type VerifyMode = 'full' | 'incremental' | 'latest';

const PAGE = 5000;

/**
 * Recomputes the chain and holds it against the signed checkpoints.
 * - every row's hash is recomputed from its fields; prev_hash must equal the previous row's hash;
 *   seqs must be contiguous (edited, deleted, inserted and swapped rows are named by seq);
 * - every checkpoint's signature must verify under a trusted key, and the row it names must still
 *   carry the checkpointed hash — a chain recomputed from some point on keeps its internal links
 *   but no longer matches the next checkpoint, so everything after the previous good checkpoint is
 *   reported as unproven (the exact row that was first rewritten cannot be known);
 * - a checkpoint (or the chain head row) beyond the last row means the tail was truncated.
 * 'incremental' walks rows only from the last checkpoint that still matches; 'full' from the start
 * of the kept log; 'latest' (used before signing a new checkpoint) considers only the latest one.
 */
@Injectable()
export class AuditVerifier {
  /** Checkpoint signatures already verified, by content hash: they are immutable once written. */
  private readonly verifiedSignatures = new Set<string>();

  constructor(
    private readonly rows: AuditRepository,
    private readonly checkpoints: AuditCheckpointsRepository,
    private readonly signers: AuditCheckpointSigners,
    @Optional() private readonly metrics?: AuditMetrics,
  ) {}

  async verify(mode: VerifyMode = 'incremental'): Promise<AuditVerifyResult & { headHash?: Buffer }> {
    try {
      const result = await this.verifyChain(mode);
      this.metrics?.verified(mode, result.ok ? 'ok' : 'broken');
      return result;
    } catch (error) {
      this.metrics?.verified(mode, 'error');
      throw error;
    }
  }

  private async verifyChain(mode: VerifyMode): Promise<AuditVerifyResult & { headHash?: Buffer }> {
    const failures: Failure[] = [];
    const warnings: string[] = [];
    const fail = (seq: bigint, reason: string) => failures.push({ seq, reason });

    // Order matters: checkpoints first, then the head. A checkpoint never names a seq beyond the
    // head at the time it was written, so reading them first cannot report a false truncation.
    const checkpoints = await this.checkpoints.all();
    const state = await this.rows.headAndLastSeq();
    const baseline = (await this.rows.lastDroppedRow()) ?? { seq: 0n, hash: GENESIS_HASH };
    const last = state.maxSeq === null ? baseline.seq : BigInt(state.maxSeq);
    const headSeq = BigInt(state.headSeq);

    // 1. Signatures.
    const { keys: trusted, warnings: keyWarnings } = await this.signers.trustedKeys();
    warnings.push(...keyWarnings);
    if (trusted.length === 0 && checkpoints.length > 0) {
      warnings.push(
        'no trusted checkpoint key is configured: signatures were checked against the keys stored with the checkpoints only',
      );
    }
    const considered = mode === 'latest' ? checkpoints.slice(-1) : checkpoints;
    const valid: StoredCheckpoint[] = [];
    for (const checkpoint of considered) {
      const problem = this.signatureProblem(checkpoint, trusted);
      if (problem) fail(BigInt(checkpoint.seq), `checkpoint ${checkpoint.id} at seq ${checkpoint.seq}: ${problem}`);
      else valid.push(checkpoint);
    }
    const lastCheckpoint = valid.length > 0 ? valid[valid.length - 1] : undefined;

    // 2. Truncated tail.
    if (lastCheckpoint && BigInt(lastCheckpoint.seq) > last) {
      fail(last + 1n, `the log was truncated: checkpoint at seq ${lastCheckpoint.seq} but the last row is seq ${last}`);
    }
    if (headSeq > last)
      fail(last + 1n, `the log was truncated: the chain head records seq ${headSeq} but the last row is seq ${last}`);
    else if (headSeq < last) fail(headSeq + 1n, `rows beyond the recorded chain head (seq ${headSeq}) exist`);

    // 3. Point checks: each checkpointed row must still carry the checkpointed hash.
    const anchors = new Map<bigint, Buffer>(); // seq → checkpointed hash, for the walk
    let start = { seq: baseline.seq, hash: baseline.hash };
    const inRange = valid.filter((c) => BigInt(c.seq) > baseline.seq && BigInt(c.seq) <= last);
    for (const c of valid) {
      if (BigInt(c.seq) === baseline.seq && baseline.seq > 0n && baseline.hash && !c.hash.equals(baseline.hash)) {
        fail(
          baseline.seq,
          `checkpoint at seq ${c.seq} does not match the hash recorded when its partition was dropped`,
        );
      }
    }
    const pointRows = await this.rowsAt(inRange.map((c) => c.seq));
    let previousAnchor = baseline.seq;
    for (const c of inRange) {
      const seq = BigInt(c.seq);
      anchors.set(seq, c.hash);
      const rows = pointRows.get(c.seq) ?? [];
      const problem =
        rows.length === 0
          ? 'missing'
          : rows.length > 1
            ? 'duplicated'
            : !recomputeHash(rows[0]).equals(rows[0].hash)
              ? 'edited'
              : !rows[0].hash.equals(c.hash)
                ? 'rewritten'
                : undefined;
      if (problem === undefined) {
        if (mode !== 'full' && seq > start.seq) start = { seq, hash: c.hash };
      } else if (problem === 'rewritten') {
        fail(
          previousAnchor + 1n,
          `the chain was rewritten after seq ${previousAnchor}: row ${c.seq} no longer carries the hash of the checkpoint at that seq`,
        );
      } else {
        fail(seq, `row ${c.seq} (checkpointed) is ${problem}`);
      }
      previousAnchor = seq;
    }

    // 4. Walk from the start point to the last row.
    const walk = await this.walk(start, last, anchors);
    if (walk.failure) fail(walk.failure.seq, walk.failure.reason);
    if (!walk.failure && walk.lastHash && last === headSeq && !walk.lastHash.equals(state.headHash)) {
      fail(
        walk.lastAnchor + 1n,
        `the chain head hash does not match row ${last}: the chain was rewritten after seq ${walk.lastAnchor}`,
      );
    }

    failures.sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
    const first = failures[0];
    return {
      ok: failures.length === 0,
      checked: walk.checked,
      mode: mode === 'full' ? 'full' : 'incremental',
      from: start.seq.toString(),
      head: last.toString(),
      lastCheckpoint: lastCheckpoint
        ? {
            seq: lastCheckpoint.seq,
            hash: lastCheckpoint.hash.toString('hex'),
            time: canonicalTime(lastCheckpoint.timeMs),
          }
        : null,
      ...(first ? { firstBrokenSeq: first.seq.toString(), reason: first.reason } : {}),
      ...(warnings.length > 0 ? { warnings } : {}),
      headHash: walk.lastHash ?? (last === start.seq ? start.hash : undefined),
    };
  }

  private signatureProblem(c: StoredCheckpoint, trusted: Buffer[]): string | undefined {
    const statement = checkpointStatement({ seq: c.seq, hash: c.hash, time: canonicalTime(c.timeMs) });
    const cacheKey = createHash('sha256')
      .update(statement)
      .update(c.publicKey)
      .update(c.signature)
      .update(c.keySpec)
      .digest('hex');
    if (trusted.length > 0 && !trusted.some((key) => key.equals(c.publicKey)))
      return 'signed by a key that is not a trusted checkpoint key';
    if (this.verifiedSignatures.has(cacheKey)) return undefined;
    if (!verifyCheckpointSignature(c.keySpec, c.publicKey, statement, c.signature))
      return 'the signature does not verify';
    this.verifiedSignatures.add(cacheKey);
    return undefined;
  }

  /** The rows at `seqs`, by seq (more than one where a seq is duplicated). */
  private async rowsAt(seqs: string[]): Promise<Map<string, StoredRow[]>> {
    const out = new Map<string, StoredRow[]>();
    for (const row of await this.rows.rowsAt(seqs, PAGE)) out.set(row.seq, [...(out.get(row.seq) ?? []), row]);
    return out;
  }

  private async walk(
    start: { seq: bigint; hash: Buffer },
    last: bigint,
    anchors: Map<bigint, Buffer>,
  ): Promise<{ checked: number; failure?: Failure; lastHash?: Buffer; lastAnchor: bigint }> {
    let expected = start.seq + 1n;
    let prevHash = start.hash;
    let lastAnchor = start.seq;
    let checked = 0;
    let lastHash: Buffer | undefined;
    while (expected <= last) {
      // Keyset pagination on seq. `seq >= expected - 1` re-reads the previous row so that a
      // duplicated seq straddling a page boundary is still seen; that one re-read row is skipped.
      const rows = await this.rows.rowsBetween(expected - 1n, last, PAGE);
      let progressed = false;
      for (let index = 0; index < rows.length; index++) {
        const row = rows[index];
        const seq = BigInt(row.seq);
        if (seq < expected) {
          if (index === 0) continue; // the re-read previous row
          return { checked, failure: { seq, reason: `seq ${seq} appears more than once` }, lastAnchor };
        }
        if (seq > expected) {
          const range = seq - 1n === expected ? `row ${expected} is` : `rows ${expected}..${seq - 1n} are`;
          return { checked, failure: { seq: expected, reason: `${range} missing` }, lastAnchor };
        }
        checked++;
        if (!recomputeHash(row).equals(row.hash)) {
          return {
            checked,
            failure: { seq, reason: `row ${seq} does not match its hash: its content was altered (edited or swapped)` },
            lastAnchor,
          };
        }
        if (!row.prevHash.equals(prevHash)) {
          return {
            checked,
            failure: {
              seq,
              reason: `row ${seq} does not link to row ${seq - 1n}: rows were removed, inserted or reordered`,
            },
            lastAnchor,
          };
        }
        const anchor = anchors.get(seq);
        if (anchor) {
          if (!anchor.equals(row.hash)) {
            return {
              checked,
              failure: {
                seq: lastAnchor + 1n,
                reason: `the chain was rewritten after seq ${lastAnchor}: row ${seq} no longer carries the hash of the checkpoint at that seq`,
              },
              lastAnchor,
            };
          }
          lastAnchor = seq;
        }
        prevHash = row.hash;
        lastHash = row.hash;
        expected = seq + 1n;
        progressed = true;
      }
      if (!progressed) {
        const range = expected === last ? `row ${expected} is` : `rows ${expected}..${last} are`;
        return { checked, failure: { seq: expected, reason: `${range} missing` }, lastAnchor };
      }
    }
    return { checked, lastHash, lastAnchor };
  }
}
