import { Injectable, Optional } from '@nestjs/common';
import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import { DataSource } from 'typeorm';
import { canonicalJson, canonicalTime, checkpointStatement, eventHash, GENESIS_HASH } from './audit-canonical';
import { AuditCheckpointSigners, verifyCheckpointSignature } from './audit-checkpoint-signer';
import { AuditMetrics } from './audit-metrics';
import { pgPool } from './audit-pg';
import { AuditActor, AuditVerifyResult, JsonValue } from './audit.types';

export interface StoredRow {
  seq: string;
  timeMs: number;
  type: string;
  actor: AuditActor | null;
  subject: string | null;
  data: { [key: string]: JsonValue };
  prevHash: Buffer;
  hash: Buffer;
}

export interface StoredCheckpoint {
  id: string;
  seq: string;
  hash: Buffer;
  timeMs: number;
  keySpec: string;
  publicKey: Buffer;
  keyRef: string | null;
  signature: Buffer;
}

// Aliases shadow column names in ORDER BY: always order by the qualified column (audit_events.seq).
export const ROW_COLUMNS = `seq::text AS seq, (extract(epoch FROM time) * 1000)::bigint::text AS time_ms, type, actor, subject, data, prev_hash, hash`;
export const CHECKPOINT_COLUMNS = `id::text AS id, seq::text AS seq, hash, (extract(epoch FROM time) * 1000)::bigint::text AS time_ms, key_spec, public_key, key_ref, signature`;

export function toRow(r: Record<string, unknown>): StoredRow {
  return {
    seq: r.seq as string,
    timeMs: Number(r.time_ms),
    type: r.type as string,
    actor: (r.actor as AuditActor | null) ?? null,
    subject: (r.subject as string | null) ?? null,
    data: r.data as { [key: string]: JsonValue },
    prevHash: r.prev_hash as Buffer,
    hash: r.hash as Buffer,
  };
}

export function toCheckpoint(r: Record<string, unknown>): StoredCheckpoint {
  return {
    id: r.id as string,
    seq: r.seq as string,
    hash: r.hash as Buffer,
    timeMs: Number(r.time_ms),
    keySpec: r.key_spec as string,
    publicKey: r.public_key as Buffer,
    keyRef: (r.key_ref as string | null) ?? null,
    signature: r.signature as Buffer,
  };
}

