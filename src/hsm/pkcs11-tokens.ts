import { endianness } from 'node:os';
import * as pkcs11js from 'pkcs11js';
import { DomainError, ErrorCode } from '../common/errors';
import { KEY_SPEC_INFO, type KeySpec } from '../pki/key-spec';
import { type HsmCapabilities, type HsmFeature, describeCapabilities, probeCapabilities } from './hsm-capabilities';
import { type HsmLogger, silentLogger } from './hsm-logger';
import { type HsmOptions, type ResolvedHsmOptions, resolveHsmOptions } from './hsm-options';
import type { HsmCounters, KeyRole } from './key-store';
import { specFromAttributes } from './key-templates';
import { CKS_RO_PUBLIC_SESSION, CKS_RW_PUBLIC_SESSION, type Handle, type Pkcs11Api, type Template } from './pkcs11-api';
import { Pkcs11Error, toPkcs11Error } from './pkcs11-errors';
import type { Pkcs11FaultInjector } from './pkcs11-fault-injector';
import { Pkcs11Library } from './pkcs11-library';
import { type Pkcs11KeyRef, parsePkcs11Uri } from './pkcs11-uri';
import { spkiFromEcPoint, spkiFromRsa } from './public-key';
import { type PooledSession, SessionPool } from './session-pool';
import { SignWorkerPool } from './sign-workers';

export interface Pkcs11KeyStoreDeps {
  logger?: HsmLogger;
  /** Tests only: fault-injection seam in front of pkcs11js. */
  faults?: Pkcs11FaultInjector;
}

/** A private key as found in the token, valid for one pool epoch (object handles do not outlive it). */
export interface ResolvedKey {
  epoch: number;
  handle: Handle;
  spec: KeySpec;
  label: string;
  /** The signing threads' index for this key, once it was signed there. */
  signKey?: number;
}

export interface KeyTarget {
  ref: Pkcs11KeyRef;
  pool: SessionPool;
}

/** What the key store counts itself; the pools count recoveries and retries. */
export type Pkcs11Stats = Omit<HsmCounters, 'recoveries' | 'operationRetries'>;

const MAX_CACHE_ENTRIES = 10_000;
/** Largest signature the pool's per-session output buffer must hold (RSA-4096). */
const MAX_SIGNATURE_LENGTH = 512;
const LITTLE_ENDIAN = endianness() === 'LE';

export function readUlong(value: Buffer): number {
  if (value.length === 8) return Number(LITTLE_ENDIAN ? value.readBigUInt64LE(0) : value.readBigUInt64BE(0));
  if (value.length === 4) return LITTLE_ENDIAN ? value.readUInt32LE(0) : value.readUInt32BE(0);
  throw new Error(`unexpected CK_ULONG length ${value.length}`);
}

const TOKEN_LOOKUP_ATTEMPTS = 10;
const TOKEN_LOOKUP_RETRY_MS = 200;

/**
 * Opens a pool. A token not listed is looked for again for two seconds before the boot fails,
 * initialising the module afresh before each look: SoftHSM2 reads its token files in C_Initialize,
 * and a file it caught while another process (or another module instance of this one) was
 * rewriting it (a login does) stays missing or unreadable to that initialisation. POSIX file locks
 * do not order instances of one process. Seen in CI with four processes on one data dir.
 */
async function openPool(pool: SessionPool, library: Pkcs11Library): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      pool.open();
      return;
    } catch (err) {
      if (attempt >= TOKEN_LOOKUP_ATTEMPTS || !(err as { tokenNotFound?: boolean }).tokenNotFound) throw err;
      await new Promise((resolve) => setTimeout(resolve, TOKEN_LOOKUP_RETRY_MS));
      await library.reinitialize(library.generation);
    }
  }
}

export function notFound(operation: string, uri: string): DomainError {
  return new DomainError(ErrorCode.NOT_FOUND, `${operation}: key '${uri}' not found`);
}

