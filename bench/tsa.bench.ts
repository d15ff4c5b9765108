/**
 * TSA benchmark: RFC 3161 timestamps per second through TsaService (parse, serial from the
 * PostgreSQL sequence, TSTInfo + CMS, one SoftHSM2 signature, self-verification, audit event
 * committed) with 32 requests in flight, beside raw PKCS#11 signing on the same key types in the
 * same run: the key store's pooled async C_Sign, and pkcs11js C_Sign called synchronously on one
 * thread. Embedded PostgreSQL and a throw-away SoftHSM2 token, both under a temporary directory.
 *
 *   UV_THREADPOOL_SIZE=16 npx ts-node --transpile-only bench/tsa.bench.ts
 *
 * Prints a Markdown section and writes it to .bench-out/tsa.md. Bounded: about a minute.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pkcs11js from 'pkcs11js';
import 'reflect-metadata';
import { Global, INestApplicationContext, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DataSource } from 'typeorm';
import { AuditService } from '../src/audit/audit.service';
import { octetString, oid, sequence, smallInteger } from '../src/pki/der-writer';
import { CaService } from '../src/ca/ca.service';
import { CaCreationService } from '../src/ca/ca-creation.service';
import { CaRepository } from '../src/ca/ca.repository';
import { SIGNET_CONFIG, loadConfig } from '../src/config/config';
import { DatabaseModule } from '../src/database/database.module';
import { EmbeddedPostgres } from '../src/database/embedded-postgres';
import { migrateUnderLock } from '../src/database/platform-database';
import { HsmModule } from '../src/hsm/hsm.module';
import { KEY_STORE, KeyStore } from '../src/hsm/key-store';
import { SIGNER_FACTORY, SignerFactory } from '../src/hsm/signer-factory';
import { ObservabilityModule } from '../src/observability/observability.module';
import { parsePkcs11Uri } from '../src/hsm/pkcs11-uri';
import { ensureSoftHsmDevToken, readPinFile } from '../src/hsm/softhsm-dev-token';
import { ClockSyncProbe } from '../src/tsa/clock-sync.probe';
import { TsaAuditSink } from '../src/tsa/tsa-audit.sink';
import { TsaEventSink } from '../src/tsa/tsa-event-sink';
import { TsaSerialAllocator } from '../src/tsa/tsa-serial.allocator';
import { TsaModule } from '../src/tsa/tsa.module';
import { TsaRepository } from '../src/tsa/tsa.repository';
import { TsaService } from '../src/tsa/tsa.service';

const IN_FLIGHT = 32;
const WINDOW_MS = 5000;
const RAW_WINDOW_MS = 2000;
const WARMUP_MS = 500;
const TSA_SPECS: Array<'EC-256' | 'EC-384'> = ['EC-256', 'EC-384'];

interface Row {
  what: string;
  spec: string;
  concurrency: string;
  opsPerSecond: number;
  p50Ms?: number;
  p99Ms?: number;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Closed loop: `concurrency` callers back to back for the window, latency per call. */
async function closedLoop(
  concurrency: number,
  windowMs: number,
  call: (i: number) => Promise<unknown>,
): Promise<Omit<Row, 'what' | 'spec' | 'concurrency'>> {
  let counter = 0;
  const run = async (ms: number, latencies?: number[]): Promise<number> => {
    const deadline = performance.now() + ms;
    let ops = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < deadline) {
          const start = performance.now();
          await call(counter++);
          latencies?.push(performance.now() - start);
          ops++;
        }
      }),
    );
    return ops;
  };
  await run(WARMUP_MS);
  const latencies: number[] = [];
  const start = performance.now();
  const ops = await run(windowMs, latencies);
  const seconds = (performance.now() - start) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return { opsPerSecond: ops / seconds, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99) };
}

