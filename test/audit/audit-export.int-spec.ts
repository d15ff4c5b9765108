import { AuditExportService } from '../../src/audit/audit-export.service';
import { GENESIS_HASH } from '../../src/audit/audit-canonical';
import { createNodeSigner } from '../support/node-signer';
import { createTestDatabase, query, TestDatabase } from '../support/database';
import { AuditHarness, createAuditHarness } from './audit-harness';

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += chunk.toString();
  return text;
}

async function watermark(url: string): Promise<string> {
  return (await query<{ seq: string }>(url, 'SELECT exported_through_seq::text AS seq FROM audit_export_watermark'))[0]
    .seq;
}

describe(AuditExportService.name, () => {
  let database: TestDatabase;
  let harness: AuditHarness;

  beforeEach(async () => {
    database = await createTestDatabase();
    harness = await createAuditHarness(database.url, { signer: createNodeSigner('EC-256') });
  });
  afterEach(async () => {
    await harness.close();
    await database.drop();
  });

  it('pages events as JSON with a cursor and a type filter', async () => {
    for (let i = 0; i < 25; i++)
      await harness.audit.record({
        type: i % 5 === 0 ? 'token.created' : 'sign',
        actor: { tokenId: 't' },
        subject: `k${i}`,
        data: { i },
      });
    const first = await harness.exports.page({ limit: 10 });
    expect(first.events.map((e) => e.seq)).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
    expect(first.next).toBe('10');
    expect(first.events[0]).toEqual({
      seq: '1',
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      type: 'token.created',
      actor: { tokenId: 't' },
      subject: 'k0',
      data: { i: 0 },
      prevHash: GENESIS_HASH.toString('hex'),
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    first.events.slice(1).forEach((e, i) => expect(e.prevHash).toBe(first.events[i].hash));

    const filtered = await harness.exports.page({ after: '10', type: 'token.created' });
    expect(filtered.events.map((e) => e.seq)).toEqual(['11', '16', '21']);
    expect(filtered.next).toBeNull();
    // A filtered read is not an export of everything in its range.
    expect(await watermark(database.url)).toBe('10');
  });

  it('filters by subject: the row subject or the sub of the workload identity that acted; never moves the watermark; the chain still verifies', async () => {
    const workload = (sub: string) => ({
      role: 'signer',
      tokenName: 'oidc:gha',
      workload: {
        provider: 'gha',
        sub,
        rule: 'app-release',
        jti: `j-${sub}`,
        claims: { repository: 'acme/app', ref: 'refs/heads/main' },
      },
    });
    await harness.audit.record({
      type: 'token.created',
      actor: { tokenId: 't' },
      subject: 'repo:acme/app:ref:refs/heads/main',
      data: {},
    });
    await harness.audit.recordSign(workload('repo:acme/app:ref:refs/heads/main'), 'release', {
      version: 1,
      keySpec: 'EC-256',
      algorithm: 'ECDSA-SHA-256',
      digest: `sha256:${'a'.repeat(64)}`,
      mode: 'digest',
      signatureFormat: 'raw',
      signature: 'AA==',
      artifact: null,
    });
    await harness.audit.record({
      type: 'sign.withheld',
      actor: workload('repo:acme/other:ref:refs/heads/main'),
      subject: 'release',
      data: {},
    });
    await harness.audit.record({ type: 'sign', actor: { tokenId: 't' }, subject: 'release', data: {} });
    const bySub = await harness.exports.page({ subject: 'repo:acme/app:ref:refs/heads/main' });
    expect(bySub.events.map((e) => [e.seq, e.type])).toEqual([
      ['1', 'token.created'],
      ['2', 'sign'],
    ]);
    expect(bySub.events[1].actor).toEqual(workload('repo:acme/app:ref:refs/heads/main'));
    expect((await harness.exports.page({ subject: 'release', type: 'sign' })).events.map((e) => e.seq)).toEqual([
      '2',
      '4',
    ]);
    const streamed = (await readAll(await harness.exports.stream({ subject: 'repo:acme/other:ref:refs/heads/main' })))
      .trimEnd()
      .split('\n');
    expect(streamed.map((line) => JSON.parse(line).seq)).toEqual(['3']);
    expect(await watermark(database.url)).toBe('0');
    expect(await harness.verifier.verify('full')).toMatchObject({ ok: true, checked: 4 });
  });

  it('streams NDJSON up to the head and moves the export watermark only for complete, contiguous exports', async () => {
    for (let i = 0; i < 30; i++) await harness.audit.record({ type: 'sign', data: { i } });
    const lines = (await readAll(await harness.exports.stream({}))).trimEnd().split('\n');
    expect(lines).toHaveLength(30);
    expect(lines.map((line) => JSON.parse(line).seq)).toEqual(Array.from({ length: 30 }, (_, i) => String(i + 1)));
    expect(await watermark(database.url)).toBe('30');

    for (let i = 0; i < 5; i++) await harness.audit.record({ type: 'sign', data: { i } });
    // Starting beyond the watermark leaves a gap: not counted.
    await readAll(await harness.exports.stream({ after: '32' }));
    expect(await watermark(database.url)).toBe('30');
    await readAll(await harness.exports.stream({ after: '30', type: 'sign' }));
    expect(await watermark(database.url)).toBe('30');
    await readAll(await harness.exports.stream({ after: '25', limit: 7 }));
    expect(await watermark(database.url)).toBe('32');
  });
});

describe('audit retention', () => {
  let database: TestDatabase;
  let harness: AuditHarness;
  let now = 0;

  beforeEach(async () => {
    now = Date.UTC(2024, 0, 10);
    database = await createTestDatabase();
    harness = await createAuditHarness(database.url, {
      signer: createNodeSigner('EC-256'),
      clock: () => now,
      env: { SIGNET_AUDIT_RETENTION_DAYS: '30' },
    });
  });
  afterEach(async () => {
    await harness.close();
    await database.drop();
  });

  async function partitions(): Promise<string[]> {
    const rows = await query<{ name: string }>(
      database.url,
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_events'::regclass ORDER BY 1`,
    );
    return rows.map((r) => r.name);
  }

  it('drops expired monthly partitions only once exported and checkpointed, oldest first, and the kept chain still verifies', async () => {
    for (const month of [0, 1, 2]) {
      now = Date.UTC(2024, month, 10);
      for (let i = 0; i < 10; i++) await harness.audit.record({ type: 'sign', data: { month, i } });
    }
    expect(await partitions()).toEqual(
      expect.arrayContaining(['audit_events_p202401', 'audit_events_p202402', 'audit_events_p202403']),
    );
    now = Date.UTC(2024, 5, 1);

    expect(await harness.retention.apply()).toEqual([
      { partition: 'audit_events_p202401', dropped: false, reason: expect.stringMatching(/^not exported/) },
    ]);
    await harness.exports.page({ limit: 15 });
    expect(await harness.retention.apply()).toEqual([
      {
        partition: 'audit_events_p202401',
        dropped: false,
        reason: expect.stringMatching(/^not covered by a checkpoint/),
      },
    ]);

    await harness.checkpoints.create();
    expect(await harness.retention.apply()).toEqual([
      { partition: 'audit_events_p202401', dropped: true },
      {
        partition: 'audit_events_p202402',
        dropped: false,
        reason: 'not exported: rows up to seq 15 were exported, the partition ends at seq 20',
      },
    ]);

    await harness.exports.page({ after: '15' });
    expect((await harness.retention.apply()).map((d) => [d.partition, d.dropped])).toEqual([
      ['audit_events_p202402', true],
      ['audit_events_p202403', true],
    ]);
    expect(await partitions()).not.toEqual(expect.arrayContaining(['audit_events_p202401']));
    expect((await partitions()).filter((p) => p < 'audit_events_p202404')).toEqual([]);

    // Each drop was audited before it happened, and the kept tail still proves itself.
    const drops = await harness.exports.page({ type: 'audit.partition.dropped' });
    expect(drops.events.map((e) => e.subject)).toEqual([
      'audit_events_p202401',
      'audit_events_p202402',
      'audit_events_p202403',
    ]);
    expect(await harness.verifier.verify('full')).toMatchObject({ ok: true, from: '30' });
    expect(await harness.verifier.verify()).toMatchObject({ ok: true });
    await harness.checkpoints.create();
    expect(await harness.verifier.verify()).toMatchObject({ ok: true });
  });

  it('keeps everything when no retention is configured', async () => {
    await harness.audit.record({ type: 'sign', data: {} });
    now = Date.UTC(2030, 0, 1);
    expect(await harness.retention.apply(0)).toEqual([]);
    expect(await partitions()).toEqual(['audit_events_p202401']);
  });
});