/** The hash a row should have, recomputed from its stored fields with Signet's canonical bytes. */
export function recomputeHash(row: StoredRow): Buffer {
  return eventHash(
    { seq: row.seq, time: canonicalTime(row.timeMs), type: row.type, actor: row.actor, subject: row.subject, data: row.data, prevHash: row.prevHash },
    { actorJson: row.actor === null ? 'null' : canonicalJson(row.actor as { [key: string]: JsonValue }), dataJson: canonicalJson(row.data) },
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
    private readonly dataSource: DataSource,
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
    const pool = pgPool(this.dataSource);
    const failures: Failure[] = [];
    const warnings: string[] = [];
    const fail = (seq: bigint, reason: string) => failures.push({ seq, reason });

    // Order matters: checkpoints first, then the head. A checkpoint never names a seq beyond the
    // head at the time it was written, so reading them first cannot report a false truncation.
    const checkpoints = (await pool.query(`SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY audit_checkpoints.seq, audit_checkpoints.id`)).rows.map(toCheckpoint);
    const state = (
      await pool.query(
        `SELECT (SELECT seq::text FROM audit_chain_head) AS head_seq, (SELECT hash FROM audit_chain_head) AS head_hash,
                (SELECT max(seq)::text FROM audit_events) AS max_seq`,
      )
    ).rows[0] as { head_seq: string; head_hash: Buffer; max_seq: string | null };
    const baseline = await this.baseline(pool);
    const last = state.max_seq === null ? baseline.seq : BigInt(state.max_seq);
    const headSeq = BigInt(state.head_seq);

    // 1. Signatures.
    const { keys: trusted, warnings: keyWarnings } = await this.signers.trustedKeys();
    warnings.push(...keyWarnings);
    if (trusted.length === 0 && checkpoints.length > 0) {
      warnings.push('no trusted checkpoint key is configured: signatures were checked against the keys stored with the checkpoints only');
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
    if (headSeq > last) fail(last + 1n, `the log was truncated: the chain head records seq ${headSeq} but the last row is seq ${last}`);
    else if (headSeq < last) fail(headSeq + 1n, `rows beyond the recorded chain head (seq ${headSeq}) exist`);

    // 3. Point checks: each checkpointed row must still carry the checkpointed hash.
    const anchors = new Map<bigint, Buffer>(); // seq → checkpointed hash, for the walk
    let start = { seq: baseline.seq, hash: baseline.hash };
    const inRange = valid.filter((c) => BigInt(c.seq) > baseline.seq && BigInt(c.seq) <= last);
    for (const c of valid) {
      if (BigInt(c.seq) === baseline.seq && baseline.seq > 0n && baseline.hash && !c.hash.equals(baseline.hash)) {
        fail(baseline.seq, `checkpoint at seq ${c.seq} does not match the hash recorded when its partition was dropped`);
      }
    }
    const pointRows = await this.rowsAt(pool, inRange.map((c) => c.seq));
    let previousAnchor = baseline.seq;
    for (const c of inRange) {
      const seq = BigInt(c.seq);
      anchors.set(seq, c.hash);
      const rows = pointRows.get(c.seq) ?? [];
      const problem = rows.length === 0 ? 'missing' : rows.length > 1 ? 'duplicated' : !recomputeHash(rows[0]).equals(rows[0].hash) ? 'edited' : !rows[0].hash.equals(c.hash) ? 'rewritten' : undefined;
      if (problem === undefined) {
        if (mode !== 'full' && seq > start.seq) start = { seq, hash: c.hash };
      } else if (problem === 'rewritten') {
        fail(previousAnchor + 1n, `the chain was rewritten after seq ${previousAnchor}: row ${c.seq} no longer carries the hash of the checkpoint at that seq`);
      } else {
        fail(seq, `row ${c.seq} (checkpointed) is ${problem}`);
      }
      previousAnchor = seq;
    }

    // 4. Walk from the start point to the last row.
    const walk = await this.walk(pool, start, last, anchors);
    if (walk.failure) fail(walk.failure.seq, walk.failure.reason);
    if (!walk.failure && walk.lastHash && last === headSeq && !walk.lastHash.equals(state.head_hash)) {
      fail(walk.lastAnchor + 1n, `the chain head hash does not match row ${last}: the chain was rewritten after seq ${walk.lastAnchor}`);
    }

    failures.sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
    const first = failures[0];
    return {
      ok: failures.length === 0,
      checked: walk.checked,
      mode: mode === 'full' ? 'full' : 'incremental',
      from: start.seq.toString(),
      head: last.toString(),
      lastCheckpoint: lastCheckpoint ? { seq: lastCheckpoint.seq, hash: lastCheckpoint.hash.toString('hex'), time: canonicalTime(lastCheckpoint.timeMs) } : null,
      ...(first ? { firstBrokenSeq: first.seq.toString(), reason: first.reason } : {}),
      ...(warnings.length > 0 ? { warnings } : {}),
      headHash: walk.lastHash ?? (last === start.seq ? start.hash : undefined),
    };
  }

  private signatureProblem(c: StoredCheckpoint, trusted: Buffer[]): string | undefined {
    const statement = checkpointStatement({ seq: c.seq, hash: c.hash, time: canonicalTime(c.timeMs) });
    const cacheKey = createHash('sha256').update(statement).update(c.publicKey).update(c.signature).update(c.keySpec).digest('hex');
    if (trusted.length > 0 && !trusted.some((key) => key.equals(c.publicKey))) return 'signed by a key that is not a trusted checkpoint key';
    if (this.verifiedSignatures.has(cacheKey)) return undefined;
    if (!verifyCheckpointSignature(c.keySpec, c.publicKey, statement, c.signature)) return 'the signature does not verify';
    this.verifiedSignatures.add(cacheKey);
    return undefined;
  }

  /** Where the kept chain starts: after the last row retention dropped, or at genesis. */
  private async baseline(pool: Pool): Promise<{ seq: bigint; hash: Buffer }> {
    const { rows } = await pool.query<{ last_seq: string; last_hash: Buffer }>(
      'SELECT last_seq::text AS last_seq, last_hash FROM audit_retention_drops WHERE last_seq IS NOT NULL ORDER BY audit_retention_drops.last_seq DESC LIMIT 1',
    );
    return rows[0] ? { seq: BigInt(rows[0].last_seq), hash: rows[0].last_hash } : { seq: 0n, hash: GENESIS_HASH };
  }

  private async rowsAt(pool: Pool, seqs: string[]): Promise<Map<string, StoredRow[]>> {
    const out = new Map<string, StoredRow[]>();
    for (let i = 0; i < seqs.length; i += PAGE) {
      const { rows } = await pool.query(`SELECT ${ROW_COLUMNS} FROM audit_events WHERE seq = ANY($1::bigint[])`, [seqs.slice(i, i + PAGE)]);
      for (const row of rows.map(toRow)) out.set(row.seq, [...(out.get(row.seq) ?? []), row]);
    }
    return out;
  }

  private async walk(
    pool: Pool,
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
      const { rows } = await pool.query(`SELECT ${ROW_COLUMNS} FROM audit_events WHERE seq >= $1 AND seq <= $2 ORDER BY audit_events.seq, audit_events.time LIMIT ${PAGE}`, [
        (expected - 1n).toString(),
        last.toString(),
      ]);
      let progressed = false;
      for (let index = 0; index < rows.length; index++) {
        const row = toRow(rows[index]);
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
          return { checked, failure: { seq, reason: `row ${seq} does not match its hash: its content was altered (edited or swapped)` }, lastAnchor };
        }
        if (!row.prevHash.equals(prevHash)) {
          return { checked, failure: { seq, reason: `row ${seq} does not link to row ${seq - 1n}: rows were removed, inserted or reordered` }, lastAnchor };
        }
        const anchor = anchors.get(seq);
        if (anchor) {
          if (!anchor.equals(row.hash)) {
            return { checked, failure: { seq: lastAnchor + 1n, reason: `the chain was rewritten after seq ${lastAnchor}: row ${seq} no longer carries the hash of the checkpoint at that seq` }, lastAnchor };
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
