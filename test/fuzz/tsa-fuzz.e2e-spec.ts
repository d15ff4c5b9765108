import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { readChildren, readSingle } from '../../src/pki/der-reader';
import { tempDir } from '../support/server-process';
import { fuzzParameters, mutatedBytes } from './arbitraries';
import { FuzzApp, startFuzzApp } from './fuzz-harness';

/**
 * The RFC 3161 TSA (`POST /tsa`) under random and mutated DER queries (bit flips, truncation,
 * length tampering, junk), the way the OCSP responder is fuzzed: always HTTP 200 with a
 * TimeStampResp whose status is granted, grantedWithMods or rejection (never a 5xx, never
 * `waiting`); a rejection must not have called C_Sign; and OpenSSL's queries are still granted
 * afterwards.
 */

const PKI_STATUS = { granted: 0, grantedWithMods: 1, rejection: 2 } as const;

/** status of a DER TimeStampResp: SEQUENCE { PKIStatusInfo SEQUENCE { INTEGER status, … }, token? }. */
function pkiStatus(der: Buffer): number | undefined {
  try {
    const [info] = readChildren(readSingle(der, 0x30));
    const [status] = info?.tag === 0x30 ? readChildren(info) : [];
    return status?.tag === 0x02 && status.content.length === 1 ? status.content[0] : undefined;
  } catch {
    return undefined;
  }
}

describe('TSA under fuzzed DER queries over HTTP (in-process app, real PostgreSQL and SoftHSM2)', () => {
  let fuzz: FuzzApp;
  /** openssl-built queries: SHA-256 with a nonce and -cert, and SHA-512 without either. */
  const queries: Record<'withNonce' | 'plain', Buffer> = {} as Record<'withNonce' | 'plain', Buffer>;

  beforeAll(async () => {
    fuzz = await startFuzzApp();
    const dir = tempDir('tsa-fuzz-');
    fs.writeFileSync(path.join(dir, 'data.txt'), 'an artifact signature to timestamp\n');
    for (const [name, args] of [
      ['withNonce', ['-sha256', '-cert']],
      ['plain', ['-sha512', '-no_nonce']],
    ] as const) {
      execFileSync('openssl', ['ts', '-query', '-data', 'data.txt', ...args, '-out', `${name}.tsq`], {
        cwd: dir,
        stdio: 'ignore',
      });
      queries[name] = fs.readFileSync(path.join(dir, `${name}.tsq`));
    }
    await fuzz.settle();
  });
  afterAll(() => fuzz.close());

  /** What is wrong with the answer to one query, if anything. */
  async function ask(der: Buffer): Promise<{ problem?: string; status?: number }> {
    const before = fuzz.signAttempts();
    const response = await fuzz.t.app.inject({
      method: 'POST',
      url: '/tsa',
      headers: { 'content-type': 'application/timestamp-query' },
      payload: der,
    });
    const where = der.toString('hex').slice(0, 200);
    if (response.statusCode !== 200)
      return { problem: `${where}: HTTP ${response.statusCode} ${response.body.slice(0, 200)}` };
    if (response.headers['content-type'] !== 'application/timestamp-reply')
      return { problem: `${where}: content-type ${response.headers['content-type']}` };
    const status = pkiStatus(response.rawPayload);
    if (status !== PKI_STATUS.granted && status !== PKI_STATUS.grantedWithMods && status !== PKI_STATUS.rejection) {
      return { problem: `${where}: PKIStatus ${status} in ${response.rawPayload.toString('hex').slice(0, 120)}` };
    }
    if (status === PKI_STATUS.rejection && fuzz.signAttempts() !== before)
      return { problem: `${where}: a rejection after C_Sign` };
    return { status };
  }

  const expectNoProblem = async (answer: Promise<{ problem?: string }>) => {
    const { problem } = await answer;
    if (problem) throw new Error(problem);
  };

  it("grants OpenSSL's queries", async () => {
    for (const der of Object.values(queries)) expect(await ask(der)).toEqual({ status: PKI_STATUS.granted });
  });

  it('answers random bytes and mutated DER queries with HTTP 200 and a TimeStampResp: granted, or a rejection without signing', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          mutatedBytes(queries.withNonce),
          mutatedBytes(queries.plain),
          fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)),
        ),
        (der) => expectNoProblem(ask(der)),
      ),
      fuzzParameters(100),
    );
  });

  it('answers an empty query with a rejection and signs nothing', async () => {
    expect(await ask(Buffer.alloc(0))).toEqual({ status: PKI_STATUS.rejection });
  });

  it("still grants OpenSSL's queries after the fuzzing", async () => {
    for (const der of Object.values(queries)) expect(await ask(der)).toEqual({ status: PKI_STATUS.granted });
  });
});
