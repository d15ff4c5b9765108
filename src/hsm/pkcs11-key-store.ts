import { randomBytes } from 'node:crypto';
import { endianness } from 'node:os';
import * as pkcs11js from 'pkcs11js';
import { DomainError, ErrorCode } from '../common/errors';
import {
  HASH_LENGTH,
  KEY_SPEC_INFO,
  isHashAlgorithm,
  isKeySpec,
  type DigestSigner,
  type HashAlgorithm,
  type KeySpec,
} from '../pki/key-spec';
import { type HsmCapabilities, type HsmFeature, describeCapabilities, probeCapabilities } from './hsm-capabilities';
import { type HsmLogger, silentLogger } from './hsm-logger';
import { type HsmOptions, type ResolvedHsmOptions, resolveHsmOptions } from './hsm-options';
import { reconcileKeyObjects } from './key-reconciliation';
import type {
  CreateKeyRequest,
  HsmCounters,
  HsmHealth,
  HsmState,
  KeyInfo,
  KeyListing,
  KeyRole,
  KeyStore,
  ReconciliationReport,
  SealingKeyInfo,
  SignOptions,
} from './key-store';
import {
  aesGcmMechanism,
  digestInfo,
  ecdsaMechanism,
  keyPairTemplates,
  rsaPkcs1Mechanism,
  rsaPssMechanism,
  sealingKeyTemplate,
  specFromAttributes,
} from './key-templates';
import { CKS_RO_PUBLIC_SESSION, CKS_RW_PUBLIC_SESSION, type Handle, type Mechanism, type Pkcs11Api, type Template } from './pkcs11-api';
import { Pkcs11Error, toDomainError, toPkcs11Error } from './pkcs11-errors';
import type { Pkcs11FaultInjector } from './pkcs11-fault-injector';
import { Pkcs11Library } from './pkcs11-library';
import { type Pkcs11KeyRef, formatPkcs11Uri, parsePkcs11Uri } from './pkcs11-uri';
import { spkiFromEcPoint, spkiFromRsa } from './public-key';
import { GCM_TAG_LENGTH, decodeSealedEnvelope, encodeSealedEnvelope, sealingAad } from './sealed-envelope';
import { type PooledSession, SessionPool } from './session-pool';
import { SignWorkerPool } from './sign-workers';

export interface Pkcs11KeyStoreDeps {
  logger?: HsmLogger;
  /** Tests only: fault-injection seam in front of pkcs11js. */
  faults?: Pkcs11FaultInjector;
}

/** A private key as found in the token, valid for one pool epoch (object handles do not outlive it). */
interface ResolvedKey {
  epoch: number;
  handle: Handle;
  spec: KeySpec;
  label: string;
  /** The signing threads' index for this key, once it was signed there. */
  signKey?: number;
}

interface KeyTarget {
  ref: Pkcs11KeyRef;
  pool: SessionPool;
}

interface SealingKey {
  handle: Handle;
  id: Buffer;
  label: string;
  generation: number;
}

interface SealingKeys {
  epoch: number;
  loadedAt: number;
  byId: Map<string, SealingKey>;
  current?: SealingKey;
}

const MAX_CACHE_ENTRIES = 10_000;
const MAX_SEALED_PLAINTEXT = 64 * 1024;
const GCM_IV_LENGTH = 12;
/** Another replica may rotate the sealing key: look for a newer generation this often. */
const SEALING_KEYS_REFRESH_MS = 60_000;
/** Largest signature the pool's per-session output buffer must hold (RSA-4096). */
const MAX_SIGNATURE_LENGTH = 512;
const LITTLE_ENDIAN = endianness() === 'LE';

