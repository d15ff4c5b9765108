import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { DataSource } from 'typeorm';
import { derToPem } from '../../src/pki/pem-codec';
import { tempDir } from '../support/server-process';
import { fuzzParameters, hostileJson, mutatedBytes } from './arbitraries';
import { FUZZ_SUBJECT, FuzzApp, responseProblem, startFuzzApp } from './fuzz-harness';

/**
 * Certificate-chain uploads (external-CA mode of a key version, an externally signed issuing CA)
 * under mutated PEM and DER: truncated, bit-flipped, wrong PEM type, huge, reordered, non-strings.
 * Every rejection is a 4xx in the error shape, stores nothing (row counts and states unchanged) and
 * calls C_Sign zero times.
 */

const EXTERNAL_KEY = 'fuzz-external';
const EXTERNAL_CA = 'fuzz-external-ca';

function pemBody(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

describe('certificate-chain uploads under mutated PEM and DER (in-process app, real PostgreSQL and SoftHSM2)', () => {
  let fuzz: FuzzApp;
  /** A chain an outside CA (OpenSSL) issued for each upload endpoint's CSR, leaf first. */
  const chains: Record<string, string[]> = {};
  let csrPem: string;

  const uploads = [`/v1/keys/${EXTERNAL_KEY}/versions/1/certificate`, `/v1/cas/${EXTERNAL_CA}/certificate`];

  beforeAll(async () => {
    fuzz = await startFuzzApp();
    const admin = { authorization: `Bearer ${fuzz.tokens.admin}` };
    const create = async (url: string, payload: object) => {
      const response = await fuzz.t.app.inject({ method: 'POST', url, headers: admin, payload });
      if (response.statusCode !== 201) throw new Error(`${url}: ${response.statusCode} ${response.body}`);
    };
    await create('/v1/keys', {
      name: EXTERNAL_KEY,
      keySpec: 'EC-256',
      external: true,
      subject: { ...FUZZ_SUBJECT, CN: EXTERNAL_KEY },
    });
    await create('/v1/cas', {
      name: EXTERNAL_CA,
      kind: 'issuing',
      external: true,
      keySpec: 'EC-256',
      subject: { ...FUZZ_SUBJECT, CN: 'Fuzz External CA' },
      validityDays: 365,
    });
    const dir = tempDir('upload-fuzz-');
    const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    run([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'root.key',
      '-out',
      'root.pem',
      '-days',
      '30',
      '-subj',
      '/C=US/O=Outside/CN=Outside Root',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    ]);
    const root = fs.readFileSync(path.join(dir, 'root.pem'), 'utf8');
    for (const [url, extensions] of [
      [
        `/v1/keys/${EXTERNAL_KEY}/versions/1/csr`,
        'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\ncrlDistributionPoints=URI:http://outside.test/root.crl\n',
      ],
      [
        `/v1/cas/${EXTERNAL_CA}/csr`,
        'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n',
      ],
    ]) {
      csrPem = (await fuzz.t.app.inject({ method: 'GET', url, headers: admin })).body;
      fs.writeFileSync(path.join(dir, 'req.csr'), csrPem);
      fs.writeFileSync(path.join(dir, 'ext.cnf'), extensions);
      run([
        'x509',
        '-req',
        '-in',
        'req.csr',
        '-CA',
        'root.pem',
        '-CAkey',
        'root.key',
        '-CAcreateserial',
        '-days',
        '20',
        '-extfile',
        'ext.cnf',
        '-out',
        'leaf.pem',
      ]);
      chains[url.replace(/\/csr$/, '/certificate')] = [fs.readFileSync(path.join(dir, 'leaf.pem'), 'utf8'), root];
    }
    await fuzz.settle();
  });
  afterAll(() => fuzz.close());

  /** Rows and states an accepted upload would change. */
  async function stored(): Promise<string> {
    const rows = await fuzz.t.app.get(DataSource).query(
      `SELECT (SELECT count(*) FROM certificates) AS certificates,
              (SELECT string_agg(state, ',' ORDER BY id) FROM key_versions) AS versions,
              (SELECT string_agg(state || ':' || coalesce(serial, '-'), ',' ORDER BY id) FROM ca_generations) AS generations,
              (SELECT count(*) FROM cas) AS cas`,
    );
    return JSON.stringify(rows[0]);
  }

  /** PEM text mutations of a valid chain entry, and DER mutations re-wrapped as PEM. */
  function mutatedPem(pem: string): fc.Arbitrary<unknown> {
    const der = pemBody(pem);
    return fc.oneof(
      mutatedBytes(der).map((bytes) => derToPem(bytes, 'CERTIFICATE')),
      fc.nat(pem.length).map((n) => pem.slice(0, n)),
      fc.constantFrom(
        pem.replace(/CERTIFICATE/g, 'CERTIFICATE REQUEST'),
        pem.replace(/CERTIFICATE/g, 'PRIVATE KEY'),
        pem.replace(/-----END CERTIFICATE-----/, ''),
        pem.replace(/[A-Za-z]/, '!'),
        pem + pem,
        pem.replace(/\n/g, '\r\n'),
        der.toString('base64'),
        der.toString('binary'),
        csrPem,
        `-----BEGIN CERTIFICATE-----\n${'A'.repeat(400_000)}\n-----END CERTIFICATE-----\n`,
        '',
      ),
      hostileJson,
    );
  }

  function mutatedChain(chain: string[]): fc.Arbitrary<unknown> {
    return fc.oneof(
      {
        weight: 4,
        arbitrary: fc
          .tuple(fc.nat(chain.length - 1), mutatedPem(chain[0]), mutatedPem(chain[chain.length - 1]))
          .map(([i, leaf, root]) => chain.map((entry, j) => (j === i ? (i === 0 ? leaf : root) : entry))),
      },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          [...chain].reverse(),
          [chain[0]],
          [chain[chain.length - 1]],
          [],
          Array(9).fill(chain[0]),
          [chain[0], chain[0], ...chain.slice(1)],
        ),
      },
      { weight: 1, arbitrary: hostileJson },
    );
  }

  it.each(uploads)(
    'rejects mutated chains uploaded to %s with a 4xx in the error shape, storing nothing and calling C_Sign zero times',
    async (url) => {
      const admin = { authorization: `Bearer ${fuzz.tokens.admin}`, 'content-type': 'application/json' };
      let accepted = 0;
      await fc.assert(
        fc.asyncProperty(mutatedChain(chains[url]), async (chain) => {
          const [rows, signs] = [await stored(), fuzz.signAttempts()];
          const response = await fuzz.t.app.inject({
            method: 'POST',
            url,
            headers: admin,
            payload: JSON.stringify({ chain }),
          });
          const problem = responseProblem(response);
          if (problem) throw new Error(`${JSON.stringify(chain).slice(0, 300)}: ${problem}`);
          if (response.statusCode < 300) {
            // A mutation that left a valid chain (e.g. a flipped bit in the signature's padding) may be taken once.
            accepted++;
            await fuzz.settle();
            return;
          }
          if (response.statusCode >= 500 || response.statusCode < 400) throw new Error(`${response.statusCode}`);
          if ((await stored()) !== rows)
            throw new Error(`${response.statusCode} but rows changed: ${rows} → ${await stored()}`);
          if (fuzz.signAttempts() !== signs) throw new Error(`${response.statusCode} after C_Sign`);
        }),
        fuzzParameters(10),
      );
      expect(accepted).toBeLessThanOrEqual(1);
    },
  );

  it.each(uploads)('still accepts the valid chain at %s after the fuzzing', async (url) => {
    const response = await fuzz.t.app.inject({
      method: 'POST',
      url,
      headers: { authorization: `Bearer ${fuzz.tokens.admin}` },
      payload: { chain: chains[url] },
    });
    // 2xx, or 409 if a harmless mutation was already accepted for this version.
    expect(response.statusCode < 300 || response.statusCode === 409 ? 'accepted' : response.body).toBe('accepted');
    expect(responseProblem(response)).toBeUndefined();
  });
});
