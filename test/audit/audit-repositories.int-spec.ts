import type { PoolClient } from 'pg';
import { DataSource } from 'typeorm';
import { GENESIS_HASH } from '../../src/audit/audit-canonical';
import { AuditCheckpointsRepository } from '../../src/audit/audit-checkpoints.repository';
import { partitionFor, partitionsCovering } from '../../src/audit/audit-partitions';
import { AuditPartitionsRepository } from '../../src/audit/audit-partitions.repository';
import { pgPool } from '../../src/audit/audit-pg';
import { AuditVerificationsRepository } from '../../src/audit/audit-verifications.repository';
import { AuditRepository, ChainHead } from '../../src/audit/audit.repository';
import { ADVISORY_LOCKS } from '../../src/database/advisory-lock';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { createTestDatabase, query, TestDatabase } from '../support/database';

/**
 * The audit log's locks and partition maintenance, once each, on real PostgreSQL: the chain-head
 * lock that keeps replicas on one chain, the one-statement append that refuses a stale head, the
 * checkpoint and full-verify locks, creating partitions (twice at once creates each once) and
 * retention's drop under its lock.
 */
describe('audit repositories', () => {
  let database: TestDatabase;
  let dataSource: DataSource;
  let rows: AuditRepository;
  let checkpoints: AuditCheckpointsRepository;
  let partitions: AuditPartitionsRepository;
  let verifications: AuditVerificationsRepository;

  beforeAll(async () => {
    database = await createTestDatabase();
    dataSource = await new DataSource(dataSourceOptions(database.url, 6)).initialize();
    rows = new AuditRepository(dataSource);
    checkpoints = new AuditCheckpointsRepository(dataSource);
    partitions = new AuditPartitionsRepository(dataSource);
    verifications = new AuditVerificationsRepository(dataSource);
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await database?.drop();
  });

  async function onConnection<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await pgPool(dataSource).connect();
    try {
      return await work(client);
    } finally {
      client.release();
    }
  }

  /** One event's row chained onto `head`, as the writer sends it (hashes are not checked by the database). */
  function oneRow(head: ChainHead, at: number): { rowsJson: string; last: ChainHead } {
    const seq = head.seq + 1n;
    const hash = Buffer.alloc(32, Number(seq % 256n));
    const time = new Date(at).toISOString();
    return {
      rowsJson: JSON.stringify([
        [seq.toString(), time, 'test.event', null, null, {}, head.hash.toString('hex'), hash.toString('hex')],
      ]),
      last: { seq, hash, timeMs: at },
    };
  }

  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  beforeAll(async () => {
    // Rows written below fall in this month.
    const now = Date.now();
    await partitions.ensureOnOwnConnection(partitionsCovering(now, now + 40 * 86400_000));
  });

  it('holds the chain head for one transaction at a time: a second locker waits, then reads the head the first one moved', async () => {
    await onConnection(async (first) =>
      onConnection(async (second) => {
        const head = await rows.beginAndLockHead(first, 10_000);
        expect(head).toEqual({ seq: 0n, hash: GENESIS_HASH, timeMs: expect.any(Number) });
        let secondHead: ChainHead | undefined;
        const waiting = rows.beginAndLockHead(second, 10_000).then((h) => (secondHead = h));
        await pause(300);
        expect(secondHead).toBeUndefined();
        const chained = oneRow(head, Date.now());
        await rows.insertAndMoveHead(first, chained);
        await rows.commit(first);
        await waiting;
        expect(secondHead).toEqual(chained.last);
        await rows.rollbackQuietly(second);
      }),
    );
    expect(await rows.headAndLastSeq()).toEqual({ headSeq: '1', headHash: expect.any(Buffer), maxSeq: '1' });
  });

  it('appends in one statement only onto the current head, and answers the current head otherwise without writing', async () => {
    await onConnection(async (client) => {
      const { headSeq, headHash } = await rows.headAndLastSeq();
      const current: ChainHead = { seq: BigInt(headSeq), hash: headHash, timeMs: Date.now() - 1000 };
      const stale: ChainHead = { seq: current.seq - 1n, hash: GENESIS_HASH, timeMs: 0 };
      const refused = await rows.appendOnto(client, stale, oneRow(stale, Date.now()));
      expect(refused).toEqual({
        appended: false,
        head: { seq: current.seq, hash: current.hash, timeMs: expect.any(Number) },
      });
      expect((await rows.headAndLastSeq()).maxSeq).toBe(headSeq);

      const chained = oneRow(current, Date.now());
      expect(await rows.appendOnto(client, current, chained)).toEqual({ appended: true });
      expect(await rows.headAndLastSeq()).toEqual({
        headSeq: chained.last.seq.toString(),
        headHash: chained.last.hash,
        maxSeq: chained.last.seq.toString(),
      });
    });
  });

  /** Runs `inside` while another transaction holds what `take` takes on its connection, then commits that transaction. */
  async function whileHeld<T>(take: (client: PoolClient) => Promise<unknown>, inside: () => Promise<T>): Promise<T> {
    let release!: () => void;
    let held!: () => void;
    const isHeld = new Promise<void>((resolve) => (held = resolve));
    const holder = checkpoints.transaction(async (client) => {
      await take(client);
      held();
      await new Promise<void>((resolve) => (release = resolve));
    });
    await isHeld;
    try {
      return await inside();
    } finally {
      release();
      await holder;
    }
  }

  it("refuses the checkpoint lock to a second transaction while the first holds it; waiting for it gets it at the first's commit", async () => {
    const order: string[] = [];
    const { refused, waiter } = await whileHeld(
      async (client) => expect(await checkpoints.lock(client, false)).toBe(true),
      async () => {
        const refused = await checkpoints.transaction((other) => checkpoints.lock(other, false));
        const waiter = checkpoints.transaction(async (other) => {
          const got = await checkpoints.lock(other, true);
          order.push('waiter got the lock');
          return got;
        });
        await pause(300);
        order.push('holder commits');
        // Wrapped in an object: returning the promise itself would make whileHeld await it before releasing.
        return { refused, waiter };
      },
    );
    expect(refused).toBe(false);
    expect(await waiter).toBe(true);
    expect(order).toEqual(['holder commits', 'waiter got the lock']);
  });

  it('runs one full verify at a time across replicas: a second one does not run while the first holds the lock', async () => {
    let inner: string | undefined = 'not called';
    const outer = await verifications.whileHoldingFullVerifyLock(async () => {
      inner = await verifications.whileHoldingFullVerifyLock(async () => 'ran');
      return 'first';
    });
    expect(outer).toBe('first');
    expect(inner).toBeUndefined();
    expect(await verifications.whileHoldingFullVerifyLock(async () => 'again')).toBe('again');
  });

  it('creates missing partitions once, even when two connections ask at once, and lists them', async () => {
    const wanted = partitionsCovering(Date.UTC(2020, 0, 15), Date.UTC(2020, 1, 15));
    expect(wanted.map((p) => p.name)).toEqual(['audit_events_p202001', 'audit_events_p202002']);
    const created = await Promise.all([
      onConnection((c) => partitions.ensure(c, wanted)),
      onConnection((c) => partitions.ensure(c, wanted)),
    ]);
    expect(created.flat().sort()).toEqual(['audit_events_p202001', 'audit_events_p202002']);
    expect(await onConnection((c) => partitions.ensure(c, wanted))).toEqual([]);
    expect(await partitions.partitionNames()).toEqual(
      expect.arrayContaining(['audit_events_p202001', 'audit_events_p202002', partitionFor(Date.now()).name]),
    );
    expect(await partitions.retentionState(wanted[0])).toEqual({
      first: null,
      last: null,
      exportedThrough: '0',
      lastCheckpointSeq: null,
    });
  });

  it("creates a partition once when two connections both found it missing and queued on the partitions lock (the second sees the first one's table)", async () => {
    // Both pass the optimistic check and wait on the lock the test holds; when it is released, the
    // first creates the month, and the second, whose transaction began before that, must see it
    // (two replicas on a month boundary). A future month: the retention test below drops the oldest.
    const wanted = partitionsCovering(Date.UTC(2090, 5, 10), Date.UTC(2090, 5, 20));
    expect(wanted.map((p) => p.name)).toEqual(['audit_events_p209006']);
    const { both } = await whileHeld(
      (client) => client.query('SELECT pg_advisory_xact_lock($1::bigint)', [ADVISORY_LOCKS.auditPartitions.toString()]),
      async () => {
        const both = Promise.all([
          onConnection((c) => partitions.ensure(c, wanted)),
          onConnection((c) => partitions.ensure(c, wanted)),
        ]);
        await pause(300);
        return { both };
      },
    );
    expect((await both).flat()).toEqual(['audit_events_p209006']);
  });

  it("drops the oldest expired partition under the retention lock, waiting for another holder's transaction", async () => {
    const [january, february] = partitionsCovering(Date.UTC(2020, 0, 15), Date.UTC(2020, 1, 15));
    await partitions.drop(january, 30);
    let dropped = false;
    const { dropping } = await whileHeld(
      (client) => client.query('SELECT pg_advisory_xact_lock($1::bigint)', [ADVISORY_LOCKS.auditRetention.toString()]),
      async () => {
        const dropping = partitions.drop(february, 30).then(() => (dropped = true));
        await pause(300);
        expect(dropped).toBe(false);
        return { dropping };
      },
    );
    await dropping;
    const names = await partitions.partitionNames();
    expect(names).not.toContain('audit_events_p202001');
    expect(names).not.toContain('audit_events_p202002');
    const drops = await query<{ partition_name: string }>(
      database.adminUrl,
      'SELECT partition_name FROM audit_retention_drops ORDER BY partition_name',
    );
    expect(drops.map((d) => d.partition_name)).toEqual(['audit_events_p202001', 'audit_events_p202002']);
  });
});
