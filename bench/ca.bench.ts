/**
 * CA core benchmark (pure X.509 code over a DigestSigner backed by Node crypto keys; the
 * HSM-backed figures belong with the key store benchmarks):
 * - leaf certificates per second over an existing public key, EC-384 (and RSA-3072) issuer;
 * - a 100,000-entry CRL built and signed, and a 10,000-entry one by the in-house DER writer,
 *   @peculiar/x509 and pkijs in the same run (issue #19: keep hand-written code only where faster);
 * - OCSP responses per second, uncached (parse request, lookup, build, sign, self-verify).
 *
 *   npx ts-node --transpile-only bench/ca.bench.ts
 *
 * Prints a Markdown section and writes it to .bench-out/ca.md. Bounded: well under a minute.
 */
import 'reflect-metadata';
import { createHash, randomBytes, sign as nodeSign } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import * as x509 from '@peculiar/x509';
import { CaIssuer, issueCodeSigningCertificate } from '../src/pki/certificate-issuer';
import { CrlEntry, buildCrl } from '../src/pki/crl-builder';
import { OcspCertStatus, createOcspResponder, respondToOcspRequest } from '../src/pki/ocsp-responder';
import { generateSerialNumber } from '../src/pki/serial-number';
import { readSignedParts } from '../src/pki/der-reader';
import { REASON_CODES } from '../src/pki/revocation-reasons';
import { describeSignatureAlgorithm, signTbs, verifySignature } from '../src/pki/signature-algorithms';
import { digestSignerCrypto, signerCryptoKey, webCryptoAlgorithm } from '../src/pki/x509-signer-provider';
import { KEY_SPEC_INFO, KeySpec, nodeHashName } from '../src/pki/key-spec';
import { createHierarchy, issueLeaf, subject } from '../test/ca/ca-fixtures';
import { createNodeSigner } from '../test/support/node-signer';

const WINDOW_MS = 3000;
const WARMUP_MS = 500;
const CRL_ENTRIES = 100_000;
const CRL_RUNS = 3;
// The library writers take tens of seconds per 10,000 entries: they are compared on this many.
const CRL_COMPARE_ENTRIES = 10_000;

