import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { derToPem } from '../../src/pki/pem-codec';
import { tempDir } from '../support/server-process';
import { fuzzParameters, mutatedBytes } from './arbitraries';
import { FUZZ_KEY, FuzzApp, ISSUING_CA, startFuzzApp } from './fuzz-harness';

/**
 * The OCSP responder under random and mutated DER (bit flips, truncation, length tampering, junk),
 * by POST and by GET (standard and URL-safe base64, URL-encoded): always HTTP 200 with an OCSP
 * response whose status is `successful`, `malformedRequest` or `unauthorized` (never
 * internalError, never a 5xx); an unsigned error status must not have called C_Sign; and valid
 * requests are still answered `good` afterwards.
 */

const OCSP_STATUS = {
  successful: 0,
  malformedRequest: 1,
  internalError: 2,
  tryLater: 3,
  sigRequired: 5,
  unauthorized: 6,
} as const;

/** responseStatus of a DER OCSPResponse: SEQUENCE { ENUMERATED, [0] responseBytes OPTIONAL }. */
function ocspStatus(der: Buffer): number | undefined {
  if (der[0] !== 0x30 || der.length < 5) return undefined;
  const lengthBytes = der[1] & 0x80 ? der[1] & 0x7f : 0;
  const at = 2 + lengthBytes;
  return der[at] === 0x0a && der[at + 1] === 0x01 ? der[at + 2] : undefined;
}

/** A valid GET path segment for `der`: either base64 alphabet, URL-encoded. */
function getSegment(der: Buffer, alphabet: 'standard' | 'url-safe'): string {
  return encodeURIComponent(alphabet === 'standard' ? der.toString('base64') : der.toString('base64url'));
}