/** pkcs11js C_SignInit + C_Sign, synchronously on one session of the main thread: the token's own speed. */
function rawPkcs11(
  modulePath: string,
  tokenLabel: string,
  pin: string,
  keyUri: string,
  digest: Buffer,
): Omit<Row, 'what' | 'spec' | 'concurrency'> {
  const p = new pkcs11js.PKCS11();
  p.load(modulePath);
  try {
    p.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (error) {
    if (!/ALREADY_INITIALIZED/.test((error as Error).message)) throw error;
  }
  const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.replace(/[\s\0]+$/, '') === tokenLabel)!; // PKCS#11 pads labels with blanks or NULs
  const session = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
  try {
    p.C_Login(session, pkcs11js.CKU_USER, pin);
  } catch (error) {
    if (!/ALREADY_LOGGED_IN/.test((error as Error).message)) throw error;
  }
  const ref = parsePkcs11Uri(keyUri);
  p.C_FindObjectsInit(session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    { type: pkcs11js.CKA_ID, value: ref.id! },
  ]);
  const [key] = p.C_FindObjects(session, 1);
  p.C_FindObjectsFinal(session);
  const out = Buffer.alloc(256);
  const signOnce = (): void => {
    p.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, key);
    p.C_Sign(session, digest, out);
  };
  const warm = performance.now() + WARMUP_MS;
  while (performance.now() < warm) signOnce();
  const latencies: number[] = [];
  const start = performance.now();
  const deadline = start + RAW_WINDOW_MS;
  while (performance.now() < deadline) {
    const t = performance.now();
    signOnce();
    latencies.push(performance.now() - t);
  }
  const seconds = (performance.now() - start) / 1000;
  p.C_CloseSession(session);
  const sorted = Float64Array.from(latencies).sort();
  return { opsPerSecond: latencies.length / seconds, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99) };
}

/** SHA-256 TimeStampReq with certReq and a 64-bit nonce, as Notation and `openssl ts -query -cert` send. */
function query(i: number): Buffer {
  const imprint = sequence(
    sequence(oid('2.16.840.1.101.3.4.2.1')),
    octetString(createHash('sha256').update(`artifact ${i}`).digest()),
  );
  return sequence(
    smallInteger(1),
    imprint,
    smallInteger(BigInt('0x' + randomBytes(8).toString('hex')) | 1n),
    Buffer.from([0x01, 0x01, 0xff]),
  );
}

function fmt(value: number | undefined, digits: number): string {
  return value === undefined || Number.isNaN(value) ? '–' : value.toFixed(digits);
}