interface Timing {
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  count: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** One caller back to back: the work is CPU-bound on the event loop, concurrency would only interleave it. */
async function loop(call: () => Promise<unknown> | unknown): Promise<Timing> {
  const warmUntil = performance.now() + WARMUP_MS;
  while (performance.now() < warmUntil) await call();
  const latencies: number[] = [];
  const start = performance.now();
  const deadline = start + WINDOW_MS;
  while (performance.now() < deadline) {
    const t0 = performance.now();
    await call();
    latencies.push(performance.now() - t0);
  }
  const elapsed = performance.now() - start;
  latencies.sort((a, b) => a - b);
  return {
    opsPerSecond: (latencies.length * 1000) / elapsed,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    count: latencies.length,
  };
}

const fmt = (n: number, digits = 0): string => n.toFixed(digits);

async function benchLeaves(issuer: CaIssuer, leafSpki: Buffer): Promise<Timing> {
  return loop(() =>
    issueCodeSigningCertificate({ issuer, subject: subject('bench-leaf'), publicKeySpki: leafSpki, validityDays: 90 }),
  );
}

async function benchSigner(spec: KeySpec): Promise<{ digest: Timing; nodeSign: Timing }> {
  const signer = createNodeSigner(spec);
  const hash = KEY_SPEC_INFO[spec].hash;
  const digest = createHash(nodeHashName(hash)).update('bench').digest();
  const data = randomBytes(600);
  return {
    digest: await loop(() => signer.signDigest(digest, hash)),
    nodeSign: await loop(() =>
      KEY_SPEC_INFO[spec].kind === 'EC'
        ? nodeSign(nodeHashName(hash), data, { key: signer.privateKey, dsaEncoding: 'ieee-p1363' })
        : nodeSign(nodeHashName(hash), data, signer.privateKey),
    ),
  };
}

type CrlWriter = (issuer: CaIssuer, crlNumber: number, entries: CrlEntry[]) => Promise<Buffer>;

/** The in-house DER writer (src/pki/crl-builder.ts): what Signet ships. */
const inHouseCrl: CrlWriter = async (issuer, crlNumber, entries) =>
  (await buildCrl({ issuer, crlNumber, nextUpdate: new Date(Date.now() + 86_400_000), entries })).der;

/** Self-verify with the issuer key, as buildCrl does, so the three writers do the same work. */
function assertCrlVerifies(issuer: CaIssuer, tbs: Buffer, signature: Buffer, writer: string): void {
  if (
    !verifySignature(
      issuer.publicKeySpki,
      describeSignatureAlgorithm(issuer.scheme.algorithmIdentifier)!,
      tbs,
      signature,
    )
  ) {
    throw new Error(`${writer}: CRL signature does not verify`);
  }
}

/** @peculiar/x509's X509CrlGenerator, signing through the same DigestSigner (src/pki/x509-signer-provider.ts). */
const peculiarCrl: CrlWriter = async (issuer, crlNumber, entries) => {
  const crl = await x509.X509CrlGenerator.create(
    {
      issuer: new x509.X509Certificate(issuer.certificate).subject,
      thisUpdate: new Date(),
      nextUpdate: new Date(Date.now() + 86_400_000),
      signingAlgorithm: webCryptoAlgorithm(issuer.scheme) as x509.X509CrlCreateParams['signingAlgorithm'],
      signingKey: signerCryptoKey(issuer.signer, issuer.scheme),
      extensions: [
        new x509.AuthorityKeyIdentifierExtension(issuer.keyIdentifier.toString('hex')),
        new x509.Extension('2.5.29.20', false, new asn1js.Integer({ value: crlNumber }).toBER()),
      ],
      entries: entries.map((e) => ({
        serialNumber: e.serialHex,
        revocationDate: e.revokedAt,
        reason: e.reason === undefined ? undefined : (REASON_CODES[e.reason] as x509.X509CrlReason),
        invalidity: e.invalidityDate,
      })),
    },
    digestSignerCrypto,
  );
  const der = Buffer.from(crl.rawData);
  const { tbs, signature } = readSignedParts(der);
  assertCrlVerifies(issuer, tbs, signature, 'x509');
  return der;
};

/** pkijs's CertificateRevocationList: TBS encoded by pkijs, signed with the same signer. */
const pkijsCrl: CrlWriter = async (issuer, crlNumber, entries) => {
  const crl = new pkijs.CertificateRevocationList({
    version: 1,
    issuer: pkijs.Certificate.fromBER(issuer.certificate).subject,
    thisUpdate: new pkijs.Time({ type: 0, value: new Date() }),
    nextUpdate: new pkijs.Time({ type: 0, value: new Date(Date.now() + 86_400_000) }),
    signature: pkijs.AlgorithmIdentifier.fromBER(issuer.scheme.algorithmIdentifier),
    revokedCertificates: entries.map((e) => {
      const extensions: pkijs.Extension[] = [];
      if (e.reason !== undefined) {
        extensions.push(
          new pkijs.Extension({
            extnID: '2.5.29.21',
            extnValue: new asn1js.Enumerated({ value: REASON_CODES[e.reason] }).toBER(),
          }),
        );
      }
      if (e.invalidityDate) {
        extensions.push(
          new pkijs.Extension({
            extnID: '2.5.29.24',
            extnValue: new asn1js.GeneralizedTime({ valueDate: e.invalidityDate }).toBER(),
          }),
        );
      }
      return new pkijs.RevokedCertificate({
        userCertificate: new asn1js.Integer({ valueHex: Buffer.from(e.serialHex, 'hex') }),
        revocationDate: new pkijs.Time({ type: 0, value: e.revokedAt }),
        ...(extensions.length ? { crlEntryExtensions: new pkijs.Extensions({ extensions }) } : {}),
      });
    }),
    crlExtensions: new pkijs.Extensions({
      extensions: [
        new pkijs.Extension({
          extnID: '2.5.29.35',
          extnValue: new pkijs.AuthorityKeyIdentifier({
            keyIdentifier: new asn1js.OctetString({ valueHex: issuer.keyIdentifier }),
          })
            .toSchema()
            .toBER(),
        }),
        new pkijs.Extension({ extnID: '2.5.29.20', extnValue: new asn1js.Integer({ value: crlNumber }).toBER() }),
      ],
    }),
  });
  // encodeTBS is protected: toSchema(true) encodes the TBS once and wraps it with an empty signature.
  const tbsSchema = (crl.toSchema(true) as asn1js.Sequence).valueBlock.value[0];
  const tbs = Buffer.from(tbsSchema.toBER());
  const signature = await signTbs(issuer.signer, issuer.scheme, tbs);
  assertCrlVerifies(issuer, tbs, signature, 'pkijs');
  return Buffer.from(
    new asn1js.Sequence({
      value: [tbsSchema, crl.signature.toSchema(), new asn1js.BitString({ valueHex: signature })],
    }).toBER(),
  );
};

async function benchCrl(
  issuer: CaIssuer,
  writer: CrlWriter = inHouseCrl,
  count = CRL_ENTRIES,
): Promise<{ medianMs: number; runsMs: number[]; bytes: number }> {
  const reasons = ['keyCompromise', 'superseded', 'cessationOfOperation', 'unspecified', undefined] as const;
  const base = Date.now() - 90 * 86_400_000;
  // Serials prepared up front, as a database page would deliver them.
  const entries: CrlEntry[] = Array.from({ length: count }, (_, i) => ({
    serialHex: generateSerialNumber(),
    revokedAt: new Date(base + i * 37_000),
    reason: reasons[i % reasons.length],
    invalidityDate: i % 10 === 0 ? new Date(base + i * 37_000 - 3_600_000) : undefined,
  }));
  const runsMs: number[] = [];
  let bytes = 0;
  await writer(issuer, 1, entries.slice(0, 1000)); // warm-up
  for (let run = 0; run < CRL_RUNS; run++) {
    const t0 = performance.now();
    bytes = (await writer(issuer, run + 2, entries)).length;
    runsMs.push(performance.now() - t0);
  }
  const sorted = [...runsMs].sort((a, b) => a - b);
  return { medianMs: sorted[Math.floor(sorted.length / 2)], runsMs, bytes };
}

async function ocspRequest(leaf: Buffer, issuer: Buffer): Promise<Buffer> {
  const certId = new pkijs.CertID();
  await certId.createForCertificate(pkijs.Certificate.fromBER(leaf), {
    hashAlgorithm: 'SHA-1',
    issuerCertificate: pkijs.Certificate.fromBER(issuer),
  });
  const request = new pkijs.OCSPRequest();
  request.tbsRequest.requestList = [new pkijs.Request({ reqCert: certId })];
  request.tbsRequest.requestExtensions = [
    new pkijs.Extension({
      extnID: '1.3.6.1.5.5.7.48.1.2',
      extnValue: new asn1js.OctetString({ valueHex: randomBytes(16) }).toBER(),
    }),
  ];
  return Buffer.from(request.toSchema(true).toBER());
}

async function benchOcsp(spec: KeySpec): Promise<Timing & { responseBytes: number }> {
  const h = await createHierarchy(spec);
  const { leaf } = await issueLeaf(h.issuingIssuer, 'EC-256');
  const request = await ocspRequest(leaf.der, h.issuing.der);
  // Status table the size of a busy CA; the lookup itself is not what is measured.
  const revoked = new Map<string, OcspCertStatus>();
  for (let i = 0; i < 10_000; i++)
    revoked.set(generateSerialNumber(), { status: 'revoked', revokedAt: new Date(), reason: 'superseded' });
  const lookup = (serial: string): OcspCertStatus => revoked.get(serial) ?? { status: 'good' };
  const responder = createOcspResponder(h.issuingIssuer);
  const responseBytes = (await respondToOcspRequest(responder, request, lookup)).length;
  const timing = await loop(() => respondToOcspRequest(responder, request, lookup));
  return { ...timing, responseBytes };
}

async function main(): Promise<void> {
  const started = Date.now();
  const opensslVersion = execFileSync('openssl', ['version'], { encoding: 'utf8' }).trim();
  const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.version}, ${opensslVersion}`;

  const leafSpki = createNodeSigner('EC-256').publicKeySpki;
  const ec = await createHierarchy('EC-384');
  const rsa = await createHierarchy('RSA-3072');
  const leavesEc = await benchLeaves(ec.issuingIssuer, leafSpki);
  const leavesRsa = await benchLeaves(rsa.issuingIssuer, leafSpki);
  const signerEc = await benchSigner('EC-384');
  const signerRsa = await benchSigner('RSA-3072');
  const crlEc = await benchCrl(ec.issuingIssuer);
  const crlRsa = await benchCrl(rsa.issuingIssuer);
  const crlEcSmall = await benchCrl(ec.issuingIssuer, inHouseCrl, CRL_COMPARE_ENTRIES);
  const crlEcPeculiar = await benchCrl(ec.issuingIssuer, peculiarCrl, CRL_COMPARE_ENTRIES);
  const crlEcPkijs = await benchCrl(ec.issuingIssuer, pkijsCrl, CRL_COMPARE_ENTRIES);
  const ocspEc = await benchOcsp('EC-384');
  const ocspRsa = await benchOcsp('RSA-3072');

  const section = `## CA core (\`bench/ca.bench.ts\`)

Machine: ${machine}; ${new Date().toISOString().slice(0, 10)}.

Pure X.509 code over a \`DigestSigner\` backed by Node crypto keys (\`test/support/node-signer.ts\`:
ECDSA through ECDH scalar multiplication + BigInt, RSA through EMSA-PSS/PKCS#1 encoding + raw RSA);
the HSM-backed figures are to be added with the key store. One caller, ${WINDOW_MS / 1000} s window after
${WARMUP_MS} ms warm-up. Every certificate, CRL and OCSP response is verified against the issuer key
before it is returned, and that verification is included.

| operation | issuer | ops/s | p50 ms | p99 ms |
|---|---|---:|---:|---:|
| code-signing leaf over an existing EC-256 public key | EC-384 (ecdsa-with-SHA384) | ${fmt(leavesEc.opsPerSecond)} | ${fmt(leavesEc.p50Ms, 2)} | ${fmt(leavesEc.p99Ms, 2)} |
| code-signing leaf over an existing EC-256 public key | RSA-3072 (RSASSA-PSS SHA-384) | ${fmt(leavesRsa.opsPerSecond)} | ${fmt(leavesRsa.p50Ms, 2)} | ${fmt(leavesRsa.p99Ms, 2)} |
| OCSP response, uncached (1 CertID, nonce) | EC-384 | ${fmt(ocspEc.opsPerSecond)} | ${fmt(ocspEc.p50Ms, 2)} | ${fmt(ocspEc.p99Ms, 2)} |
| OCSP response, uncached (1 CertID, nonce) | RSA-3072 (sha384WithRSAEncryption) | ${fmt(ocspRsa.opsPerSecond)} | ${fmt(ocspRsa.p50Ms, 2)} | ${fmt(ocspRsa.p99Ms, 2)} |
| test signer \`signDigest\` alone | EC-384 | ${fmt(signerEc.digest.opsPerSecond)} | ${fmt(signerEc.digest.p50Ms, 2)} | ${fmt(signerEc.digest.p99Ms, 2)} |
| Node \`crypto.sign\` alone (reference) | EC-384 | ${fmt(signerEc.nodeSign.opsPerSecond)} | ${fmt(signerEc.nodeSign.p50Ms, 2)} | ${fmt(signerEc.nodeSign.p99Ms, 2)} |
| test signer \`signDigest\` alone | RSA-3072 PSS | ${fmt(signerRsa.digest.opsPerSecond)} | ${fmt(signerRsa.digest.p50Ms, 2)} | ${fmt(signerRsa.digest.p99Ms, 2)} |
| Node \`crypto.sign\` alone (reference) | RSA-3072 PKCS#1 | ${fmt(signerRsa.nodeSign.opsPerSecond)} | ${fmt(signerRsa.nodeSign.p50Ms, 2)} | ${fmt(signerRsa.nodeSign.p99Ms, 2)} |

| CRL | issuer | entries | build + sign + self-verify, median of ${CRL_RUNS} | runs ms | DER size |
|---|---|---:|---:|---|---:|
| v2, reasonCode on 60 %, invalidityDate on 10 % | EC-384 | ${CRL_ENTRIES} | **${fmt(crlEc.medianMs)} ms** | ${crlEc.runsMs.map((ms) => fmt(ms)).join(' / ')} | ${fmt(crlEc.bytes / 2 ** 20, 2)} MiB |
| v2, reasonCode on 60 %, invalidityDate on 10 % | RSA-3072 | ${CRL_ENTRIES} | **${fmt(crlRsa.medianMs)} ms** | ${crlRsa.runsMs.map((ms) => fmt(ms)).join(' / ')} | ${fmt(crlRsa.bytes / 2 ** 20, 2)} MiB |
| in-house DER writer (\`src/pki/crl-builder.ts\`) | EC-384 | ${CRL_COMPARE_ENTRIES} | **${fmt(crlEcSmall.medianMs)} ms** | ${crlEcSmall.runsMs.map((ms) => fmt(ms)).join(' / ')} | ${fmt(crlEcSmall.bytes / 2 ** 20, 2)} MiB |
| @peculiar/x509 \`X509CrlGenerator\` | EC-384 | ${CRL_COMPARE_ENTRIES} | **${fmt(crlEcPeculiar.medianMs)} ms** | ${crlEcPeculiar.runsMs.map((ms) => fmt(ms)).join(' / ')} | ${fmt(crlEcPeculiar.bytes / 2 ** 20, 2)} MiB |
| pkijs \`CertificateRevocationList\` | EC-384 | ${CRL_COMPARE_ENTRIES} | **${fmt(crlEcPkijs.medianMs)} ms** | ${crlEcPkijs.runsMs.map((ms) => fmt(ms)).join(' / ')} | ${fmt(crlEcPkijs.bytes / 2 ** 20, 2)} MiB |

The last three rows build the same ${CRL_COMPARE_ENTRIES} entries in the same run, sign with the same
signer and verify the result with the issuer key: they compare the ASN.1 encoders (issue #19).

OCSP response size: ${ocspEc.responseBytes} bytes (EC-384), ${ocspRsa.responseBytes} bytes (RSA-3072); limit 20 KiB.

Run time ${fmt((Date.now() - started) / 1000)} s.
`;
  console.log(section);
  const outDir = join(__dirname, '..', '.bench-out');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'ca.md'), section);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