describe('OCSP responder under fuzzed DER requests by POST and GET (in-process app, real PostgreSQL and SoftHSM2)', () => {
  let fuzz: FuzzApp;
  let generation: string;
  /** openssl-built requests for FUZZ_KEY's certificate: with a nonce (signed fresh) and without (cached). */
  const requests: Record<'nonce' | 'plain', Buffer> = {} as Record<'nonce' | 'plain', Buffer>;

  beforeAll(async () => {
    fuzz = await startFuzzApp();
    const admin = { authorization: `Bearer ${fuzz.tokens.admin}` };
    const ca = (await fuzz.t.app.inject({ method: 'GET', url: `/v1/cas/${ISSUING_CA}`, headers: admin })).json();
    generation = ca.generations[ca.generations.length - 1].name;
    const chain = (
      await fuzz.t.app.inject({ method: 'GET', url: `/v1/keys/${FUZZ_KEY}/certificate-chain`, headers: admin })
    ).body;
    const dir = tempDir('ocsp-fuzz-');
    fs.writeFileSync(path.join(dir, 'leaf.pem'), chain);
    const issuer = (await fuzz.t.app.inject({ method: 'GET', url: `/pki/${generation}.crt` })).rawPayload;
    fs.writeFileSync(path.join(dir, 'issuer.pem'), derToPem(issuer, 'CERTIFICATE'));
    for (const [name, extra] of [
      ['nonce', []],
      ['plain', ['-no_nonce']],
    ] as const) {
      execFileSync(
        'openssl',
        ['ocsp', '-issuer', 'issuer.pem', '-cert', 'leaf.pem', ...extra, '-reqout', `${name}.der`],
        { cwd: dir, stdio: 'ignore' },
      );
      requests[name] = fs.readFileSync(path.join(dir, `${name}.der`));
    }
    await fuzz.settle();
  });
  afterAll(() => fuzz.close());

  /** What is wrong with the answer to one request, if anything. */
  async function ask(
    how: 'POST' | 'GET',
    der: Buffer | undefined,
    segment?: string,
    contentType = 'application/ocsp-request',
  ): Promise<{ problem?: string; status?: number }> {
    const before = fuzz.signAttempts();
    const response =
      how === 'POST'
        ? await fuzz.t.app.inject({
            method: 'POST',
            url: `/ocsp/${generation}`,
            headers: { 'content-type': contentType },
            payload: der,
          })
        : await fuzz.t.app.inject({ method: 'GET', url: `/ocsp/${generation}/${segment}` });
    const where = `${how} ${how === 'POST' ? der?.toString('hex').slice(0, 200) : segment?.slice(0, 200)}`;
    if (response.statusCode !== 200)
      return { problem: `${where}: HTTP ${response.statusCode} ${response.body.slice(0, 200)}` };
    if (response.headers['content-type'] !== 'application/ocsp-response')
      return { problem: `${where}: content-type ${response.headers['content-type']}` };
    const status = ocspStatus(response.rawPayload);
    if (
      status !== OCSP_STATUS.successful &&
      status !== OCSP_STATUS.malformedRequest &&
      status !== OCSP_STATUS.unauthorized
    ) {
      return { problem: `${where}: OCSP responseStatus ${status}` };
    }
    if (status !== OCSP_STATUS.successful && fuzz.signAttempts() !== before)
      return { problem: `${where}: unsigned error status ${status} after C_Sign` };
    return { status };
  }

  const expectNoProblem = async (answer: Promise<{ problem?: string }>) => {
    const { problem } = await answer;
    if (problem) throw new Error(problem);
  };

  it('answers valid requests good by POST and by GET in both base64 alphabets', async () => {
    for (const der of Object.values(requests)) {
      expect(await ask('POST', der)).toEqual({ status: OCSP_STATUS.successful });
      for (const alphabet of ['standard', 'url-safe'] as const)
        expect(await ask('GET', undefined, getSegment(der, alphabet))).toEqual({ status: OCSP_STATUS.successful });
    }
  });

  it('answers random bytes and mutated DER requests by POST with HTTP 200 and a proper OCSP status', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          mutatedBytes(requests.nonce),
          mutatedBytes(requests.plain),
          fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)),
        ),
        (der) => expectNoProblem(ask('POST', der)),
      ),
      fuzzParameters(100),
    );
  });

  it('answers mutated DER requests and mangled base64 by GET with HTTP 200 and a proper OCSP status', async () => {
    const mangled = fc.oneof(
      fc
        .tuple(
          fc.oneof(mutatedBytes(requests.nonce), mutatedBytes(requests.plain)),
          fc.constantFrom<'standard' | 'url-safe'>('standard', 'url-safe'),
        )
        .map(([der, alphabet]) => getSegment(der, alphabet)),
      fc
        .tuple(
          fc.constantFrom(getSegment(requests.plain, 'standard'), getSegment(requests.plain, 'url-safe')),
          fc.nat(200),
          fc.constantFrom('%', '%ZZ', '%00', '=', '===', '*', '..', '%2F%2F', '!', '%C0%AE', ''),
        )
        .map(
          ([segment, at, junk]) =>
            segment.slice(0, at % (segment.length + 1)) + junk + segment.slice(at % (segment.length + 1)),
        ),
      fc
        .string({ unit: 'binary', maxLength: 200 })
        .map((s) => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, '\ufffd')) || 'A'),
      fc.constantFrom('A'.repeat(30_000), '%41'.repeat(5000), '=', 'MA', 'MAA', 'MAA=', 'MAA%3D'),
    );
    await fc.assert(
      fc.asyncProperty(mangled, (segment) => expectNoProblem(ask('GET', undefined, segment))),
      fuzzParameters(100),
    );
  });

  it('answers a POST that is not application/ocsp-request, or is empty, with malformedRequest', async () => {
    for (const [body, type] of [
      [Buffer.from('{"a":1}'), 'application/json'],
      [Buffer.from('hello'), 'text/plain'],
      [Buffer.alloc(0), 'application/ocsp-request'],
    ] as const) {
      expect(await ask('POST', body, undefined, type)).toEqual({ status: OCSP_STATUS.malformedRequest });
    }
  });

  it('still answers valid requests good after the fuzzing', async () => {
    for (const der of Object.values(requests)) {
      expect(await ask('POST', der)).toEqual({ status: OCSP_STATUS.successful });
      expect(await ask('GET', undefined, getSegment(der, 'url-safe'))).toEqual({ status: OCSP_STATUS.successful });
    }
  });
});
