import type { Response } from 'light-my-request';
import { KEY_STORE, KeyStore } from '../../src/hsm/key-store';
import { KeysService } from '../../src/keys/keys.service';
import { CrlService } from '../../src/revocation/crl.service';
import { TokenService } from '../../src/auth/token.service';
import { startTestApp, TestApp } from '../support/test-app';
import type { Caller } from '../support/route-roles';

export const FUZZ_KEY = 'fuzz-key';
export const ISSUING_CA = 'signet-dev-issuing';
export const ROOT_CA = 'signet-dev-root';
export const FUZZ_SUBJECT = { C: 'US', ST: 'Fuzz', O: 'Signet' };

export interface FuzzApp {
  t: TestApp;
  /** Bearer tokens per role; the signer is granted FUZZ_KEY. */
  tokens: Record<Caller, string>;
  /** C_Sign calls made so far (successful or not). */
  signAttempts(): number;
  /** Waits until background work started by an accepted request stops calling C_Sign. */
  settle(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The in-process application (real PostgreSQL and SoftHSM2) with nothing running on a timer that
 * would call C_Sign by itself (no periodic checkpoints, rotation ticks or scheduled distribution),
 * so any movement of the HSM's sign counter is caused by the request under test.
 */
export async function startFuzzApp(): Promise<FuzzApp> {
  const t = await startTestApp({
    SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
    SIGNET_ROTATION_TICK_SECONDS: '0',
    SIGNET_DISTRIBUTION_INTERVAL_SECONDS: '3600',
    SIGNET_DISTRIBUTION_VERIFY_SECONDS: '0',
    SIGNET_RATE_LIMIT_PER_SECOND: '0',
    SIGNET_PUBLIC_RATE_LIMIT_PER_SECOND: '1000000',
    SIGNET_LOG_LEVEL: 'warn',
  });
  await t.app
    .get(KeysService)
    .create({ name: FUZZ_KEY, keySpec: 'EC-256', subject: { ...FUZZ_SUBJECT, CN: FUZZ_KEY } });
  const service = t.app.get(TokenService);
  const make = async (role: Caller, keys: string[] = []) =>
    (await service.create({ name: `fuzz-${role}`, role, keys }, undefined)).token;
  const tokens: Record<Caller, string> = {
    admin: await make('admin'),
    signer: await make('signer', [FUZZ_KEY]),
    'security-officer': await make('security-officer'),
    auditor: await make('auditor'),
  };
  const keyStore = t.app.get<KeyStore>(KEY_STORE);
  const signAttempts = () => keyStore.counters().signAttempts;
  const crls = t.app.get(CrlService);
  return {
    t,
    tokens,
    signAttempts,
    settle: async () => {
      // A revocation, a new CA or a renewal signs a CRL CRL_COALESCE_MS later: wait for it, or its
      // C_Sign lands on the next request (seen as "rejected with 400 after 1 C_Sign call(s)").
      await crls.whenIdle();
      // Then stable for a quarter of a second, bounded generously.
      const deadline = Date.now() + 15_000;
      let last = signAttempts();
      let stableSince = Date.now();
      while (Date.now() - stableSince < 250 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        const now = signAttempts();
        if (now !== last) [last, stableSince] = [now, Date.now()];
      }
    },
    close: () => t.close(),
  };
}

/** Text that must never reach a client: stack frames, source paths, driver and PKCS#11 internals. */
const INTERNALS =
  /\n\s+at |\(\/[^)]*:\d+:\d+\)|node_modules|\/work\/|\.ts:\d+|QueryFailedError|TypeError|ReferenceError|RangeError|Cannot read propert|is not a function|CKR_[A-Z_]+|duplicate key value|violates .* constraint|relation "|syntax error at/;

/**
 * What is wrong with a response under API.md's rules: a 5xx, a 4xx not in the error shape
 * (`{"error": {"code": "UPPER_SNAKE", "message": "…", "details"?: {…}}}` as JSON), or internal
 * text leaking out. Undefined when nothing is.
 */
export function responseProblem(response: Pick<Response, 'statusCode' | 'body' | 'headers'>): string | undefined {
  const status = response.statusCode;
  if (status >= 500) return `answered ${status}: ${response.body.slice(0, 300)}`;
  if (INTERNALS.test(response.body.slice(0, 100_000)))
    return `internal text in a ${status} body: ${response.body.slice(0, 300)}`;
  if (status < 400) return undefined;
  if (!String(response.headers['content-type'] ?? '').startsWith('application/json'))
    return `${status} with content-type ${response.headers['content-type']}`;
  let body: unknown;
  try {
    body = JSON.parse(response.body);
  } catch {
    return `${status} body is not JSON: ${response.body.slice(0, 200)}`;
  }
  const error = (body as { error?: Record<string, unknown> })?.error;
  const shaped =
    typeof body === 'object' &&
    body !== null &&
    Object.keys(body).join() === 'error' &&
    typeof error === 'object' &&
    error !== null &&
    typeof error.code === 'string' &&
    /^[A-Z][A-Z0-9_]*$/.test(error.code) &&
    typeof error.message === 'string' &&
    error.message.length > 0 &&
    Object.keys(error).every((key) => ['code', 'message', 'details'].includes(key)) &&
    (error.details === undefined ||
      (typeof error.details === 'object' && error.details !== null && !Array.isArray(error.details)));
  return shaped ? undefined : `${status} body not in the error shape: ${response.body.slice(0, 300)}`;
}