/**
 * The configured tokens as this process reaches them, shared by the key store's four parts (key
 * manager, signer factory, sealer, reconciler): the module, a bounded session pool per token,
 * the signing threads, what each token can do, the key handle caches and the counters.
 */
export class Pkcs11Tokens {
  /** Holds the PINs: an ECMAScript private field, so util.inspect and JSON never show it. */
  readonly #options: ResolvedHsmOptions;
  readonly logger: HsmLogger;
  readonly faults?: Pkcs11FaultInjector;
  private library?: Pkcs11Library;
  private faultApi?: Pkcs11Api;
  /** Signing threads (synchronous C_Sign off the event loop); undefined when signing uses libuv's pool. */
  signWorkers?: SignWorkerPool;
  signingPool?: SessionPool;
  caPool?: SessionPool;
  private readonly targets = new Map<string, KeyTarget>();
  readonly keys = new Map<string, ResolvedKey>();
  readonly publicKeys = new Map<string, { spec: KeySpec; spki: Buffer }>();
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Per pool, read once at open: requests the token cannot serve fail before reaching it. */
  readonly capabilities = new Map<SessionPool, HsmCapabilities>();
  /** Cleared the first time a token refuses CKA_COPYABLE (PKCS#11 < 2.40 modules). */
  copyableSupported = true;
  closed = false;
  readonly stats: Pkcs11Stats = {
    signOperations: 0,
    signAttempts: 0,
    signFailures: 0,
    keysGenerated: 0,
    keysDestroyed: 0,
    sealOperations: 0,
    unsealOperations: 0,
  };

