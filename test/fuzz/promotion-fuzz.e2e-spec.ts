import fc from 'fast-check';
import { KeysService } from '../../src/keys/keys.service';
import { TokenService } from '../../src/auth/token.service';
import { query } from '../support/database';
import { DIGEST_X, DIGEST_Y, hostilePayload, MANIFEST_TYPE } from '../signing/support/hostile-payloads';
import { COSE_ALG, notaryCoseSigStructure, sha } from '../signing/support/signing-kit';
import { fuzzParameters } from './arbitraries';
import { FUZZ_SUBJECT, FuzzApp, responseProblem, startFuzzApp } from './fuzz-harness';

/**
 * Promotion under hostile payloads (issue #17): the test key signed image X only; the prod key
 * requires it. Requests to the prod key carry fast-check's hostile Notary payloads (folded and
 * duplicate names, U+017F / U+212A, escapes, whitespace, invalid UTF-8, …) wrapped as JWS
 * signing inputs (with hostile header spellings) or COSE Sig_structures, sometimes with a claimed
 * `artifact`, or a digest with a claim. Every answer is < 500 in the error shape; a refusal calls
 * no C_Sign; a signature is only ever for X, read from the payload (audit: artifactSource
 * payload). That Signet's reading of a payload is Go's is test/signing/go-payload.spec.ts.
 */
const TEST_KEY = 'fuzz-promo-test';
const PROD_KEY = 'fuzz-promo-prod';

const HEADER_MEMBERS = `"crit":["io.cncf.notary.signingScheme"],"io.cncf.notary.signingScheme":"notary.x509"`;
const header = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constant(`{"alg":"ES256","cty":"application/vnd.cncf.notary.payload.v1+json",${HEADER_MEMBERS}}`),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.constantFrom('', ' ', '\n\t'),
        fc.constantFrom('alg', 'ALG', 'Alg'),
        fc.constantFrom('cty', 'CTY', 'cTy'),
        fc.constantFrom('', `,"cty":"text/plain"`, `,"Cty":"text/plain"`, `,"alg":"ES384"`),
      )
      .map(
        ([space, alg, cty, extra]) =>
          `${space}{"${alg}":"ES256","${cty}":"application/vnd.cncf.notary.payload.v1+json",${HEADER_MEMBERS}${extra}}`,
      ),
  },
);

type Request = { label: string; body: Record<string, unknown> };

const claim = fc.constantFrom(undefined, DIGEST_X, DIGEST_Y);

const request: fc.Arbitrary<Request> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.tuple(header, hostilePayload, claim).map(([h, p, claimed]) => ({
      label: `JWS ${JSON.stringify(h)} . ${JSON.stringify(p.toString('latin1'))}${claimed ? ` claiming ${claimed}` : ''}`,
      body: {
        payload: Buffer.from(`${Buffer.from(h).toString('base64url')}.${p.toString('base64url')}`).toString('base64'),
        hashAlgorithm: 'SHA-256',
        ...(claimed ? { artifact: { digest: claimed } } : {}),
      },
    })),
  },
  {
    weight: 2,
    arbitrary: fc.tuple(hostilePayload, claim).map(([p, claimed]) => {
      // notaryCoseSigStructure takes the payload as text: invalid UTF-8 is written through a latin1 round trip below.
      const cose = notaryCoseSigStructure('EC-256', 'fuzz', new Date('2026-12-01T00:00:00Z'), {
        payloadJson: '\u0000',
      });
      // The Sig_structure ends with the payload: here 0x41 0x00, a byte string holding NUL.
      const at = cose.sigStructure.length - 2;
      const length =
        p.length < 24
          ? Buffer.from([0x40 + p.length])
          : p.length < 256
            ? Buffer.from([0x58, p.length])
            : Buffer.from([0x59, p.length >> 8, p.length & 0xff]);
      const sigStructure = Buffer.concat([cose.sigStructure.subarray(0, at), length, p]);
      return {
        label: `COSE payload ${JSON.stringify(p.toString('latin1'))}${claimed ? ` claiming ${claimed}` : ''}`,
        body: {
          payload: sigStructure.toString('base64'),
          hashAlgorithm: 'SHA-256',
          ...(claimed ? { artifact: { digest: claimed } } : {}),
        },
      };
    }),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(hostilePayload, claim).map(([p, claimed]) => ({
      label: `digest of ${JSON.stringify(p.toString('latin1'))}${claimed ? ` claiming ${claimed}` : ''}`,
      body: {
        digest: sha('EC-256', p).toString('base64'),
        hashAlgorithm: 'SHA-256',
        ...(claimed ? { artifact: { digest: claimed } } : {}),
      },
    })),
  },
);

