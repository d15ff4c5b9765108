import { NestFastifyApplication } from '@nestjs/platform-fastify';
import {
  constants,
  createHash,
  createPublicKey,
  type KeyObject,
  randomBytes,
  verify,
  X509Certificate,
} from 'node:crypto';
import * as fs from 'node:fs';
import { DataSource } from 'typeorm';
import { KEY_STORE, KeyStore } from '../../src/hsm/key-store';
import { reconcileHsm } from '../../src/rotation/hsm-objects';
import { http } from '../rotation/rotation-helpers';
import { query } from '../support/database';

/**
 * Shared parts of the fault drills (test/drills/*): a steady sign load, a readiness probe, the
 * invariants every drill ends with, and the measurements written to SIGNET_DRILL_REPORT.
 * Every drill signs with an EC-256 key (RSA-2048 on openCryptoki) in digest mode over random messages the load keeps, so each
 * answer — and each audit row — can be checked against the message it was made for.
 */

/** One sign request as the client saw it. `status` 0: no HTTP answer (connection refused or reset). */
export interface SignRecord {
  startedAt: number;
  at: number;
  status: number;
  message: Buffer;
  signature?: string;
  chain?: string[];
  keyVersion?: number;
  error?: { code?: string; retryable?: boolean };
  retryAfter?: string;
  /** Status 0: the error's code (ECONNREFUSED, ECONNRESET…) and whether the request went out on a reused keep-alive connection. */
  failure?: { code?: string; reusedSocket?: boolean };
  /** The answer carried `Connection: close`. */
  connectionClose?: boolean;
}

export interface SignAnswer {
  status: number;
  body: string;
  retryAfter?: string;
  connectionClose?: boolean;
}

/** Sends one sign request body for the drill's key; throws when no HTTP answer came. */
export type SignTransport = (body: string) => Promise<SignAnswer>;

/** app.inject against an in-process application. */
export function injectTransport(app: NestFastifyApplication, token: string, key: string): SignTransport {
  return async (payload) => {
    const response = await app.inject({
      method: 'POST',
      url: `/v1/keys/${key}/sign`,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      payload,
    });
    return {
      status: response.statusCode,
      body: response.body,
      retryAfter: response.headers['retry-after'] as string | undefined,
    };
  };
}