  constructor(options: HsmOptions, deps: Pkcs11KeyStoreDeps = {}) {
    this.#options = resolveHsmOptions(options);
    this.logger = deps.logger ?? silentLogger;
    this.faults = deps.faults;
    for (const warning of this.#options.warnings) this.logger.warn(`hsm: ${warning}`);
  }

  get opened(): boolean {
    return this.library !== undefined;
  }

  get sealingKeyLabelPrefix(): string {
    return this.#options.sealingKeyLabelPrefix;
  }

  get probeIntervalMs(): number {
    return this.#options.recovery.probeIntervalMs;
  }

  get configuredSignWorkers(): number {
    return this.#options.signWorkers;
  }

  /** Loads the module, opens and logs in the session pools. Throws (boot stops) when it cannot. */
  async open(): Promise<void> {
    if (this.library) return;
    const library = Pkcs11Library.acquire(this.#options.modulePath, this.logger);
    this.library = library;
    this.faultApi = this.faults?.wrap(() => library.api);
    const pools: SessionPool[] = [];
    try {
      const common = {
        acquireTimeoutMs: this.#options.acquireTimeoutMs,
        recovery: this.#options.recovery,
        logger: this.logger,
        outputBufferSize: MAX_SIGNATURE_LENGTH,
      };
      const signing = this.#options.signing;
      this.signingPool = new SessionPool(library, () => this.api, {
        ...common,
        role: this.#options.ca ? 'signing' : 'signing+ca',
        tokenLabel: signing.tokenLabel,
        pin: signing.pin,
        size: signing.poolSize,
      });
      await openPool(this.signingPool, library);
      pools.push(this.signingPool);
      this.probe(this.signingPool);
      if (this.#options.ca) {
        this.caPool = new SessionPool(library, () => this.api, {
          ...common,
          role: 'ca',
          tokenLabel: this.#options.ca.tokenLabel,
          pin: this.#options.ca.pin,
          size: this.#options.ca.poolSize,
        });
        await openPool(this.caPool, library);
        pools.push(this.caPool);
        this.probe(this.caPool);
      }
      if (this.#options.signWorkers > 0) {
        this.signWorkers = new SignWorkerPool({
          modulePath: library.modulePath,
          threads: this.#options.signWorkers,
          outputBufferSize: MAX_SIGNATURE_LENGTH,
          tokens: [this.#options.signing, ...(this.#options.ca ? [this.#options.ca] : [])].map((t) => ({
            label: t.tokenLabel,
            pin: t.pin,
          })),
          ownModule: this.#options.signThreadsOwnModule,
          moduleCopyDir: this.#options.moduleCopyDir,
          generation: () => library.generation,
          logger: this.logger,
        });
        await this.signWorkers.start();
      }
    } catch (err) {
      await this.signWorkers?.close();
      this.signWorkers = undefined;
      await Promise.all(pools.map((pool) => pool.close()));
      this.signingPool = this.caPool = undefined;
      this.library = undefined;
      library.release();
      throw err;
    }
    this.logger.log(
      `hsm: ready (${this.#options.modulePath}; signing token '${this.#options.signing.tokenLabel}' × ${this.#options.signing.poolSize} sessions` +
        (this.#options.ca ? `; CA token '${this.#options.ca.tokenLabel}' × ${this.#options.ca.poolSize}` : '') +
        `; UV_THREADPOOL_SIZE ${this.#options.uvThreadpoolSize}; ` +
        (this.signWorkers
          ? `signing on ${this.#options.signWorkers} worker threads, ${this.signWorkers.ownModuleThreads} of them on their own instance of the module)`
          : 'signing on the libuv pool)'),
    );
  }

  /** Reads the token's mechanism list once (see hsm-capabilities.ts). */
  private probe(pool: SessionPool): void {
    const capabilities = this.call('C_GetMechanismList', () => probeCapabilities(this.api, pool.slotHandle as Handle));
    this.capabilities.set(pool, capabilities);
    const line = `hsm: ${describeCapabilities(pool.tokenLabel, capabilities)}`;
    if (Object.keys(capabilities.missing).length > 0) this.logger.warn(line);
    else this.logger.log(line);
  }

  /** Drains in-flight operations, closes this store's sessions, finalises the module if it was the last user. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.signingPool, this.caPool].map((pool) => pool?.close()));
    // After the drain: no job is left on the threads, and they never touch the library again.
    await this.signWorkers?.close();
    this.library?.release();
  }

  /**
   * Refuses a request the token's mechanism list cannot serve (UNSUPPORTED_ALGORITHM, a 4xx that
   * names the missing mechanisms), instead of letting the token fail it with CKR_MECHANISM_INVALID.
   */
  requireFeature(operation: string, pool: SessionPool, feature: HsmFeature): void {
    const missing = this.capabilities.get(pool)?.missing[feature];
    if (!missing) return;
    const what =
      feature === 'sealing'
        ? 'sealing secrets'
        : feature === 'rsa-pkcs1'
          ? 'PKCS#1 v1.5 signatures'
          : `key spec '${feature}'`;
    throw new DomainError(
      ErrorCode.UNSUPPORTED_ALGORITHM,
      `${operation}: ${what} needs ${missing.join(', ')}, which token '${pool.tokenLabel}' does not offer (see signet status)`,
      { feature, missingMechanisms: missing, tokenLabel: pool.tokenLabel },
    );
  }

  get api(): Pkcs11Api {
    return this.faultApi ?? (this.library as Pkcs11Library).api;
  }

  get pools(): SessionPool[] {
    return [this.signingPool, this.caPool].filter((pool): pool is SessionPool => pool !== undefined);
  }

  poolFor(role: KeyRole): SessionPool {
    const pool = role === 'ca' ? (this.caPool ?? this.signingPool) : this.signingPool;
    if (!pool || this.closed)
      throw new DomainError(ErrorCode.HSM_UNAVAILABLE, 'hsm: key store is not open', { retryable: true });
    return pool;
  }

  /** Parses a key URI once and routes it to the pool of its token; NOT_FOUND for other tokens. */
  target(operation: string, keyUri: string): KeyTarget {
    let target = this.targets.get(keyUri);
    if (target) return target;
    const ref = parsePkcs11Uri(keyUri);
    let pool: SessionPool | undefined;
    if (ref.token === this.#options.signing.tokenLabel) pool = this.signingPool;
    else if (ref.token === this.#options.ca?.tokenLabel) pool = this.caPool;
    if (!pool) {
      if (this.closed || !this.signingPool)
        throw new DomainError(ErrorCode.HSM_UNAVAILABLE, `${operation}: key store is not open`, { retryable: true });
      throw notFound(operation, keyUri);
    }
    if (this.targets.size >= MAX_CACHE_ENTRIES) this.targets.clear();
    target = { ref, pool };
    this.targets.set(keyUri, target);
    return target;
  }

  /** The private key for `keyUri`, from the cache when its handle is still from the current epoch. */
  keyOnSession(session: PooledSession, target: KeyTarget, keyUri: string, operation: string): ResolvedKey {
    const epoch = target.pool.epoch;
    const cached = this.keys.get(keyUri);
    if (cached && cached.epoch === epoch) return cached;
    const template: Template = [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_ID, value: target.ref.id },
    ];
    if (target.ref.object !== undefined) template.push({ type: pkcs11js.CKA_LABEL, value: target.ref.object });
    const handles = this.findObjects(session, template, 2);
    if (handles.length === 0) {
      this.throwIfLoggedOut(session);
      throw notFound(operation, keyUri);
    }
    if (handles.length > 1) {
      throw new DomainError(ErrorCode.CONFLICT, `${operation}: two private keys match '${keyUri}'; refusing to choose`);
    }
    const handle = handles[0];
    const [typeAttr, labelAttr] = this.call('C_GetAttributeValue', () =>
      this.api.C_GetAttributeValue(session.handle, handle, [
        { type: pkcs11js.CKA_KEY_TYPE },
        { type: pkcs11js.CKA_LABEL },
      ]),
    );
    const spec = this.specOf(session, handle, readUlong(typeAttr.value));
    if (!spec)
      throw new DomainError(
        ErrorCode.UNSUPPORTED_ALGORITHM,
        `${operation}: key '${keyUri}' is not one of the supported key specs`,
      );
    const resolved: ResolvedKey = { epoch, handle, spec, label: labelAttr.value.toString('utf8') };
    if (this.keys.size >= MAX_CACHE_ENTRIES) this.keys.clear();
    this.keys.set(keyUri, resolved);
    return resolved;
  }

  publicKeyOnSession(session: PooledSession, target: KeyTarget, keyUri: string, spec: KeySpec): Buffer {
    const cached = this.publicKeys.get(keyUri);
    if (cached && cached.spec === spec) return cached.spki;
    const template: Template = [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_ID, value: target.ref.id },
    ];
    const handles = this.findObjects(session, template, 1);
    let spki: Buffer;
    if (handles.length > 0) {
      spki = this.readSpki(session, handles[0], spec);
    } else if (KEY_SPEC_INFO[spec].kind === 'RSA') {
      // The public half of an RSA private key object is readable; EC private keys carry no point.
      spki = this.readSpki(session, this.keyOnSession(session, target, keyUri, 'getPublicKey').handle, spec);
    } else {
      throw new DomainError(ErrorCode.NOT_FOUND, `getPublicKey: public key of '${keyUri}' not found`);
    }
    this.publicKeys.set(keyUri, { spec, spki });
    return spki;
  }

  readSpki(session: PooledSession, handle: Handle, spec: KeySpec): Buffer {
    if (KEY_SPEC_INFO[spec].kind === 'EC') {
      const [point] = this.call('C_GetAttributeValue', () =>
        this.api.C_GetAttributeValue(session.handle, handle, [{ type: pkcs11js.CKA_EC_POINT }]),
      );
      return spkiFromEcPoint(spec, point.value);
    }
    const [modulus, exponent] = this.call('C_GetAttributeValue', () =>
      this.api.C_GetAttributeValue(session.handle, handle, [
        { type: pkcs11js.CKA_MODULUS },
        { type: pkcs11js.CKA_PUBLIC_EXPONENT },
      ]),
    );
    return spkiFromRsa(modulus.value, exponent.value);
  }

  specOf(session: PooledSession, handle: Handle, keyType: number): KeySpec | undefined {
    if (keyType === pkcs11js.CKK_EC) {
      const [params] = this.call('C_GetAttributeValue', () =>
        this.api.C_GetAttributeValue(session.handle, handle, [{ type: pkcs11js.CKA_EC_PARAMS }]),
      );
      return specFromAttributes(keyType, params.value);
    }
    if (keyType === pkcs11js.CKK_RSA) {
      // CKA_MODULUS_BITS exists on public keys only; both halves carry the modulus.
      const [modulus] = this.call('C_GetAttributeValue', () =>
        this.api.C_GetAttributeValue(session.handle, handle, [{ type: pkcs11js.CKA_MODULUS }]),
      );
      return specFromAttributes(keyType, undefined, modulus.value.length * 8);
    }
    return undefined;
  }

  findObjects(session: PooledSession, template: Template, max: number): Handle[] {
    const api = this.api;
    this.call('C_FindObjectsInit', () => api.C_FindObjectsInit(session.handle, template));
    const found: Handle[] = [];
    try {
      while (found.length < max) {
        const batch = this.call('C_FindObjects', () =>
          api.C_FindObjects(session.handle, Math.min(256, max - found.length)),
        );
        found.push(...batch);
        if (batch.length === 0) break;
      }
    } catch (err) {
      try {
        api.C_FindObjectsFinal(session.handle);
      } catch {
        // the first error is the one worth reporting
      }
      throw err;
    }
    this.call('C_FindObjectsFinal', () => api.C_FindObjectsFinal(session.handle));
    return found;
  }

  /** SoftHSM2 hides private objects after a logout instead of failing: an empty search may mean that. */
  throwIfLoggedOut(session: PooledSession): void {
    let state: number;
    try {
      state = this.api.C_GetSessionInfo(session.handle).state;
    } catch (err) {
      throw toPkcs11Error(err, 'C_GetSessionInfo') ?? err;
    }
    if (state === CKS_RO_PUBLIC_SESSION || state === CKS_RW_PUBLIC_SESSION)
      throw new Pkcs11Error('CKR_USER_NOT_LOGGED_IN', pkcs11js.CKR_USER_NOT_LOGGED_IN, 'C_GetSessionInfo');
  }

  /** Drops the cached handle when the token says it is stale; the pool then retries the operation. */
  onKeyError(err: unknown, fn: string, keyUri: string): unknown {
    const p11 = toPkcs11Error(err, fn);
    if (p11 && (p11.ckr === 'CKR_OBJECT_HANDLE_INVALID' || p11.ckr === 'CKR_KEY_HANDLE_INVALID'))
      this.keys.delete(keyUri);
    return p11 ?? err;
  }

  destroyQuietly(session: PooledSession, handle: Handle): void {
    try {
      this.api.C_DestroyObject(session.handle, handle);
    } catch (err) {
      this.logger.error(
        `hsm: could not destroy a duplicate key object: ${toPkcs11Error(err, 'C_DestroyObject')?.ckr ?? String(err)}`,
      );
    }
  }

  /** Runs a synchronous PKCS#11 call, naming the function in the error it throws. */
  call<T>(fn: string, body: () => T): T {
    try {
      return body();
    } catch (err) {
      throw toPkcs11Error(err, fn) ?? err;
    }
  }

  /** Runs `body` after every earlier holder of `key` in this process has settled. */
  async withLock<T>(key: string, body: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    const current = previous.then(body, body);
    const tail = current.catch(() => undefined);
    this.locks.set(key, tail);
    try {
      return await current;
    } finally {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    }
  }
}
