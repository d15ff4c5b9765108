import fc from 'fast-check';
import { Client } from 'pg';
import { DataSource } from 'typeorm';

const originalQuery = Client.prototype.query;
import { AuditService } from '../../src/audit/audit.service';
import { DomainError, ErrorCode } from '../../src/common/errors';
import { dataSourceOptions } from '../../src/database/data-source-options';
import { mapError } from '../../src/observability/http-exception.filter';
import { createTestDatabase, query, TestDatabase } from '../support/database';
import { appendEvents, AuditHarness, createAuditHarness, TcpRelay } from './audit-harness';

describe(AuditService.name, () => {
  let database: TestDatabase;
  let harness: AuditHarness;

  beforeEach(async () => {
    database = await createTestDatabase();
    harness = await createAuditHarness(database.url);
  });
  afterEach(async () => {
    await harness.close();
    await database.drop();
  });

  it('group-commits 2,000 concurrent records into contiguous seqs of one verifiable chain, in few transactions', async () => {
    const seqs = await appendEvents(harness.audit, 2000);
    expect(new Set(seqs).size).toBe(2000);
    expect(seqs.map(Number).sort((a, b) => a - b)).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
    // Each caller got the seq of its own row.
    const rows = await query<{ seq: string; subject: string }>(
      database.url,
      'SELECT seq::text AS seq, subject FROM audit_events ORDER BY seq',
    );
    const bySubject = new Map(rows.map((r) => [r.subject, r.seq]));
    seqs.forEach((seq, i) => expect(bySubject.get(`s${i}`)).toBe(seq));
    const result = await harness.verifier.verify('full');
    expect(result).toMatchObject({ ok: true, checked: 2000, head: '2000' });
    // Rows committed together share their inserting transaction id (xmin).
    const [{ transactions }] = await query<{ transactions: number }>(
      database.url,
      'SELECT count(DISTINCT xmin::text)::int AS transactions FROM audit_events',
    );
    expect(transactions).toBeLessThan(100);
  });

  it('gives the events of one recordMany call contiguous seqs in order', async () => {
    await appendEvents(harness.audit, 3);
    const seqs = await harness.audit.recordMany([
      { type: 'a', data: {} },
      { type: 'b', data: {} },
      { type: 'c', data: {} },
    ]);
    expect(seqs).toEqual([{ seq: '4' }, { seq: '5' }, { seq: '6' }]);
  });

  it('keeps one unbroken chain when two replicas write concurrently', async () => {
    const other = await createAuditHarness(database.url);
    try {
      const [a, b] = await Promise.all([
        (async () => {
          const out: string[] = [];
          for (let round = 0; round < 10; round++) out.push(...(await appendEvents(harness.audit, 100, 'replica.a')));
          return out;
        })(),
        (async () => {
          const out: string[] = [];
          for (let round = 0; round < 10; round++) out.push(...(await appendEvents(other.audit, 100, 'replica.b')));
          return out;
        })(),
      ]);
      const all = [...a, ...b].map(Number).sort((x, y) => x - y);
      expect(all).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
      const [{ interleaved }] = await query<{ interleaved: string }>(
        database.url,
        `SELECT count(*)::text AS interleaved FROM (SELECT type, lag(type) OVER (ORDER BY seq) AS previous FROM audit_events) t WHERE type <> previous`,
      );
      // Both replicas really wrote into the same chain, batch after batch.
      expect(Number(interleaved)).toBeGreaterThan(1);
      expect(await harness.verifier.verify('full')).toMatchObject({ ok: true, checked: 2000 });
    } finally {
      await other.close();
    }
  });

  it('after its first (locked) batch, appends each batch in one statement: one round trip per batch', async () => {
    const texts: string[] = [];
    const spy = jest.spyOn(Client.prototype, 'query').mockImplementation(function (this: Client, ...args: unknown[]) {
      // Only the audit writer's own connections.
      if (
        (this as unknown as { connectionParameters: { application_name?: string } }).connectionParameters
          .application_name === 'signet-audit-writer'
      ) {
        const config = args[0] as string | { text: string };
        texts.push(typeof config === 'string' ? config : config.text);
      }
      return originalQuery.apply(this, args as never) as never;
    });
    try {
      // One at a time: each record is its own batch.
      for (let i = 0; i < 10; i++) await harness.audit.record({ type: 'round.trip', data: { i } });
    } finally {
      spy.mockRestore();
    }
    const first = texts.findIndex((text) => text.includes('audit_append_batch'));
    // The first batch: partitions checked, head locked and read, rows inserted, commit.
    expect(texts.slice(0, first).filter((text) => text.includes('FOR UPDATE'))).toHaveLength(1);
    // Every later batch: exactly one statement.
    expect(texts.slice(first)).toHaveLength(9);
    expect(texts.slice(first).every((text) => text.includes('audit_append_batch'))).toBe(true);
    expect(await harness.verifier.verify('full')).toMatchObject({ ok: true, checked: 10, head: '10' });
  });

  it('chains onto the head another replica left when its own view of the head is stale, writing nothing twice', async () => {
    const other = await createAuditHarness(database.url);
    try {
      expect(await appendEvents(harness.audit, 3, 'replica.a')).toEqual(['1', '2', '3']);
      expect(await appendEvents(other.audit, 2, 'replica.b')).toEqual(['4', '5']);
      // harness last saw head 3: its one-statement append finds head 5 and chains onto it.
      expect(await harness.audit.record({ type: 'replica.a', data: { after: 'b' } })).toEqual({ seq: '6' });
      expect(await other.audit.record({ type: 'replica.b', data: { after: 'a' } })).toEqual({ seq: '7' });
      const rows = await query<{ seq: string; type: string }>(
        database.url,
        'SELECT seq::text AS seq, type FROM audit_events ORDER BY seq',
      );
      expect(rows.map((r) => `${r.seq}:${r.type}`)).toEqual([
        '1:replica.a',
        '2:replica.a',
        '3:replica.a',
        '4:replica.b',
        '5:replica.b',
        '6:replica.a',
        '7:replica.b',
      ]);
      expect(await harness.verifier.verify('full')).toMatchObject({ ok: true, checked: 7, head: '7' });
    } finally {
      await other.close();
    }
  });

  it('rejects with 503 DATABASE_UNAVAILABLE when the database is down, writes nothing, and resumes the chain when it is back', async () => {
    const relay = new TcpRelay(Number(new URL(database.url).port));
    await relay.start();
    const url = new URL(database.url);
    url.port = String(relay.port);
    const dataSource = new DataSource(dataSourceOptions(url.toString(), 2));
    await dataSource.initialize();
    const audit = new AuditService(dataSource);
    try {
      expect(await audit.record({ type: 'before', data: {} })).toEqual({ seq: '1' });

      await relay.stop();
      const failures = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => audit.record({ type: 'sign', data: { i } })),
      );
      for (const failure of failures) {
        expect(failure.status).toBe('rejected');
        const error = (failure as PromiseRejectedResult).reason;
        expect(error).toBeInstanceOf(DomainError);
        expect((error as DomainError).code).toBe(ErrorCode.DATABASE_UNAVAILABLE);
        expect(mapError(error).status).toBe(503);
      }
      expect(await query(database.url, "SELECT 1 FROM audit_events WHERE type = 'sign'")).toEqual([]);

      await relay.start();
      let resumed: { seq: string } | undefined;
      for (let attempt = 0; attempt < 50 && !resumed; attempt++) {
        resumed = await audit.record({ type: 'after', data: {} }).catch(() => undefined);
        if (!resumed) await new Promise((r) => setTimeout(r, 100));
      }
      expect(resumed).toEqual({ seq: '2' });
      expect(await harness.verifier.verify('full')).toMatchObject({ ok: true, checked: 2 });
    } finally {
      await audit.close();
      await dataSource.destroy();
      await relay.stop();
    }
  });

  it('writes while its callers hold every shared pool connection in transactions of their own', async () => {
    const small = new DataSource(dataSourceOptions(database.url, 2));
    await small.initialize();
    const audit = new AuditService(small);
    try {
      // Both connections of the shared pool wait, inside transactions, for their audit rows.
      const seqs = await Promise.all(
        [0, 1].map((i) =>
          small.transaction(async (manager) => {
            await manager.query('SELECT 1');
            return (await audit.record({ type: 'in.transaction', data: { i } })).seq;
          }),
        ),
      );
      expect(seqs.sort()).toEqual(['1', '2']);
    } finally {
      await audit.close();
      await small.destroy();
    }
  });

  it('stores any JSON-like data so that its hash still verifies after the round trip through PostgreSQL', async () => {
    await harness.audit.record({
      type: 'edge.cases',
      actor: { tokenId: 't1', address: '127.0.0.1', ...({ extra: 'dropped' } as object) },
      subject: 'nul\u0000 and lone \ud800 surrogate',
      data: {
        buffer: Buffer.from('signature'),
        date: new Date(0),
        big: 12345678901234567890n,
        numbers: [0, -0, 1e21, 1e-7, 0.1 + 0.2, Number.MAX_SAFE_INTEGER, NaN],
        text: 'tab\t quote" nul\u0000 emoji 🙂 é',
        nested: { z: 1, a: [{ b: null, skip: undefined }] },
        'key\u0000': true,
      },
    });
    await fc.assert(
      fc.asyncProperty(fc.dictionary(fc.string(), fc.jsonValue()), async (data) => {
        await harness.audit.record({ type: 'random', data });
      }),
      { numRuns: 100 },
    );
    expect(await harness.verifier.verify('full')).toMatchObject({ ok: true, checked: 101 });
    const [row] = await query<{ data: Record<string, unknown>; actor: unknown }>(
      database.url,
      'SELECT data, actor FROM audit_events WHERE seq = 1',
    );
    expect(row.actor).toEqual({ tokenId: 't1', address: '127.0.0.1' });
    expect(row.data.buffer).toBe(Buffer.from('signature').toString('base64'));
    expect(row.data.big).toBe('12345678901234567890');
  });

  it('refuses updates, deletes and truncation of audit rows at the database level, even to the owner role', async () => {
    // (The service role has no such privileges at all: test/database/least-privilege.int-spec.ts.)
    await appendEvents(harness.audit, 2);
    await expect(query(database.ownerUrl, "UPDATE audit_events SET type = 'x' WHERE seq = 1")).rejects.toThrow(
      /append-only/,
    );
    await expect(query(database.ownerUrl, 'DELETE FROM audit_events WHERE seq = 2')).rejects.toThrow(/append-only/);
    await expect(query(database.ownerUrl, 'TRUNCATE audit_events')).rejects.toThrow(/append-only/);
    await expect(query(database.ownerUrl, 'DELETE FROM audit_checkpoints')).resolves.toEqual([]);
    expect(await harness.verifier.verify('full')).toMatchObject({ ok: true, checked: 2 });
  });

  it('rejects an event with a malformed type as a programming error', async () => {
    await expect(harness.audit.record({ type: 'Not A Type', data: {} })).rejects.toThrow(TypeError);
  });
});
