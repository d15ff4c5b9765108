/**
 * PKI on the real parts: the whole application in-process on an embedded PostgreSQL and a SoftHSM2
 * token (CA keys in the HSM), measuring
 * - leaf issuance over existing HSM public keys: TBSCertificate assembled in DER, signed by the
 *   HSM CA key, the signature checked against the CA public key, the row stored and the event
 *   audited (HSM key generation measured separately), with the Node process's CPU time per
 *   certificate (PostgreSQL's is not included) and the load average, since the machine may be shared;
 * - a CRL with 100,000 revoked entries rebuilt from the database and signed by the HSM;
 * - OCSP responses per second through the HTTP stack, cached (no nonce) and uncached (nonce).
 *
 *   npx ts-node --transpile-only bench/pki.bench.ts
 *
 * Prints a Markdown section and writes .bench-out/pki.md. Bounded: about a minute.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { DataSource } from 'typeorm';
import { createApp } from '../src/app.factory';
import { AuditService } from '../src/audit/audit.service';
import { CaService } from '../src/ca/ca.service';
import { issueCodeSigningCertificate } from '../src/pki/certificate-issuer';
import { DEV_ISSUING_CA } from '../src/ca/dev-hierarchy.bootstrap';
import { loadConfig } from '../src/config/config';
import { KEY_STORE, KeyStore } from '../src/hsm/key-store';
import { CrlService } from '../src/revocation/crl.service';
import { startPlatform } from '../src/platform';

const ISSUE_KEYS = 400;
const ISSUE_CONCURRENCY = 8;
const OCSP_WINDOW_MS = 4000;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'signet-bench-pki-'));
  fs.chmodSync(dataDir, 0o711);
  const config = loadConfig({
    SIGNET_DATA_DIR: dataDir,
    SIGNET_LOG_LEVEL: 'warn',
    SIGNET_LOG_REQUESTS: 'false',
    SIGNET_PUBLIC_RATE_LIMIT_PER_SECOND: '1000000',
  });
  const logger = pino({ level: 'warn' });
  const platform = await startPlatform(config, logger);
  const app = await createApp({ config, databaseUrl: platform.databaseUrl, hsm: platform.hsm }, logger);
  const lines: string[] = [];
  try {
    const cas = app.get(CaService);
    const keyStore = app.get<KeyStore>(KEY_STORE);
    const audit = app.get(AuditService);
    const dataSource = app.get(DataSource);
    const issuingCa = await cas.byName(DEV_ISSUING_CA);
    const generation = await cas.activeGeneration(issuingCa.id);
    const issuer = await cas.issuerFor(generation);

    // HSM key generation, reported separately.
    const keygenStart = performance.now();
    const spkis: Buffer[] = [];
    for (let i = 0; i < ISSUE_KEYS; i++)
      spkis.push((await keyStore.createKey({ spec: 'EC-256', label: `bench-${i}`, role: 'signing' })).publicKeySpki);
    const keygenSeconds = (performance.now() - keygenStart) / 1000;

    // Issuance: DER build + HSM signature (EC-384 CA key) + signature check + store + audit, 8 in flight.
    const latencies: number[] = [];
    let next = 0;
    const issueLoad = os.loadavg()[0];
    const issueCpu = process.cpuUsage();
    const issueStart = performance.now();
    await Promise.all(
      Array.from({ length: ISSUE_CONCURRENCY }, async () => {
        while (next < spkis.length) {
          const spki = spkis[next++];
          const t0 = performance.now();
          const issued = await issueCodeSigningCertificate({
            issuer,
            subject: { C: 'US', ST: 'Bench', O: 'Signet', CN: `leaf-${next}` },
            publicKeySpki: spki,
            validityDays: 90,
          });
          // Stored and audited before it counts; the audit row goes through the group-commit writer
          // (its own connections) while the certificate row commits, so neither holds the other's connection.
          await Promise.all([
            cas.recordCertificate(dataSource.manager, issued, { issuerGenerationId: generation.id }),
            audit.record({
              type: 'certificate.issued',
              subject: issued.serialHex,
              data: { serial: issued.serialHex, bench: true },
            }),
          ]);
          latencies.push(performance.now() - t0);
        }
      }),
    );
    const issueSeconds = (performance.now() - issueStart) / 1000;
    const issueCpuUsed = process.cpuUsage(issueCpu);
    const issueCpuMs = (issueCpuUsed.user + issueCpuUsed.system) / 1000 / ISSUE_KEYS;
    latencies.sort((a, b) => a - b);

    // CRL with 100,000 revoked entries, streamed from PostgreSQL and signed by the HSM.
    await dataSource.query(
      `INSERT INTO certificates (serial, kind, issuer_generation_id, subject_dn, not_before, not_after, der, revoked_at, revocation_reason)
       SELECT lpad(to_hex(g), 8, '0') || substr(md5(g::text), 1, 24), 'code-signing', $1, 'CN=bench', now(), now() + interval '90 days', '\\x00'::bytea, now(),
              (ARRAY['keyCompromise','superseded','unspecified','cessationOfOperation'])[1 + g % 4]
         FROM generate_series(1, 100000) g`,
      [generation.id],
    );
    const crls = app.get(CrlService);
    const crlTimes: number[] = [];
    let crlBytes = 0;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const event = await crls.rebuild(generation.id);
      crlTimes.push(performance.now() - t0);
      crlBytes = (await cas.generationById(generation.id)).crl!.length;
      if (!event || event.entryCount !== 100_000) throw new Error(`CRL had ${event?.entryCount} entries`);
    }
    crlTimes.sort((a, b) => a - b);

    // OCSP through the HTTP stack (app.inject), a real issued leaf.
    const leafDer = (
      await dataSource.query(
        `SELECT der FROM certificates WHERE issuer_generation_id = $1 AND length(der) > 1 LIMIT 1`,
        [generation.id],
      )
    )[0].der as Buffer;
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'signet-bench-ocsp-'));
    fs.writeFileSync(path.join(work, 'leaf.der'), leafDer);
    fs.writeFileSync(path.join(work, 'issuer.der'), issuer.certificate);
    spawnSync('openssl', ['x509', '-inform', 'DER', '-in', 'leaf.der', '-out', 'leaf.pem'], { cwd: work });
    spawnSync('openssl', ['x509', '-inform', 'DER', '-in', 'issuer.der', '-out', 'issuer.pem'], { cwd: work });
    spawnSync('openssl', ['ocsp', '-issuer', 'issuer.pem', '-cert', 'leaf.pem', '-no_nonce', '-reqout', 'plain.der'], {
      cwd: work,
    });
    const plain = fs.readFileSync(path.join(work, 'plain.der'));
    const nonceRequests: Buffer[] = [];
    for (let i = 0; i < 64; i++) {
      spawnSync('openssl', ['ocsp', '-issuer', 'issuer.pem', '-cert', 'leaf.pem', '-reqout', `n${i}.der`], {
        cwd: work,
      });
      nonceRequests.push(fs.readFileSync(path.join(work, `n${i}.der`)));
    }
    const ocspRate = async (pick: (i: number) => Buffer) => {
      let count = 0;
      const deadline = performance.now() + OCSP_WINDOW_MS;
      const start = performance.now();
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (performance.now() < deadline) {
            const response = await app.inject({
              method: 'POST',
              url: `/ocsp/${generation.name}`,
              headers: { 'content-type': 'application/ocsp-request' },
              payload: pick(count),
            });
            if (response.statusCode !== 200 || response.rawPayload.length < 100) throw new Error('bad OCSP answer');
            count++;
          }
        }),
      );
      return count / ((performance.now() - start) / 1000);
    };
    const cached = await ocspRate(() => plain);
    const uncached = await ocspRate((i) => nonceRequests[i % nonceRequests.length]);
    fs.rmSync(work, { recursive: true, force: true });

    lines.push(
      '## PKI on SoftHSM2 + PostgreSQL (bench/pki.bench.ts)',
      '',
      `Whole application in-process, embedded PostgreSQL, CA keys in SoftHSM2 (dev hierarchy: EC-384 root and issuing CA). Machine: ${os.cpus()[0]?.model}, ${os.cpus().length} cores, Node ${process.version}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 'unset'}.`,
      '',
      '| measure | result | target |',
      '|---|---:|---|',
      `| leaf issuance over existing HSM keys (build + HSM sign + verify + store + audit), ${ISSUE_CONCURRENCY} in flight | **${(ISSUE_KEYS / issueSeconds).toFixed(0)} certificates/s** (p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms; Node CPU ${issueCpuMs.toFixed(2)} ms/certificate; load average ${issueLoad.toFixed(2)} at start) | ≥ 200/s |`,
      `| HSM key generation, EC-256 (separately) | ${(ISSUE_KEYS / keygenSeconds).toFixed(0)} key pairs/s | — |`,
      `| CRL with 100,000 entries: read from PostgreSQL, build, HSM sign, store (median of 3) | **${(crlTimes[1] / 1000).toFixed(2)} s** (${(crlBytes / 2 ** 20).toFixed(2)} MiB) | ≤ 5 s |`,
      `| OCSP responses/s over HTTP, cached (no nonce) | ${cached.toFixed(0)}/s | — |`,
      `| OCSP responses/s over HTTP, uncached (nonce: HSM signs each) | ${uncached.toFixed(0)}/s | — |`,
      '',
    );
  } finally {
    await app.close();
    await platform.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  const text = lines.join('\n');
  console.log(text);
  const out = path.join(__dirname, '..', '.bench-out');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'pki.md'), text + '\n');
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