function readUlong(value: Buffer): number {
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

function notFound(operation: string, uri: string): DomainError {
  return new DomainError(ErrorCode.NOT_FOUND, `${operation}: key '${uri}' not found`);
}

/**
 * KeyStore over PKCS#11 (pkcs11js): keys generated and kept inside the token, signing through a
 * bounded session pool off the event loop — on signing threads (SignWorkerPool) or with the async
 * C_Sign on libuv's pool (SIGNET_HSM_SIGN_WORKERS) — and recovery from token faults (see SessionPool).
 */
export class Pkcs11KeyStore implements KeyStore {
  /** Holds the PINs: an ECMAScript private field, so util.inspect and JSON never show it. */
  readonly #options: ResolvedHsmOptions;
  private readonly logger: HsmLogger;
  private readonly faults?: Pkcs11FaultInjector;
  private probeTimer?: NodeJS.Timeout;
  private library?: Pkcs11Library;
  private faultApi?: Pkcs11Api;
  /** Signing threads (synchronous C_Sign off the event loop); undefined when signing uses libuv's pool. */
  private signWorkers?: SignWorkerPool;
  private signingPool?: SessionPool;
  private caPool?: SessionPool;
  private readonly targets = new Map<string, KeyTarget>();
  private readonly keys = new Map<string, ResolvedKey>();
  private readonly publicKeys = new Map<string, { spec: KeySpec; spki: Buffer }>();
  private sealingKeys?: SealingKeys;
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Per pool, read once at open: requests the token cannot serve fail before reaching it. */
  private readonly capabilities = new Map<SessionPool, HsmCapabilities>();
  /** Cleared the first time a token refuses CKA_COPYABLE (PKCS#11 < 2.40 modules). */
  private copyableSupported = true;
  private closed = false;
  private readonly stats = {
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
          tokens: [this.#options.signing, ...(this.#options.ca ? [this.#options.ca] : [])].map((t) => ({ label: t.tokenLabel, pin: t.pin })),
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
    const probeMs = this.#options.recovery.probeIntervalMs;
    if (probeMs > 0) {
      this.probeTimer = setInterval(() => {
        for (const pool of pools) void pool.probe();
      }, probeMs);
      this.probeTimer.unref();
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

  private probe(pool: SessionPool): void {
    const capabilities = this.call('C_GetMechanismList', () => probeCapabilities(this.api, pool.slotHandle as Handle));
    this.capabilities.set(pool, capabilities);
    const line = `hsm: ${describeCapabilities(pool.tokenLabel, capabilities)}`;
    if (Object.keys(capabilities.missing).length > 0) this.logger.warn(line);
    else this.logger.log(line);
  }

  /**
   * Refuses a request the token's mechanism list cannot serve (UNSUPPORTED_ALGORITHM, a 4xx that
   * names the missing mechanisms), instead of letting the token fail it with CKR_MECHANISM_INVALID.
   */
  private requireFeature(operation: string, pool: SessionPool, feature: HsmFeature): void {
    const missing = this.capabilities.get(pool)?.missing[feature];
    if (!missing) return;
    const what = feature === 'sealing' ? 'sealing secrets' : feature === 'rsa-pkcs1' ? 'PKCS#1 v1.5 signatures' : `key spec '${feature}'`;
    throw new DomainError(
      ErrorCode.UNSUPPORTED_ALGORITHM,
      `${operation}: ${what} needs ${missing.join(', ')}, which token '${pool.tokenLabel}' does not offer (see signet status)`,
      { feature, missingMechanisms: missing, tokenLabel: pool.tokenLabel },
    );
  }

  /** Drains in-flight operations, closes this store's sessions, finalises the module if it was the last user. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.probeTimer);
    await Promise.all([this.signingPool, this.caPool].map((pool) => pool?.close()));
    // After the drain: no job is left on the threads, and they never touch the library again.
    await this.signWorkers?.close();
    this.library?.release();
  }

  /** NestJS lifecycle hook. */
  onModuleDestroy(): Promise<void> {
    return this.close();
  }

  private get api(): Pkcs11Api {
    return this.faultApi ?? (this.library as Pkcs11Library).api;
  }

  private get pools(): SessionPool[] {
    return [this.signingPool, this.caPool].filter((pool): pool is SessionPool => pool !== undefined);
  }

  private poolFor(role: KeyRole): SessionPool {
    const pool = role === 'ca' ? (this.caPool ?? this.signingPool) : this.signingPool;
    if (!pool || this.closed) throw new DomainError(ErrorCode.HSM_UNAVAILABLE, 'hsm: key store is not open', { retryable: true });
    return pool;
  }

  // ---------------------------------------------------------------- keys

  async createKey(request: CreateKeyRequest): Promise<KeyInfo> {
    const { spec, label } = request ?? ({} as CreateKeyRequest);
    const role: KeyRole = request?.role ?? 'signing';
    if (!isKeySpec(spec)) throw new DomainError(ErrorCode.UNSUPPORTED_ALGORITHM, `createKey: unsupported key spec '${String(spec)}'`);
    if (typeof label !== 'string' || label.trim() === '') throw new DomainError(ErrorCode.VALIDATION_ERROR, "createKey: 'label' cannot be empty");
    if (Buffer.byteLength(label, 'utf8') > 128) throw new DomainError(ErrorCode.VALIDATION_ERROR, "createKey: 'label' must be at most 128 bytes");
    if (role !== 'signing' && role !== 'ca') throw new DomainError(ErrorCode.VALIDATION_ERROR, `createKey: unknown role '${String(role)}'`);
    if (request.id !== undefined && (!Buffer.isBuffer(request.id) || request.id.length < 1 || request.id.length > 64)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, "createKey: 'id' must be 1..64 bytes");
    }
    const id = request.id ? Buffer.from(request.id) : randomBytes(16);
    const pool = this.poolFor(role);
    this.requireFeature('createKey', pool, spec);
    const uri = formatPkcs11Uri({ token: pool.tokenLabel, id, object: label });
    try {
      // One key-pair creation at a time per token in this process. SoftHSM2's file object store
      // fails concurrent C_GenerateKeyPair calls now and then with CKR_GENERAL_ERROR (SoftHSMv2
      // issue #573; seen here on six concurrent generations); key creation is rare, so every module
      // gets the same order. It also serialises creations of one id; the twin check below covers
      // other replicas.
      return await this.withLock(`create-key:${pool.tokenLabel}`, () =>
        // Not retried: a key pair may have been created before the fault was reported.
        pool.run('createKey', (session) => this.createKeyOnSession(session, pool, spec, id, label, role, uri), false),
      );
    } catch (err) {
      throw toDomainError('createKey', err);
    }
  }

  private async createKeyOnSession(
    session: PooledSession,
    pool: SessionPool,
    spec: KeySpec,
    id: Buffer,
    label: string,
    role: KeyRole,
    uri: string,
  ): Promise<KeyInfo> {
    // PKCS#11 never overwrites: a second C_GenerateKeyPair with this id would silently create twins.
    if (this.findObjects(session, [{ type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_ID, value: id }], 1).length > 0) {
      throw new DomainError(ErrorCode.ALREADY_EXISTS, `createKey: id ${id.toString('hex')} already exists on token '${pool.tokenLabel}'`);
    }
    let pair: pkcs11js.KeyPair;
    try {
      pair = await this.generateKeyPair(session, keyPairTemplates(spec, id, label, this.copyableSupported));
    } catch (err) {
      if (!this.copyableSupported || toPkcs11Error(err, 'C_GenerateKeyPair')?.ckr !== 'CKR_ATTRIBUTE_TYPE_INVALID') throw err;
      this.copyableSupported = false;
      this.logger.warn('hsm: token does not support CKA_COPYABLE; generating keys without it');
      pair = await this.generateKeyPair(session, keyPairTemplates(spec, id, label, false));
    }
    this.stats.keysGenerated++;
    const twins = this.findObjects(session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_ID, value: id }], 2);
    if (twins.length > 1) {
      // Another replica created the same id between our lookup and our generation: keep theirs.
      this.destroyQuietly(session, pair.privateKey);
      this.destroyQuietly(session, pair.publicKey);
      throw new DomainError(ErrorCode.ALREADY_EXISTS, `createKey: id ${id.toString('hex')} already exists on token '${pool.tokenLabel}'`);
    }
    const publicKeySpki = this.readSpki(session, pair.publicKey, spec);
    this.publicKeys.set(uri, { spec, spki: publicKeySpki });
    return { uri, spec, role, tokenLabel: pool.tokenLabel, id: id.toString('hex'), label, publicKeySpki };
  }

  private generateKeyPair(session: PooledSession, templates: ReturnType<typeof keyPairTemplates>): Promise<pkcs11js.KeyPair> {
    // RSA-4096 generation takes seconds: run it on the libuv pool like signing.
    session.pinned = templates;
    return new Promise((resolve, reject) => {
      this.api.C_GenerateKeyPair(session.handle, templates.mechanism, templates.publicKey, templates.privateKey, (err, keys) => {
        if (err) reject(toPkcs11Error(err, 'C_GenerateKeyPair') ?? err);
        else resolve(keys);
      });
    });
  }

  async getPublicKey(keyUri: string): Promise<Buffer> {
    return (await this.describeKey(keyUri)).publicKeySpki;
  }

  async describeKey(keyUri: string): Promise<KeyInfo> {
    const target = this.target('describeKey', keyUri);
    try {
      return await target.pool.run('describeKey', (session) => {
        const key = this.keyOnSession(session, target, keyUri, 'describeKey');
        const spki = this.publicKeyOnSession(session, target, keyUri, key.spec);
        return {
          uri: keyUri,
          spec: key.spec,
          role: target.pool === this.caPool ? 'ca' : 'signing',
          tokenLabel: target.ref.token,
          id: target.ref.id.toString('hex'),
          label: key.label,
          publicKeySpki: spki,
        } satisfies KeyInfo;
      });
    } catch (err) {
      throw toDomainError('describeKey', err);
    }
  }

  async getSigner(keyUri: string): Promise<DigestSigner> {
    const info = await this.describeKey(keyUri);
    return {
      spec: info.spec,
      publicKeySpki: info.publicKeySpki,
      signDigest: (digest, hash, rsaPadding) => this.sign(keyUri, digest, { hash, rsaPadding }),
    };
  }

  async sign(keyUri: string, digest: Buffer, options: SignOptions): Promise<Buffer> {
    const hash = options?.hash;
    const rsaPadding = options?.rsaPadding;
    // Invalid input never reaches the HSM (API.md): check it all before taking a session.
    if (!isHashAlgorithm(hash)) throw new DomainError(ErrorCode.UNSUPPORTED_ALGORITHM, `sign: unsupported hash algorithm '${String(hash)}'`);
    if (!Buffer.isBuffer(digest) || digest.length !== HASH_LENGTH[hash]) {
      const got = Buffer.isBuffer(digest) ? `${digest.length} bytes` : 'not a Buffer';
      throw new DomainError(ErrorCode.INVALID_DIGEST_LENGTH, `sign: digest is ${got}; ${hash} digests are ${HASH_LENGTH[hash]} bytes`);
    }
    if (rsaPadding !== undefined && rsaPadding !== 'pss' && rsaPadding !== 'pkcs1') {
      throw new DomainError(ErrorCode.UNSUPPORTED_ALGORITHM, `sign: unknown rsaPadding '${String(rsaPadding)}'`);
    }
    const target = this.target('sign', keyUri);
    if (rsaPadding === 'pkcs1') this.requireFeature('sign', target.pool, 'rsa-pkcs1');
    const known = this.keys.get(keyUri);
    if (known && known.epoch === target.pool.epoch) this.checkPadding(known.spec, rsaPadding);
    try {
      return await target.pool.run('sign', (session) => this.signOnSession(session, target, keyUri, digest, hash, rsaPadding, options.gatherTurn === true));
    } catch (err) {
      throw toDomainError('sign', err);
    }
  }

  private checkPadding(spec: KeySpec, rsaPadding: SignOptions['rsaPadding']): void {
    if (rsaPadding !== undefined && KEY_SPEC_INFO[spec].kind === 'EC') {
      throw new DomainError(ErrorCode.UNSUPPORTED_ALGORITHM, `sign: rsaPadding '${rsaPadding}' does not apply to ${spec} keys`);
    }
  }

  private signOnSession(
    session: PooledSession,
    target: KeyTarget,
    keyUri: string,
    digest: Buffer,
    hash: HashAlgorithm,
    rsaPadding: SignOptions['rsaPadding'],
    gatherTurn: boolean,
  ): Promise<Buffer> {
    const key = this.keyOnSession(session, target, keyUri, 'sign');
    this.checkPadding(key.spec, rsaPadding);
    let mechanism: Mechanism;
    let data = digest;
    if (KEY_SPEC_INFO[key.spec].kind === 'EC') {
      mechanism = ecdsaMechanism();
    } else if (rsaPadding === 'pkcs1') {
      mechanism = rsaPkcs1Mechanism();
      data = digestInfo(hash, digest);
    } else {
      mechanism = rsaPssMechanism(hash);
    }
    if (this.signWorkers) return this.signOnWorker(target, key, mechanism, data, keyUri, gatherTurn);
    const api = this.api;
    try {
      // C_SignInit is cheap and synchronous; the signature itself runs on a libuv thread.
      api.C_SignInit(session.handle, mechanism, key.handle);
    } catch (err) {
      throw this.onKeyError(err, 'C_SignInit', keyUri);
    }
    this.stats.signAttempts++;
    session.pinned = data;
    return new Promise<Buffer>((resolve, reject) => {
      api.C_Sign(session.handle, data, session.out, (err, signature) => {
        if (err) {
          this.stats.signFailures++;
          reject(this.onKeyError(err, 'C_Sign', keyUri));
          return;
        }
        this.stats.signOperations++;
        // Copy: session.out is reused by the session's next operation.
        resolve(Buffer.from(signature));
      });
    });
  }

  /**
   * C_SignInit + C_Sign on a signing thread, which finds the key by id and label with its own
   * session; the caller's pool session stays held (and `data` referenced) until it settles.
   */
  private async signOnWorker(target: KeyTarget, key: ResolvedKey, mechanism: Mechanism, data: Buffer, keyUri: string, gatherTurn: boolean): Promise<Buffer> {
    let fn = 'C_SignInit';
    try {
      if (this.faults) {
        this.faults.check('C_SignInit');
        fn = 'C_Sign';
        this.faults.check('C_Sign');
      }
      const pool = this.signWorkers as SignWorkerPool;
      key.signKey ??= pool.keyIndex({ token: target.ref.token, id: target.ref.id, label: target.ref.object });
      const signature = await pool.sign(key.signKey, mechanism, data, gatherTurn);
      this.stats.signAttempts++;
      this.stats.signOperations++;
      return signature;
    } catch (err) {
      const method = (err as { method?: unknown }).method;
      if (typeof method === 'string') fn = method;
      if (fn === 'C_Sign') {
        this.stats.signAttempts++;
        this.stats.signFailures++;
      }
      throw this.onKeyError(err, fn, keyUri);
    }
  }

  async destroyKey(keyUri: string): Promise<void> {
    const target = this.target('destroyKey', keyUri);
    try {
      await target.pool.run('destroyKey', (session) => {
        const template: Template = [{ type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_ID, value: target.ref.id }];
        if (target.ref.object !== undefined) template.push({ type: pkcs11js.CKA_LABEL, value: target.ref.object });
        const handles = [pkcs11js.CKO_PRIVATE_KEY, pkcs11js.CKO_PUBLIC_KEY].flatMap((cls) =>
          this.findObjects(session, [...template, { type: pkcs11js.CKA_CLASS, value: cls }], 16),
        );
        // Other spellings of this URI may be cached too; destroying is rare, so forget everything.
        this.keys.clear();
        this.publicKeys.clear();
        if (handles.length === 0) {
          this.throwIfLoggedOut(session);
          throw notFound('destroyKey', keyUri);
        }
        for (const handle of handles) this.call('C_DestroyObject', () => this.api.C_DestroyObject(session.handle, handle));
        this.stats.keysDestroyed++;
      });
    } catch (err) {
      throw toDomainError('destroyKey', err);
    }
  }

  async listKeys(role?: KeyRole): Promise<KeyListing[]> {
    const pools = role ? [this.poolFor(role)] : this.pools;
    const listings: KeyListing[] = [];
    try {
      for (const pool of pools) {
        listings.push(...(await pool.run('listKeys', (session) => this.listOnSession(session, pool))));
      }
    } catch (err) {
      throw toDomainError('listKeys', err);
    }
    return listings;
  }

  private listOnSession(session: PooledSession, pool: SessionPool): KeyListing[] {
    // Logged out, the token would list public keys only and every pair would look half-missing.
    this.throwIfLoggedOut(session);
    const byId = new Map<string, KeyListing>();
    for (const cls of [pkcs11js.CKO_PRIVATE_KEY, pkcs11js.CKO_PUBLIC_KEY]) {
      const handles = this.findObjects(session, [{ type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_CLASS, value: cls }], Infinity);
      for (const handle of handles) {
        const [idAttr, labelAttr, typeAttr] = this.call('C_GetAttributeValue', () =>
          this.api.C_GetAttributeValue(session.handle, handle, [
            { type: pkcs11js.CKA_ID },
            { type: pkcs11js.CKA_LABEL },
            { type: pkcs11js.CKA_KEY_TYPE },
          ]),
        );
        const id = idAttr.value.toString('hex');
        let listing = byId.get(id);
        if (!listing) {
          const label = labelAttr.value.toString('utf8');
          listing = {
            uri: formatPkcs11Uri({ token: pool.tokenLabel, id: idAttr.value, object: label }),
            role: pool.options.role,
            tokenLabel: pool.tokenLabel,
            id,
            label,
            hasPrivateKey: false,
            hasPublicKey: false,
          };
          byId.set(id, listing);
        }
        if (cls === pkcs11js.CKO_PRIVATE_KEY) listing.hasPrivateKey = true;
        else listing.hasPublicKey = true;
        listing.spec ??= this.specOf(session, handle, readUlong(typeAttr.value));
      }
    }
    return [...byId.values()];
  }

  async reconcile(referencedKeyUris: Iterable<string>): Promise<ReconciliationReport> {
    return reconcileKeyObjects(await this.listKeys(), referencedKeyUris);
  }

  // ---------------------------------------------------------------- sealing

  async seal(recordId: string, plaintext: Buffer): Promise<Buffer> {
    this.checkRecordId('seal', recordId);
    // Empty input is refused too: pkcs11js passes a NULL pointer for it, which modules reject.
    if (!Buffer.isBuffer(plaintext) || plaintext.length === 0 || plaintext.length > MAX_SEALED_PLAINTEXT) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `seal: plaintext must be a Buffer of 1..${MAX_SEALED_PLAINTEXT} bytes`);
    }
    const pool = this.poolFor('signing');
    this.requireFeature('seal', pool, 'sealing');
    try {
      if (!this.sealingKeys?.current) {
        await this.withLock('sealing', () => pool.run('seal', (session) => this.ensureSealingKey(session, pool)));
      }
      return await pool.run('seal', (session) => this.sealOnSession(session, pool, recordId, plaintext));
    } catch (err) {
      throw toDomainError('seal', err);
    }
  }

  private async sealOnSession(session: PooledSession, pool: SessionPool, recordId: string, plaintext: Buffer): Promise<Buffer> {
    const key = this.loadSealingKeys(session, pool).current;
    if (!key) throw new DomainError(ErrorCode.INTERNAL, 'seal: the sealing key disappeared from the token');
    const aad = sealingAad(key.id, recordId);
    const iv = this.call('C_GenerateRandom', () => this.api.C_GenerateRandom(session.handle, Buffer.alloc(GCM_IV_LENGTH)));
    const mechanism = (ivBuffer: Buffer): Mechanism => aesGcmMechanism(ivBuffer, aad, GCM_TAG_LENGTH * 8);
    try {
      this.api.C_EncryptInit(session.handle, mechanism(iv), key.handle);
    } catch (err) {
      const p11 = toPkcs11Error(err, 'C_EncryptInit');
      if (p11?.ckr !== 'CKR_MECHANISM_PARAM_INVALID') throw p11 ?? err;
      // FIPS-mode HSMs refuse a caller's IV and write their own into the (zeroed) IV buffer, which
      // pkcs11js passes by pointer — so it appears in `iv` below.
      iv.fill(0);
      this.call('C_EncryptInit', () => this.api.C_EncryptInit(session.handle, mechanism(iv), key.handle));
    }
    const out = Buffer.alloc(plaintext.length + GCM_TAG_LENGTH + 16);
    const ciphertext = await this.cryptAsync(session, 'C_Encrypt', plaintext, out, [iv, aad]);
    if (iv.every((b) => b === 0)) throw new DomainError(ErrorCode.INTERNAL, 'seal: the token generated no IV');
    this.stats.sealOperations++;
    return encodeSealedEnvelope({ keyId: key.id, iv: Buffer.from(iv), ciphertext });
  }

  async unseal(recordId: string, sealed: Buffer): Promise<Buffer> {
    this.checkRecordId('unseal', recordId);
    let envelope: ReturnType<typeof decodeSealedEnvelope>;
    try {
      envelope = decodeSealedEnvelope(sealed);
    } catch (err) {
      throw new DomainError(ErrorCode.INTERNAL, `unseal: ${(err as Error).message}`);
    }
    const pool = this.poolFor('signing');
    this.requireFeature('unseal', pool, 'sealing');
    const keyId = envelope.keyId.toString('hex');
    try {
      return await pool.run('unseal', async (session) => {
        const key = this.loadSealingKeys(session, pool, keyId).byId.get(keyId);
        if (!key) throw new DomainError(ErrorCode.INTERNAL, `unseal: sealing key ${keyId} is not in token '${pool.tokenLabel}'`);
        const aad = sealingAad(key.id, recordId);
        const iv = Buffer.from(envelope.iv);
        this.call('C_DecryptInit', () =>
          this.api.C_DecryptInit(session.handle, aesGcmMechanism(iv, aad, GCM_TAG_LENGTH * 8), key.handle),
        );
        let plaintext: Buffer;
        try {
          plaintext = await this.cryptAsync(session, 'C_Decrypt', envelope.ciphertext, Buffer.alloc(envelope.ciphertext.length), [iv, aad]);
        } catch (err) {
          const p11 = toPkcs11Error(err, 'C_Decrypt');
          // SoftHSM2 reports a GCM tag mismatch as CKR_GENERAL_ERROR; the standard says ENCRYPTED_DATA_INVALID.
          if (p11 && ['CKR_GENERAL_ERROR', 'CKR_ENCRYPTED_DATA_INVALID', 'CKR_ENCRYPTED_DATA_LEN_RANGE'].includes(p11.ckr)) {
            throw new DomainError(ErrorCode.INTERNAL, 'unseal: authentication failed (the sealed value does not belong to this record or was altered)', {
              ckr: p11.ckr,
            });
          }
          throw err;
        }
        this.stats.unsealOperations++;
        return plaintext;
      });
    } catch (err) {
      throw toDomainError('unseal', err);
    }
  }

  async rotateSealingKey(): Promise<SealingKeyInfo> {
    const pool = this.poolFor('signing');
    this.requireFeature('rotateSealingKey', pool, 'sealing');
    try {
      return await this.withLock('sealing', () =>
        pool.run(
          'rotateSealingKey',
          (session) => {
            const keys = this.loadSealingKeys(session, pool, undefined, true);
            const key = this.createSealingKey(session, pool, (keys.current?.generation ?? 0) + 1);
            return { keyId: key.id.toString('hex'), label: key.label, generation: key.generation };
          },
          false,
        ),
      );
    } catch (err) {
      throw toDomainError('rotateSealingKey', err);
    }
  }

  private ensureSealingKey(session: PooledSession, pool: SessionPool): void {
    const keys = this.loadSealingKeys(session, pool, undefined, true);
    if (!keys.current) this.createSealingKey(session, pool, 1);
  }

  private createSealingKey(session: PooledSession, pool: SessionPool, generation: number): SealingKey {
    const id = randomBytes(16);
    const label = `${this.#options.sealingKeyLabelPrefix}-${generation}`;
    const generate = (withCopyable: boolean): Handle =>
      this.api.C_GenerateKey(session.handle, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, sealingKeyTemplate(id, label, withCopyable));
    let handle: Handle;
    try {
      handle = generate(this.copyableSupported);
    } catch (err) {
      const p11 = toPkcs11Error(err, 'C_GenerateKey');
      if (!this.copyableSupported || p11?.ckr !== 'CKR_ATTRIBUTE_TYPE_INVALID') throw p11 ?? err;
      this.copyableSupported = false;
      handle = this.call('C_GenerateKey', () => generate(false));
    }
    const key: SealingKey = { handle, id, label, generation };
    const keys = this.loadSealingKeys(session, pool);
    keys.byId.set(id.toString('hex'), key);
    keys.current = key;
    this.logger.log(`hsm: sealing key generation ${generation} created (id ${id.toString('hex')})`);
    return key;
  }

  /**
   * Sealing keys of the signing token, cached per pool epoch. Generation n is labelled
   * `<prefix>-<n>`; the highest generation seals, every generation unseals.
   */
  private loadSealingKeys(session: PooledSession, pool: SessionPool, wantedId?: string, reload = false): SealingKeys {
    const cached = this.sealingKeys;
    const fresh = cached && cached.epoch === pool.epoch && Date.now() - cached.loadedAt < SEALING_KEYS_REFRESH_MS;
    if (fresh && !reload && (wantedId === undefined || cached.byId.has(wantedId))) return cached;
    const prefix = `${this.#options.sealingKeyLabelPrefix}-`;
    const keys: SealingKeys = { epoch: pool.epoch, loadedAt: Date.now(), byId: new Map() };
    const handles = this.findObjects(
      session,
      [{ type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES }],
      Infinity,
    );
    for (const handle of handles) {
      const [idAttr, labelAttr] = this.call('C_GetAttributeValue', () =>
        this.api.C_GetAttributeValue(session.handle, handle, [{ type: pkcs11js.CKA_ID }, { type: pkcs11js.CKA_LABEL }]),
      );
      const label = labelAttr.value.toString('utf8');
      if (!label.startsWith(prefix) || !/^\d+$/.test(label.slice(prefix.length))) continue;
      const key: SealingKey = { handle, id: Buffer.from(idAttr.value), label, generation: Number(label.slice(prefix.length)) };
      keys.byId.set(key.id.toString('hex'), key);
      // Two replicas may create the same generation at once: break the tie deterministically.
      const current = keys.current;
      if (!current || key.generation > current.generation || (key.generation === current.generation && key.id.compare(current.id) < 0)) {
        keys.current = key;
      }
    }
    if (handles.length === 0) this.throwIfLoggedOut(session);
    this.sealingKeys = keys;
    return keys;
  }

  private cryptAsync(session: PooledSession, fn: 'C_Encrypt' | 'C_Decrypt', input: Buffer, out: Buffer, alsoPinned: Buffer[]): Promise<Buffer> {
    session.pinned = [input, out, ...alsoPinned];
    return new Promise((resolve, reject) => {
      const done = (err: Error | null, result: Buffer): void => {
        if (err) reject(toPkcs11Error(err, fn) ?? err);
        else resolve(Buffer.from(result));
      };
      if (fn === 'C_Encrypt') this.api.C_Encrypt(session.handle, input, out, done as (e: Error, d: Buffer) => void);
      else this.api.C_Decrypt(session.handle, input, out, done as (e: Error, d: Buffer) => void);
    });
  }

  private checkRecordId(operation: string, recordId: string): void {
    if (typeof recordId !== 'string' || recordId === '' || Buffer.byteLength(recordId, 'utf8') > 1024) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'recordId' must be 1..1024 bytes`);
    }
  }

  // ---------------------------------------------------------------- health

  health(): HsmHealth {
    const tokens = this.pools.map((pool) => {
      const capabilities = this.capabilities.get(pool);
      return { ...pool.health(), ...(capabilities ? { capabilities } : {}) };
    });
    const order: HsmState[] = ['ready', 'recovering', 'down'];
    let state: HsmState = this.closed || tokens.length === 0 ? 'down' : 'ready';
    for (const token of tokens) {
      const tokenState: HsmState = token.state === 'closed' ? 'down' : token.state;
      if (order.indexOf(tokenState) > order.indexOf(state)) state = tokenState;
    }
    const lastRecovery = this.pools
      .map((pool) => pool.lastRecoveryAt)
      .filter((d): d is Date => d !== undefined)
      .sort((a, b) => b.getTime() - a.getTime())[0];
    const lastError = tokens.find((t) => t.state !== 'ready' && t.lastError)?.lastError ?? tokens.find((t) => t.lastError)?.lastError;
    const signThreads = this.signWorkers
      ? { configured: this.#options.signWorkers, running: this.signWorkers.threadCount, ownModule: this.signWorkers.ownModuleThreads }
      : undefined;
    // No signing thread left (one is restarted a second after it dies): signing fails until then.
    if (signThreads && signThreads.running === 0 && state === 'ready') state = 'recovering';
    return {
      state,
      sessions: tokens.reduce((n, t) => n + t.sessions, 0),
      configuredSessions: tokens.reduce((n, t) => n + t.configuredSessions, 0),
      inFlight: tokens.reduce((n, t) => n + t.inFlight, 0),
      waiting: tokens.reduce((n, t) => n + t.waiting, 0),
      recoveries: this.pools.reduce((n, p) => n + p.recoveries, 0),
      ...(lastError ? { lastError } : {}),
      ...(lastRecovery ? { lastRecoveryAt: lastRecovery.toISOString() } : {}),
      tokens,
      ...(signThreads ? { signThreads } : {}),
    };
  }

  counters(): HsmCounters {
    return {
      ...this.stats,
      recoveries: this.pools.reduce((n, p) => n + p.recoveries, 0),
      operationRetries: this.pools.reduce((n, p) => n + p.operationRetries, 0),
    };
  }

  // ---------------------------------------------------------------- helpers

  /** Parses a key URI once and routes it to the pool of its token; NOT_FOUND for other tokens. */
  private target(operation: string, keyUri: string): KeyTarget {
    let target = this.targets.get(keyUri);
    if (target) return target;
    const ref = parsePkcs11Uri(keyUri);
    let pool: SessionPool | undefined;
    if (ref.token === this.#options.signing.tokenLabel) pool = this.signingPool;
    else if (ref.token === this.#options.ca?.tokenLabel) pool = this.caPool;
    if (!pool) {
      if (this.closed || !this.signingPool) throw new DomainError(ErrorCode.HSM_UNAVAILABLE, `${operation}: key store is not open`, { retryable: true });
      throw notFound(operation, keyUri);
    }
    if (this.targets.size >= MAX_CACHE_ENTRIES) this.targets.clear();
    target = { ref, pool };
    this.targets.set(keyUri, target);
    return target;
  }

  /** The private key for `keyUri`, from the cache when its handle is still from the current epoch. */
  private keyOnSession(session: PooledSession, target: KeyTarget, keyUri: string, operation: string): ResolvedKey {
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
      this.api.C_GetAttributeValue(session.handle, handle, [{ type: pkcs11js.CKA_KEY_TYPE }, { type: pkcs11js.CKA_LABEL }]),
    );
    const spec = this.specOf(session, handle, readUlong(typeAttr.value));
    if (!spec) throw new DomainError(ErrorCode.UNSUPPORTED_ALGORITHM, `${operation}: key '${keyUri}' is not one of the supported key specs`);
    const resolved: ResolvedKey = { epoch, handle, spec, label: labelAttr.value.toString('utf8') };
    if (this.keys.size >= MAX_CACHE_ENTRIES) this.keys.clear();
    this.keys.set(keyUri, resolved);
    return resolved;
  }

  private publicKeyOnSession(session: PooledSession, target: KeyTarget, keyUri: string, spec: KeySpec): Buffer {
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

  private readSpki(session: PooledSession, handle: Handle, spec: KeySpec): Buffer {
    if (KEY_SPEC_INFO[spec].kind === 'EC') {
      const [point] = this.call('C_GetAttributeValue', () => this.api.C_GetAttributeValue(session.handle, handle, [{ type: pkcs11js.CKA_EC_POINT }]));
      return spkiFromEcPoint(spec, point.value);
    }
    const [modulus, exponent] = this.call('C_GetAttributeValue', () =>
      this.api.C_GetAttributeValue(session.handle, handle, [{ type: pkcs11js.CKA_MODULUS }, { type: pkcs11js.CKA_PUBLIC_EXPONENT }]),
    );
    return spkiFromRsa(modulus.value, exponent.value);
  }

  private specOf(session: PooledSession, handle: Handle, keyType: number): KeySpec | undefined {
    if (keyType === pkcs11js.CKK_EC) {
      const [params] = this.call('C_GetAttributeValue', () => this.api.C_GetAttributeValue(session.handle, handle, [{ type: pkcs11js.CKA_EC_PARAMS }]));
      return specFromAttributes(keyType, params.value);
    }
    if (keyType === pkcs11js.CKK_RSA) {
      // CKA_MODULUS_BITS exists on public keys only; both halves carry the modulus.
      const [modulus] = this.call('C_GetAttributeValue', () => this.api.C_GetAttributeValue(session.handle, handle, [{ type: pkcs11js.CKA_MODULUS }]));
      return specFromAttributes(keyType, undefined, modulus.value.length * 8);
    }
    return undefined;
  }

  private findObjects(session: PooledSession, template: Template, max: number): Handle[] {
    const api = this.api;
    this.call('C_FindObjectsInit', () => api.C_FindObjectsInit(session.handle, template));
    const found: Handle[] = [];
    try {
      while (found.length < max) {
        const batch = this.call('C_FindObjects', () => api.C_FindObjects(session.handle, Math.min(256, max - found.length)));
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
  private throwIfLoggedOut(session: PooledSession): void {
    let state: number;
    try {
      state = this.api.C_GetSessionInfo(session.handle).state;
    } catch (err) {
      throw toPkcs11Error(err, 'C_GetSessionInfo') ?? err;
    }
    if (state === CKS_RO_PUBLIC_SESSION || state === CKS_RW_PUBLIC_SESSION) throw new Pkcs11Error('CKR_USER_NOT_LOGGED_IN', pkcs11js.CKR_USER_NOT_LOGGED_IN, 'C_GetSessionInfo');
  }

  /** Drops the cached handle when the token says it is stale; the pool then retries the operation. */
  private onKeyError(err: unknown, fn: string, keyUri: string): unknown {
    const p11 = toPkcs11Error(err, fn);
    if (p11 && (p11.ckr === 'CKR_OBJECT_HANDLE_INVALID' || p11.ckr === 'CKR_KEY_HANDLE_INVALID')) this.keys.delete(keyUri);
    return p11 ?? err;
  }

  private destroyQuietly(session: PooledSession, handle: Handle): void {
    try {
      this.api.C_DestroyObject(session.handle, handle);
    } catch (err) {
      this.logger.error(`hsm: could not destroy a duplicate key object: ${toPkcs11Error(err, 'C_DestroyObject')?.ckr ?? String(err)}`);
    }
  }

  /** Runs a synchronous PKCS#11 call, naming the function in the error it throws. */
  private call<T>(fn: string, body: () => T): T {
    try {
      return body();
    } catch (err) {
      throw toPkcs11Error(err, fn) ?? err;
    }
  }

  private async withLock<T>(key: string, body: () => Promise<T>): Promise<T> {
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