describe('promotion under hostile payloads (in-process app, real PostgreSQL and SoftHSM2)', () => {
  let fuzz: FuzzApp;
  let token: string;

  beforeAll(async () => {
    fuzz = await startFuzzApp();
    const keys = fuzz.t.app.get(KeysService);
    await keys.create({ name: TEST_KEY, keySpec: 'EC-256', subject: { ...FUZZ_SUBJECT, CN: TEST_KEY } });
    await keys.create({
      name: PROD_KEY,
      keySpec: 'EC-256',
      subject: { ...FUZZ_SUBJECT, CN: PROD_KEY },
      requires: [TEST_KEY],
    });
    token = (
      await fuzz.t.app
        .get(TokenService)
        .create({ name: 'fuzz-promoter', role: 'signer', keys: [TEST_KEY, PROD_KEY] }, undefined)
    ).token;
    // The test key signs image X, from a payload.
    const x = `{"targetArtifact":{"mediaType":"${MANIFEST_TYPE}","digest":"${DIGEST_X}","size":528}}`;
    const signingInput = `${Buffer.from(`{"alg":"ES256","cty":"application/vnd.cncf.notary.payload.v1+json",${HEADER_MEMBERS}}`).toString('base64url')}.${Buffer.from(x).toString('base64url')}`;
    const tested = await sign(TEST_KEY, {
      payload: Buffer.from(signingInput).toString('base64'),
      hashAlgorithm: 'SHA-256',
    });
    expect(tested.statusCode).toBe(200);
    expect(tested.json().artifact.digest).toBe(DIGEST_X);
    expect(COSE_ALG.ES256).toBe(-7);
  });
  afterAll(() => fuzz?.close());

  function sign(key: string, body: unknown) {
    return fuzz.t.app.inject({
      method: 'POST',
      url: `/v1/keys/${key}/sign`,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      payload: JSON.stringify(body),
    });
  }

  it('signs with the prod key only for X read from the payload, whatever the payload says twice or in another case; refusals sign nothing', async () => {
    const outcomes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(request, async ({ label, body }) => {
        const before = fuzz.signAttempts();
        const response = await sign(PROD_KEY, body);
        const signs = fuzz.signAttempts() - before;
        const outcome =
          response.statusCode === 200 ? 'signed' : `${response.statusCode} ${response.json().error?.code}`;
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        const problem = responseProblem(response);
        if (problem) throw new Error(`${label}: ${problem}`);
        if (body.digest !== undefined && outcome !== '400 PAYLOAD_REQUIRED')
          throw new Error(`${label}: digest mode answered ${outcome}`);
        if (response.statusCode !== 200) {
          if (signs !== 0) throw new Error(`${label}: refused (${outcome}) after ${signs} C_Sign call(s)`);
          return;
        }
        const artifact = response.json().artifact;
        if (artifact?.digest !== DIGEST_X)
          throw new Error(`${label}: the prod key signed for ${JSON.stringify(artifact)}`);
        const rows = await query<{ data: Record<string, unknown> }>(
          fuzz.t.database.url,
          `SELECT data FROM audit_events WHERE type = 'sign' AND data->>'signature' = $1`,
          [response.json().signature],
        );
        if (rows[0]?.data.artifactSource !== 'payload')
          throw new Error(`${label}: audit row ${JSON.stringify(rows[0]?.data)}`);
      }),
      fuzzParameters(25),
    );
    // The run reached both sides: signatures for X and refusals of several kinds.
    expect(outcomes.get('signed') ?? 0).toBeGreaterThan(0);
    expect([...outcomes.keys()].filter((o) => o !== 'signed').length).toBeGreaterThan(2);
  });
});