async function main(): Promise<void> {
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'signet-tsa-bench-'));
  const postgres = new EmbeddedPostgres({ baseDir: join(dir, 'postgres'), database: 'signet_bench' });
  const rows: Row[] = [];
  let loadAverage = '';
  let sessions = 0;
  const loadAtStart = loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');
  let context: INestApplicationContext | undefined;
  try {
    const url = await postgres.start();
    await migrateUnderLock(url);
    const dev = await ensureSoftHsmDevToken({ dataDir: dir, label: 'signet-tsa-bench' });
    const pin = readPinFile(dev.pinFile);
    const baseConfig = loadConfig({ DATABASE_URL: url });

    // The services as the app wires them (CaService's own dependencies are the container's business).
    @Global()
    @Module({
      providers: [{ provide: SIGNET_CONFIG, useValue: baseConfig }, AuditService],
      exports: [SIGNET_CONFIG, AuditService],
    })
    class BenchRootModule {}
    @Module({
      imports: [
        BenchRootModule,
        ObservabilityModule,
        DatabaseModule.forRoot({ url, poolSize: 10 }),
        HsmModule.forRoot({ modulePath: dev.modulePath, tokenLabel: dev.tokenLabel, pin }),
        TsaModule,
      ],
    })
    class BenchModule {}
    context = await NestFactory.createApplicationContext(BenchModule, { logger: ['error', 'warn'] });
    const keyStore = context.get<KeyStore>(KEY_STORE);
    sessions = keyStore.health().configuredSessions;
    const dataSource = context.get(DataSource);
    const cas = context.get(CaService);
    const creation = context.get(CaCreationService);
    const subject = { C: 'US', ST: 'Bench', O: 'Signet Bench' };
    await creation.create({
      name: 'bench-tsa-root',
      kind: 'tsa-root',
      keySpec: 'EC-384',
      validityDays: 3650,
      subject: { ...subject, CN: 'Bench TSA Root' },
    });
    const audit = context.get(AuditService);
    const audited = new TsaAuditSink(audit);
    const unaudited: TsaEventSink = { timestampIssued: async () => undefined };
    const probe = new ClockSyncProbe();
    await probe.check();
    const tsaRepository = new TsaRepository(dataSource);
    const serials = new TsaSerialAllocator(tsaRepository);

    for (const spec of TSA_SPECS) {
      const caName = `bench-tsa-${spec.toLowerCase()}`;
      const ca = await creation.create({
        name: caName,
        kind: 'tsa',
        parent: 'bench-tsa-root',
        keySpec: spec,
        validityDays: 365,
        subject: { ...subject, CN: `Bench TSA ${spec}` },
      });
      const config = { ...baseConfig, tsa: { ...baseConfig.tsa, caName } };
      const keyUri = (await cas.activeGeneration((await cas.byName(ca.name)).id)).keyUri;
      const variants: Array<[string, TsaEventSink]> =
        spec === 'EC-256'
          ? [
              ['TsaService.respond, audited', audited],
              ['TsaService.respond, audit sink off', unaudited],
            ]
          : [['TsaService.respond, audited', audited]];
      for (const [what, sink] of variants) {
        const tsa = new TsaService(
          tsaRepository,
          context.get<SignerFactory>(SIGNER_FACTORY),
          config,
          serials,
          probe,
          sink,
          new CaRepository(dataSource),
        );
        const queries = Array.from({ length: 1024 }, (_, i) => query(i));
        const result = await closedLoop(IN_FLIGHT, WINDOW_MS, async (i) => {
          const reply = await tsa.respond(queries[i % queries.length], '127.0.0.1');
          if (!reply.granted) throw new Error(`rejected: ${reply.reason}`);
        });
        rows.push({ what, spec, concurrency: `${IN_FLIGHT} in flight`, ...result });
        console.log(rows[rows.length - 1]);
      }
      const hash = spec === 'EC-256' ? 'SHA-256' : 'SHA-384';
      const digest = createHash(hash.replace('-', '').toLowerCase()).update('bench').digest();
      rows.push({
        what: 'KeyStore.sign (pooled async C_Sign)',
        spec,
        concurrency: `${IN_FLIGHT} in flight`,
        ...(await closedLoop(IN_FLIGHT, RAW_WINDOW_MS, () => keyStore.sign(keyUri, digest, { hash }))),
      });
      console.log(rows[rows.length - 1]);
      rows.push({
        what: 'raw pkcs11js C_Sign (sync)',
        spec,
        concurrency: '1 thread',
        ...rawPkcs11(dev.modulePath, dev.tokenLabel, pin, keyUri, digest),
      });
      console.log(rows[rows.length - 1]);
    }
    await audit.flushed();
    loadAverage = loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ');
  } finally {
    await context?.close().catch(() => undefined);
    await postgres.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }

  const cpu = cpus();
  const section = `## TSA, RFC 3161 timestamps (\`bench/tsa.bench.ts\`)

Machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores; Node ${process.version}; UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 'unset (4)'}; key store sessions ${sessions}; embedded PostgreSQL and SoftHSM2 on the same machine; load average (1/5/15 min) ${loadAtStart} at the start and ${loadAverage} at the end — other work on the machine shares the cores.

A timestamp here is the whole service path: parse the query, draw the serial from the PostgreSQL sequence (coalesced round trips), TSTInfo + CMS SignedData with ESSCertIDv2, one ECDSA signature in SoftHSM2, a Node verification of that signature, and — "audited" — the audit event committed before the reply. The PKCS#11 rows sign the same key type in the same run: through the key store (what the TSA uses), and raw pkcs11js on one thread (the token's own cost per signature).

| path | key | concurrency | ops/s | p50 ms | p99 ms |
|---|---|---|---:|---:|---:|
${rows.map((r) => `| ${r.what} | ${r.spec} | ${r.concurrency} | ${fmt(r.opsPerSecond, 0)} | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} |`).join('\n')}

Target: ≥ 1,000 timestamps/s with the TSA key in SoftHSM2. With an EC-256 key the signature is a small part of a timestamp (raw C_Sign row); the rest is the service's CPU work and, when audited, waiting for the audit event's group commit, all on the cores PostgreSQL shares. An EC-384 key costs the TSA over half its throughput, because SoftHSM2 signs P-384 several times slower: hence EC-256 for the development TSA key.
Run took ${((Date.now() - started) / 1000).toFixed(0)} s.
`;
  console.log(`\n${section}`);
  const outDir = join(__dirname, '..', '.bench-out');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'tsa.md'), section);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
