import { execFileSync } from 'node:child_process';
import { createHash, createPublicKey } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AuditVerifier, recomputeHash } from '../../src/audit/audit-verifier';
import { ROW_COLUMNS, toRow } from '../../src/audit/audit.repository';
import { checkpointStatement } from '../../src/audit/audit-canonical';
import { DomainError, ErrorCode } from '../../src/common/errors';
import { createNodeSigner, NodeDigestSigner } from '../support/node-signer';
import { createTestDatabase, query, TestDatabase } from '../support/database';
import { tempDir } from '../support/server-process';
import { appendEvents, AuditHarness, createAuditHarness, tamper } from './audit-harness';

describe(AuditVerifier.name, () => {
  let database: TestDatabase;
  let harness: AuditHarness;
  let signer: NodeDigestSigner;

  beforeAll(() => {
    signer = createNodeSigner('EC-256');
  });
  beforeEach(async () => {
    database = await createTestDatabase();
    harness = await createAuditHarness(database.url, { signer });
  });
  afterEach(async () => {
    await harness.close();
    await database.drop();
  });

  /** Appends events up to `total`, checkpointing when the chain reaches each seq in `checkpointAt`. */
  async function buildLog(total: number, checkpointAt: number[]): Promise<void> {
    let written = 0;
    for (const target of [...checkpointAt, total]) {
      if (target > written) await appendEvents(harness.audit, target - written);
      written = Math.max(written, target);
      if (checkpointAt.includes(target)) expect((await harness.checkpoints.create()).seq).toBe(String(target));
    }
  }

  /** As an attacker with write access would: change row `from` and recompute every later hash and link. */
  async function rewriteChainFrom(from: number): Promise<void> {
    const rows = (
      await harness.dataSource.query(
        `SELECT ${ROW_COLUMNS} FROM audit_events WHERE seq >= $1 ORDER BY audit_events.seq`,
        [from],
      )
    ).map(toRow);
    let prevHash = rows[0].prevHash;
    for (const row of rows) {
      if (Number(row.seq) === from) row.data = { ...row.data, forged: true };
      row.prevHash = prevHash;
      row.hash = recomputeHash(row);
      prevHash = row.hash;
      await tamper(harness.dataSource, 'UPDATE audit_events SET data = $2, prev_hash = $3, hash = $4 WHERE seq = $1', [
        row.seq,
        JSON.stringify(row.data),
        row.prevHash,
        row.hash,
      ]);
    }
    await tamper(harness.dataSource, 'UPDATE audit_chain_head SET hash = $1', [prevHash]);
  }

  it('accepts an intact log, incrementally from the last checkpoint or in full', async () => {
    await buildLog(120, [50, 100]);
    const incremental = await harness.verifier.verify();
    expect(incremental).toMatchObject({
      ok: true,
      mode: 'incremental',
      from: '100',
      checked: 20,
      head: '120',
      lastCheckpoint: { seq: '100' },
    });
    expect(incremental.firstBrokenSeq).toBeUndefined();
    expect(await harness.verifier.verify('full')).toMatchObject({ ok: true, mode: 'full', from: '0', checked: 120 });
  });

  it('names an edited row', async () => {
    await buildLog(100, [50]);
    await tamper(harness.dataSource, `UPDATE audit_events SET data = '{"i": 999}' WHERE seq = 70`);
    expect(await harness.verifier.verify()).toMatchObject({
      ok: false,
      firstBrokenSeq: '70',
      reason: expect.stringMatching(/altered/),
    });
    // A checkpointed row is checked even incrementally.
    await tamper(harness.dataSource, `UPDATE audit_events SET type = 'forged' WHERE seq = 50`);
    expect(await harness.verifier.verify()).toMatchObject({ ok: false, firstBrokenSeq: '50' });
    // Elsewhere before the last checkpoint, an in-place edit is found by a full walk.
    await tamper(harness.dataSource, `UPDATE audit_events SET subject = 'forged' WHERE seq = 30`);
    expect(await harness.verifier.verify('full')).toMatchObject({ ok: false, firstBrokenSeq: '30' });
  });

  it('names a deleted row', async () => {
    await buildLog(100, [50]);
    await tamper(harness.dataSource, 'DELETE FROM audit_events WHERE seq = 60');
    expect(await harness.verifier.verify()).toMatchObject({
      ok: false,
      firstBrokenSeq: '60',
      reason: 'row 60 is missing',
    });
    expect(await harness.verifier.verify('full')).toMatchObject({ ok: false, firstBrokenSeq: '60' });
  });

  it('names the first of two swapped rows', async () => {
    await buildLog(100, [50]);
    await tamper(harness.dataSource, 'UPDATE audit_events SET seq = -1 WHERE seq = 70');
    await tamper(harness.dataSource, 'UPDATE audit_events SET seq = 70 WHERE seq = 71');
    await tamper(harness.dataSource, 'UPDATE audit_events SET seq = 71 WHERE seq = -1');
    expect(await harness.verifier.verify()).toMatchObject({ ok: false, firstBrokenSeq: '70' });
  });

  it('names a duplicated seq', async () => {
    await buildLog(20, []);
    await tamper(
      harness.dataSource,
      `INSERT INTO audit_events SELECT seq, time + interval '1 ms', type, actor, subject, data, prev_hash, hash FROM audit_events WHERE seq = 12`,
    );
    expect(await harness.verifier.verify('full')).toMatchObject({
      ok: false,
      firstBrokenSeq: '12',
      reason: expect.stringMatching(/more than once/),
    });
  });

  it('detects a chain recomputed from a point on: everything after the last checkpoint that still matches is unproven', async () => {
    await buildLog(100, [20, 50, 80]);
    await rewriteChainFrom(30);
    // Internally consistent again, but rows 50 and 80 no longer carry their checkpointed hashes.
    for (const mode of ['incremental', 'full'] as const) {
      expect(await harness.verifier.verify(mode)).toMatchObject({
        ok: false,
        firstBrokenSeq: '21',
        reason: expect.stringMatching(/rewritten after seq 20/),
      });
    }
  });

  it('detects a chain recomputed wholesale', async () => {
    await buildLog(60, [40]);
    await rewriteChainFrom(1);
    expect(await harness.verifier.verify()).toMatchObject({ ok: false, firstBrokenSeq: '1' });
  });

  it('detects a truncated tail through the last checkpoint, even when the head row was adjusted', async () => {
    await buildLog(100, [50, 100]);
    await tamper(harness.dataSource, 'DELETE FROM audit_events WHERE seq > 90');
    await tamper(
      harness.dataSource,
      'UPDATE audit_chain_head SET seq = 90, hash = (SELECT hash FROM audit_events WHERE seq = 90)',
    );
    expect(await harness.verifier.verify()).toMatchObject({
      ok: false,
      firstBrokenSeq: '91',
      reason: 'the log was truncated: checkpoint at seq 100 but the last row is seq 90',
    });
  });

  it('detects a truncated tail after the last checkpoint through the chain head', async () => {
    await buildLog(100, [50]);
    await tamper(harness.dataSource, 'DELETE FROM audit_events WHERE seq > 95');
    expect(await harness.verifier.verify()).toMatchObject({
      ok: false,
      firstBrokenSeq: '96',
      reason: expect.stringMatching(/truncated: the chain head records seq 100/),
    });
  });

  it('rejects a checkpoint signed by another key, or altered after signing', async () => {
    await buildLog(60, [50]);
    // Whoever can write the tables can add a checkpoint, but only with a key of their own.
    const intruder = createNodeSigner('EC-256');
    const [head] = await query<{ hash: Buffer }>(database.url, 'SELECT hash FROM audit_events WHERE seq = 60');
    const time = new Date().toISOString();
    const statement = checkpointStatement({ seq: '60', hash: head.hash, time });
    const signature = await intruder.signDigest(createHash('sha256').update(statement).digest(), 'SHA-256');
    await query(
      database.url,
      `INSERT INTO audit_checkpoints (seq, hash, time, key_spec, public_key, signature) VALUES (60, $1, $2, 'EC-256', $3, $4)`,
      [head.hash, time, intruder.publicKeySpki, signature],
    );
    expect(await harness.verifier.verify()).toMatchObject({
      ok: false,
      firstBrokenSeq: '60',
      reason: expect.stringMatching(/not a trusted checkpoint key/),
    });

    await tamper(harness.dataSource, 'DELETE FROM audit_checkpoints WHERE seq = 60');
    await tamper(harness.dataSource, `UPDATE audit_checkpoints SET time = time + interval '1 second'`);
    expect(await harness.verifier.verify()).toMatchObject({
      ok: false,
      firstBrokenSeq: '50',
      reason: expect.stringMatching(/signature does not verify/),
    });
  });

  it('refuses to checkpoint a broken chain', async () => {
    await buildLog(30, [10]);
    await tamper(harness.dataSource, `UPDATE audit_events SET subject = 'x' WHERE seq = 20`);
    const error = await harness.checkpoints.create().catch((e) => e);
    expect(error).toBeInstanceOf(DomainError);
    expect(error).toMatchObject({ code: ErrorCode.CONFLICT, details: { firstBrokenSeq: '20' } });
  });

  it('makes periodic checkpoints only when due and only once across replicas', async () => {
    const replica = await createAuditHarness(database.url, { signer });
    try {
      await appendEvents(harness.audit, 10);
      const made = await Promise.all([
        harness.checkpoints.createIfDue(),
        replica.checkpoints.createIfDue(),
        harness.checkpoints.createIfDue(),
      ]);
      expect(made.filter(Boolean)).toHaveLength(1);
      // Not due again until the interval has passed, and never for an unchanged head.
      await appendEvents(harness.audit, 5);
      expect(await harness.checkpoints.createIfDue()).toBeUndefined();
      expect(await harness.checkpoints.list()).toHaveLength(1);
    } finally {
      await replica.close();
    }
  });

  it('reports checkpoints as unavailable without a signer', async () => {
    const unsigned = await createAuditHarness(database.url);
    try {
      await appendEvents(unsigned.audit, 3);
      await expect(unsigned.checkpoints.create()).rejects.toMatchObject({ code: ErrorCode.SERVICE_UNAVAILABLE });
      expect(await unsigned.checkpoints.createIfDue()).toBeUndefined();
      expect(await unsigned.verifier.verify()).toMatchObject({ ok: true, lastCheckpoint: null });
    } finally {
      await unsigned.close();
    }
  });

  it.each(['EC-256', 'RSA-2048'] as const)(
    'publishes %s checkpoint signatures that OpenSSL verifies against the signer key',
    async (spec) => {
      const specSigner = spec === 'EC-256' ? signer : createNodeSigner(spec);
      const specHarness = await createAuditHarness(database.url, { signer: specSigner });
      try {
        await appendEvents(specHarness.audit, 5);
        const created = await specHarness.checkpoints.create();
        const [listed] = await specHarness.checkpoints.list();
        expect(listed).toEqual(created);
        const statement = Buffer.from(listed.statement, 'base64');
        // The published statement is exactly what anyone can rebuild from (seq, hash, time).
        expect(
          statement.equals(
            checkpointStatement({ seq: listed.seq, hash: Buffer.from(listed.hash, 'hex'), time: listed.time }),
          ),
        ).toBe(true);
        expect(Buffer.from(listed.publicKey, 'base64').equals(specSigner.publicKeySpki)).toBe(true);

        const dir = tempDir('checkpoint-openssl-');
        const files = {
          pub: path.join(dir, 'pub.pem'),
          data: path.join(dir, 'statement.json'),
          sig: path.join(dir, 'sig.bin'),
        };
        fs.writeFileSync(
          files.pub,
          createPublicKey({ key: specSigner.publicKeySpki, format: 'der', type: 'spki' }).export({
            type: 'spki',
            format: 'pem',
          }),
        );
        fs.writeFileSync(files.data, statement);
        const raw = Buffer.from(listed.signature, 'base64');
        fs.writeFileSync(files.sig, spec === 'EC-256' ? p1363ToDer(raw) : raw);
        const pss = spec === 'RSA-2048' ? ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32'] : [];
        const out = execFileSync(
          'openssl',
          ['dgst', '-sha256', ...pss, '-verify', files.pub, '-signature', files.sig, files.data],
          { encoding: 'utf8' },
        );
        expect(out.trim()).toBe('Verified OK');
      } finally {
        await specHarness.close();
      }
    },
  );

  it('still verifies the chain links after many pages of rows', async () => {
    await appendEvents(harness.audit, 12_000);
    await harness.checkpoints.create();
    await tamper(harness.dataSource, `UPDATE audit_events SET data = '{}' WHERE seq = 11001`);
    expect(await harness.verifier.verify('full')).toMatchObject({ ok: false, firstBrokenSeq: '11001', checked: 11001 });
    const rows = await query<{ n: string }>(database.url, 'SELECT count(*)::text AS n FROM audit_events');
    expect(rows[0].n).toBe('12000');
  });
});

/** ECDSA IEEE P1363 r||s → ASN.1 DER SEQUENCE { INTEGER r, INTEGER s }, as OpenSSL expects. */
function p1363ToDer(raw: Buffer): Buffer {
  const half = raw.length / 2;
  const integer = (bytes: Buffer) => {
    let i = 0;
    while (i < bytes.length - 1 && bytes[i] === 0) i++;
    let v = bytes.subarray(i);
    if (v[0] & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
    return Buffer.concat([Buffer.from([0x02, v.length]), v]);
  };
  const body = Buffer.concat([integer(raw.subarray(0, half)), integer(raw.subarray(half))]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}
