import type { Pool, PoolClient } from 'pg';
import { DomainError, ErrorCode } from '../common/errors';
import { canonicalTime, CanonicalRowText, eventHashHex } from './audit-canonical';
import { isMissingPartition, partitionFor, partitionsCovering } from './audit-partitions';
import { AuditPartitionsRepository } from './audit-partitions.repository';
import { asAuditError, withClient } from './audit-pg';
import { AuditRepository, ChainedRows, ChainHead } from './audit.repository';

/**
 * An event ready to be chained: normalised, every part already canonical JSON text (see
 * CanonicalRowText), so chaining it costs one template and one hash.
 */
export interface PreparedEvent extends CanonicalRowText {
  /** When the event happened (epoch ms); the row's time is this, kept non-decreasing along seq. */
  at: number;
}

interface Pending {
  event: PreparedEvent;
  resolve(seq: string): void;
  reject(error: unknown): void;
}

export interface AuditWriterOptions {
  /** Most events per transaction. */
  maxBatch: number;
  /** Events waiting beyond this are refused at once (503) instead of queueing without bound. */
  maxPending: number;
  statementTimeoutMs: number;
  now: () => number;
  onBatch?: (size: number, seconds: number) => void;
  onFailure?: (size: number) => void;
  /**
   * True when the pool's connections carry their own statement_timeout: batches then go in one
   * statement (audit_append_batch) onto the head this process last saw, falling back to the locked
   * read-then-write transaction when another replica moved the head.
   */
  singleStatement?: () => boolean;
}

/** A batch chained onto a head: the rows as jsonb text, their seqs, and the head after them. */
interface ChainedBatch extends ChainedRows {
  seqs: string[];
}

/**
 * Group commit for the audit chain. Callers enqueue; one flush at a time per process takes
 * everything waiting (up to maxBatch) and, in ONE transaction: locks the chain head row (the
 * per-batch lock that keeps replicas on one unbroken chain), assigns seq / prev_hash / hash,
 * inserts all rows with one INSERT that also moves the head, and commits (the statements are
 * AuditRepository's). Only then are the callers resolved. While a flush is in flight the next
 * batch accumulates, so batches grow with load and a commit's fsync is shared by many events.
 *
 * Round trips: the locked path takes three (lock and read the head; insert and move it; commit).
 * Once this process knows the head (its own last commit), a batch is chained onto it in Node and
 * sent as ONE statement, audit_append_batch, which locks the head, checks it is still the one the
 * batch was chained onto, inserts and moves it, and commits as it returns (autocommit). If another
 * replica moved the head meanwhile nothing is written; the function returns the current head, the
 * batch is chained again onto it (once), then the locked path takes over.
 */
export class AuditWriter {
  private queue: Pending[] = [];
  private draining = false;
  private idleWaiters: Array<() => void> = [];
  /** Months whose partition is known to exist, so the steady state never checks. */
  private readonly knownPartitions = new Set<string>();
  /** [from, to) of the last month found in knownPartitions: the common case is one numeric test. */
  private knownMonth = { fromMs: 0, toMs: 0 };
  /** The chain head as of this process's last commit; unknown after any failure. */
  private head?: ChainHead;

  constructor(
    private readonly pool: () => Pool,
    private readonly rows: AuditRepository,
    private readonly partitions: AuditPartitionsRepository,
    private readonly options: AuditWriterOptions,
  ) {}

  get pending(): number {
    return this.queue.length;
  }

  submit(events: PreparedEvent[]): Promise<string[]> {
    if (this.queue.length + events.length > this.options.maxPending) return this.fallingBehind(events.length);
    const settled = events.map(
      (event) => new Promise<string>((resolve, reject) => this.queue.push({ event, resolve, reject })),
    );
    this.kick();
    return Promise.all(settled);
  }

  /** submit([event]) without the arrays: the path every signature takes. */
  submitOne(event: PreparedEvent): Promise<string> {
    if (this.queue.length + 1 > this.options.maxPending) return this.fallingBehind(1);
    const settled = new Promise<string>((resolve, reject) => this.queue.push({ event, resolve, reject }));
    this.kick();
    return settled;
  }

  /** Events refused at once (503) rather than queued without bound. */
  private fallingBehind(count: number): Promise<never> {
    this.options.onFailure?.(count);
    return Promise.reject(
      new DomainError(ErrorCode.SERVICE_UNAVAILABLE, 'the audit log is falling behind; retry later', {
        retryAfterSeconds: 1,
      }),
    );
  }