/** Real HTTP against a server process; `baseUrl` is read per request, so the load can follow a restart to a new port. */
export function httpTransport(baseUrl: () => string, token: string, key: string): SignTransport {
  return async (payload) => {
    const response = await fetch(`${baseUrl()}/v1/keys/${key}/sign`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: payload,
      signal: AbortSignal.timeout(60_000),
    });
    return {
      status: response.status,
      body: await response.text(),
      retryAfter: response.headers.get('retry-after') ?? undefined,
    };
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls until `check` returns a value (not undefined/false); the bound only fails a stuck drill. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 120_000,
  everyMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`drill: timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * N concurrent clients signing continuously (a new random message per request) until stopped.
 * Every answer is recorded, in completion order, with its timestamps, status and signature.
 */
export class SignLoad {
  readonly records: SignRecord[] = [];
  /** Messages of requests sent and not answered yet (a drill checking audit rows while the load runs needs them). */
  readonly inFlight = new Set<Buffer>();
  private running = false;
  private clients: Array<Promise<void>> = [];

  constructor(
    private readonly transport: SignTransport,
    private readonly options: { clients?: number; pauseAfterFailureMs?: number } = {},
  ) {}

  start(): this {
    this.running = true;
    this.clients = Array.from({ length: this.options.clients ?? 8 }, () => this.client());
    return this;
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.clients);
  }

  get delivered(): SignRecord[] {
    return this.records.filter((r) => r.status === 200);
  }

  get failed(): SignRecord[] {
    return this.records.filter((r) => r.status !== 200);
  }

  /** Waits until `count` signatures were delivered for requests started at or after `since`. */
  async deliveredSince(since: number, count: number, timeoutMs = 120_000): Promise<void> {
    await waitFor(
      `${count} signatures delivered after ${new Date(since).toISOString()}`,
      () => this.records.filter((r) => r.status === 200 && r.startedAt >= since).length >= count,
      timeoutMs,
    );
  }

  private async client(): Promise<void> {
    while (this.running) {
      const message = randomBytes(32);
      const body = JSON.stringify({
        digest: createHash('sha256').update(message).digest('base64'),
        hashAlgorithm: 'SHA-256',
      });
      const startedAt = Date.now();
      let record: SignRecord;
      this.inFlight.add(message);
      try {
        const answer = await this.transport(body);
        record = {
          startedAt,
          at: Date.now(),
          status: answer.status,
          message,
          retryAfter: answer.retryAfter,
          connectionClose: answer.connectionClose,
        };
        const json = parseJson(answer.body);
        if (answer.status === 200)
          Object.assign(record, {
            signature: json.signature,
            chain: json.certificateChain,
            keyVersion: json.keyVersion,
          });
        else record.error = { code: json?.error?.code, retryable: json?.error?.details?.retryable };
      } catch (error) {
        const { code, reusedSocket } = error as { code?: string; reusedSocket?: boolean };
        record = { startedAt, at: Date.now(), status: 0, message, failure: { code, reusedSocket } };
      }
      this.records.push(record);
      this.inFlight.delete(message);
      if (record.status !== 200) await sleep(record.status === 0 ? 50 : (this.options.pauseAfterFailureMs ?? 10));
    }
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are read loosely
function parseJson(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Polls /readyz (every 50 ms) and records each status, to time when readiness turned and came back. */
export class ReadyzProbe {
  readonly samples: Array<{ at: number; status: number }> = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(check: () => Promise<number>) {
    this.loop = (async () => {
      while (this.running) {
        let status = 0;
        try {
          status = await check();
        } catch {
          // no answer: recorded as 0
        }
        this.samples.push({ at: Date.now(), status });
        await sleep(50);
      }
    })();
  }

  firstAfter(since: number, predicate: (status: number) => boolean): number | undefined {
    return this.samples.find((s) => s.at >= since && predicate(s.status))?.at;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

const elapsed = (from: number, to: number | undefined) => (to === undefined ? null : to - from);

/**
 * The times of one fault, from the load's records (and the readiness probe, when there is one):
 * fault → first failed answer / first /readyz 503; the fault's duration; recovery → first success
 * of a request started after it / first /readyz 200; the count of failed requests.
 */
export function faultTimes(
  load: SignLoad,
  window: { faultAt: number; recoveredAt: number; until?: number },
  readyz?: ReadyzProbe,
): Record<string, number | null> {
  const { faultAt, recoveredAt } = window;
  const inWindow = load.records.filter(
    (r) => r.at >= faultAt && (window.until === undefined || r.startedAt < window.until),
  );
  return {
    faultToFirstFailureMs: elapsed(faultAt, inWindow.find((r) => r.status !== 200)?.at),
    ...(readyz
      ? {
          faultToReadyz503Ms: elapsed(
            faultAt,
            readyz.firstAfter(faultAt, (s) => s === 503),
          ),
        }
      : {}),
    faultDurationMs: recoveredAt - faultAt,
    recoveryToFirstSuccessMs: elapsed(
      recoveredAt,
      load.records.find((r) => r.status === 200 && r.startedAt >= recoveredAt)?.at,
    ),
    ...(readyz
      ? {
          recoveryToReadyz200Ms: elapsed(
            recoveredAt,
            readyz.firstAfter(recoveredAt, (s) => s === 200),
          ),
        }
      : {}),
    failedRequests: inWindow.filter((r) => r.status !== 200).length,
    requests: inWindow.length,
  };
}

/** With SIGNET_DRILL_REPORT=<file>, appends one JSON line per drill (bench/drills.bench.ts renders them). */
export function reportDrill(drill: string, measured: Record<string, unknown>): void {
  const file = process.env.SIGNET_DRILL_REPORT;
  if (!file) return;
  fs.appendFileSync(file, `${JSON.stringify({ drill, recordedAt: new Date().toISOString(), ...measured })}\n`);
}

/** Totals of the whole load of a drill, for the report. */
export function loadTotals(load: SignLoad): Record<string, number> {
  const first = load.records[0]?.startedAt ?? 0;
  const last = load.records.at(-1)?.at ?? first;
  return {
    totalRequests: load.records.length,
    delivered: load.delivered.length,
    failed: load.failed.length,
    loadSeconds: Math.round((last - first) / 100) / 10,
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are read loosely
export type AdminApi = (method: 'GET' | 'POST', url: string, body?: unknown) => Promise<{ status: number; body: any }>;

export interface DrillSubject {
  /** Admin-authenticated calls to the (current) service. */
  api: AdminApi;
  databaseUrl: string;
  /** HSM reconciliation against what the database references. */
  reconcile(): Promise<{ orphanObjects: unknown[]; missingObjects: unknown[]; plannedObjects?: unknown[] }>;
  /** In-process only: signatures the HSM made since the load started (the key store's counter). */
  hsmSignatures?(): number;
}

/** An in-process application as a drill subject; create it before the load starts (it counts HSM signatures from then on). */
export function inProcessSubject(app: NestFastifyApplication, adminToken: string, databaseUrl: string): DrillSubject {
  const keyStore = app.get<KeyStore>(KEY_STORE);
  const before = keyStore.counters().signOperations;
  return {
    api: http(app, adminToken),
    databaseUrl,
    reconcile: () => reconcileHsm(app.get(DataSource), keyStore),
    hsmSignatures: () => keyStore.counters().signOperations - before,
  };
}

function leafVerifies(record: SignRecord): boolean {
  const leaf = new X509Certificate(Buffer.from(record.chain![0], 'base64'));
  return verifiesSha256(record.message, leaf.publicKey, Buffer.from(record.signature!, 'base64'));
}

/** A SHA-256 signature as Signet makes it: ECDSA raw r‖s, or RSA-PSS with a 32-byte salt (RSA-3072 on openCryptoki). */
function verifiesSha256(message: Buffer, key: KeyObject, signature: Buffer): boolean {
  if (key.asymmetricKeyType === 'rsa')
    return verify('sha256', message, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, signature);
  return verify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, signature);
}

/**
 * What must hold after every drill:
 *  - a checkpoint taken now, and the whole audit chain with all its checkpoints, verify;
 *  - every signature a client received has its audit sign row;
 *  - every audit sign row of the key is a signature the HSM made: it verifies, under the public key
 *    of its key version, over a message the load sent (and, in-process, rows ≤ the HSM's count);
 *  - HSM reconciliation finds nothing orphaned, missing or left planned;
 *  - every 2xx signature verifies against the leaf certificate returned with it.
 */
export async function expectDrillInvariants(
  subject: DrillSubject,
  load: Pick<SignLoad, 'records' | 'delivered'>,
  key: string,
): Promise<void> {
  const checkpoint = await subject.api('POST', '/v1/audit/checkpoints');
  expect(checkpoint.status).toBe(201);
  const verified = await subject.api('GET', '/v1/audit/verify?full=true');
  expect(verified.status).toBe(200);
  expect(verified.body).toMatchObject({ ok: true, mode: 'full' });
  expect(BigInt(verified.body.lastCheckpoint.seq)).toBeGreaterThanOrEqual(BigInt(checkpoint.body.seq));
  const checkpoints = await subject.api('GET', '/v1/audit/checkpoints');
  expect(checkpoints.body.checkpoints.length).toBeGreaterThanOrEqual(1);

  const rows = await query<{ signature: string; digest: string; version: number }>(
    subject.databaseUrl,
    `SELECT data->>'signature' AS signature, data->>'digest' AS digest, (data->>'version')::int AS version FROM audit_events WHERE type = 'sign' AND subject = $1`,
    [key],
  );
  const audited = new Set(rows.map((row) => row.signature));
  expect(audited.size).toBe(rows.length);
  const delivered = load.delivered;
  expect(delivered.filter((d) => !audited.has(d.signature!)).length).toBe(0);
  expect(rows.length).toBeGreaterThanOrEqual(delivered.length);

  const versions = await query<{ version: number; public_key: Buffer }>(
    subject.databaseUrl,
    `SELECT kv.version, kv.public_key FROM key_versions kv JOIN signing_keys k ON k.id = kv.key_id WHERE k.name = $1`,
    [key],
  );
  const publicKeys = new Map(
    versions.map((v) => [v.version, createPublicKey({ key: v.public_key, format: 'der', type: 'spki' })]),
  );
  const messages = new Map(
    load.records.map((r) => [`sha256:${createHash('sha256').update(r.message).digest('hex')}`, r.message]),
  );
  const unmatched = rows.filter((row) => {
    const message = messages.get(row.digest);
    const publicKey = publicKeys.get(row.version);
    return !message || !publicKey || !verifiesSha256(message, publicKey, Buffer.from(row.signature, 'base64'));
  });
  expect(unmatched).toEqual([]);
  if (subject.hsmSignatures) expect(rows.length).toBeLessThanOrEqual(subject.hsmSignatures());

  const reconciliation = await subject.reconcile();
  expect(reconciliation.orphanObjects).toEqual([]);
  expect(reconciliation.missingObjects).toEqual([]);
  expect(reconciliation.plannedObjects ?? []).toEqual([]);

  expect(delivered.filter((d) => !leafVerifies(d)).length).toBe(0);
}