  /** Resolves when nothing is queued or being written (used at shutdown and by tests). */
  idle(): Promise<void> {
    if (!this.draining && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private kick(): void {
    if (this.draining) return;
    this.draining = true;
    // setImmediate lets events submitted in the same turn of the event loop share the first batch.
    setImmediate(() => {
      void this.drain().finally(() => {
        this.draining = false;
        if (this.queue.length > 0) this.kick();
        else for (const resolve of this.idleWaiters.splice(0)) resolve();
      });
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      let taken = false;
      try {
        await withClient(this.pool(), async (client) => {
          // Taken once the connection is ready: whatever arrived meanwhile joins this batch.
          const batch = this.queue.splice(0, this.options.maxBatch);
          taken = true;
          await this.writeWithRetries(client, batch);
        });
      } catch (error) {
        // No connection at all: refuse what waits rather than let it queue behind a dead database.
        // (A failure after the batch was taken has already been reported to its callers.)
        if (!taken) this.fail(this.queue.splice(0, this.options.maxBatch), error);
      }
    }
  }

  /** Writes the batch; on a missing partition creates it and retries; isolates a poisoned event. */
  private async writeWithRetries(client: PoolClient, batch: Pending[]): Promise<void> {
    try {
      await this.ensureKnownPartitions(client, batch);
      await this.writeBatch(client, batch);
    } catch (error) {
      this.head = undefined;
      await this.rows.rollbackQuietly(client);
      if (isMissingPartition(error)) {
        // The head's time (another replica's clock) may have pushed rows into a month not yet created.
        this.knownPartitions.clear();
        try {
          this.knownMonth = { fromMs: 0, toMs: 0 };
          await this.partitions.ensure(
            client,
            partitionsCovering(Math.min(...batch.map((p) => p.event.at)), this.options.now() + 40 * 86400_000),
          );
          await this.writeBatch(client, batch);
          return;
        } catch (retryError) {
          this.head = undefined;
          await this.rows.rollbackQuietly(client);
          return this.settleFailure(client, batch, retryError);
        }
      }
      return this.settleFailure(client, batch, error);
    }
  }

  private async settleFailure(client: PoolClient, batch: Pending[], error: unknown): Promise<void> {
    const unavailable = asAuditError(error) !== error;
    if (!unavailable && batch.length > 1) {
      // Not an outage: one event the database refused must not take its batch-mates down with it.
      for (let i = 0; i < batch.length; i++) {
        try {
          await this.writeWithRetries(client, [batch[i]]);
        } catch (outage) {
          this.fail(batch.slice(i + 1), outage);
          throw outage;
        }
      }
      return;
    }
    this.fail(batch, error);
    if (unavailable) throw error;
  }

  private fail(batch: Pending[], error: unknown): void {
    if (batch.length === 0) return;
    this.options.onFailure?.(batch.length);
    const reported = asAuditError(error);
    for (const event of batch) event.reject(reported);
  }

  private async ensureKnownPartitions(client: PoolClient, batch: Pending[]): Promise<void> {
    const { fromMs, toMs } = this.knownMonth;
    let inKnownMonth = true;
    for (let i = 0; i < batch.length && inKnownMonth; i++)
      inKnownMonth = batch[i].event.at >= fromMs && batch[i].event.at < toMs;
    if (inKnownMonth) return;
    const months = new Map(batch.map((p) => partitionFor(p.event.at)).map((p) => [p.name, p]));
    const unknown = [...months.values()].filter((p) => !this.knownPartitions.has(p.name));
    if (unknown.length > 0) {
      await this.partitions.ensure(client, unknown);
      for (const p of unknown) this.knownPartitions.add(p.name);
    }
    const last = partitionFor(batch[batch.length - 1].event.at);
    this.knownMonth = { fromMs: last.from.getTime(), toMs: last.to.getTime() };
  }

  private async writeBatch(client: PoolClient, batch: Pending[]): Promise<void> {
    const started = process.hrtime.bigint();
    const seqs =
      (this.head && this.options.singleStatement?.() && (await this.appendInOneStatement(client, batch, this.head))) ||
      (await this.appendLocked(client, batch));
    this.options.onBatch?.(batch.length, Number(process.hrtime.bigint() - started) / 1e9);
    for (let i = 0; i < batch.length; i++) batch[i].resolve(seqs[i]);
  }

  /** Chained onto `head` in one statement; undefined when the head moved twice under it (nothing written). */
  private async appendInOneStatement(
    client: PoolClient,
    batch: Pending[],
    head: ChainHead,
  ): Promise<string[] | undefined> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const chained = chain(batch, head);
      const outcome = await this.rows.appendOnto(client, head, chained);
      if (outcome.appended) {
        this.head = chained.last;
        return chained.seqs;
      }
      // Another replica appended since our last commit: chain onto the head it left.
      head = outcome.head;
    }
    this.head = undefined;
    return undefined;
  }

  /** Lock and read the head, insert and move it, commit: three round trips, always makes progress. */
  private async appendLocked(client: PoolClient, batch: Pending[]): Promise<string[]> {
    // One round trip each: begin, bound the statements, lock and read the head; insert; commit.
    const head = await this.rows.beginAndLockHead(client, this.options.statementTimeoutMs);
    const chained = chain(batch, head);
    await this.rows.insertAndMoveHead(client, chained);
    await this.rows.commit(client);
    this.head = chained.last;
    return chained.seqs;
  }
}

/** Assigns seq, time, prev_hash and hash to each event after `head`, in order. */
function chain(batch: Pending[], head: ChainHead): ChainedBatch {
  let seq = head.seq;
  let prevHashHex = head.hash.toString('hex');
  let lastTime = head.timeMs;
  const seqs: string[] = new Array(batch.length);
  let rowsJson = '[';
  for (let i = 0; i < batch.length; i++) {
    const event = batch[i].event;
    seq += 1n;
    // Time never goes backwards along the chain, even across replicas with skewed clocks, so
    // monthly partitions hold contiguous seq ranges (retention drops a prefix of the chain).
    if (event.at > lastTime) lastTime = event.at;
    const seqText = seq.toString();
    const time = canonicalTime(lastTime);
    const hashHex = eventHashHex(seqText, time, event, prevHashHex);
    seqs[i] = seqText;
    rowsJson += `${i === 0 ? '' : ','}[${seqText},"${time}",${event.typeJson},${event.actorJson},${event.subjectJson},${event.dataJson},"${prevHashHex}","${hashHex}"]`;
    prevHashHex = hashHex;
  }
  return { rowsJson: `${rowsJson}]`, seqs, last: { seq, hash: Buffer.from(prevHashHex, 'hex'), timeMs: lastTime } };
}
