import { Inject, Injectable, OnModuleInit, Optional } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { keyNotFound } from '../auth/principal';
import { DomainError, ErrorCode } from '../common/errors';
import { isKeySpec, KEY_SPEC_INFO, KeySpec, KeySpecInfo } from '../pki/key-spec';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { ChangeNotifier } from '../database/change-notifier';
import { ActiveKeyRecord, SigningKeysRepository } from './signing-keys.repository';

export type { ActiveKeyRecord } from './signing-keys.repository';

/**
 * LISTEN/NOTIFY channel announcing that a signing key's versions changed (activated, retired,
 * revoked, rotated). Payload: the key name, or '*' for every key. Announce it inside the
 * transaction that makes the change (`ActiveKeyCache.announce(manager, keyName)`, or
 * `ChangeNotifier.notify(manager, KEYS_CHANNEL, keyName)`): PostgreSQL delivers it on commit to
 * every replica, this one included.
 */
export const KEYS_CHANNEL = 'signet_keys';

/** A key's single active version, with everything a signature response needs precomputed. */
export interface ActiveKey {
  readonly keyId: string;
  readonly keyName: string;
  readonly spec: KeySpec;
  readonly info: KeySpecInfo;
  /** Keys that must have signed an artifact before this one may (promotion). */
  readonly requires: readonly string[];
  readonly versionId: string;
  readonly version: number;
  readonly keyUri: string;
  readonly notBeforeMs: number | null;
  readonly notAfterMs: number | null;
  /** Base64 DER, leaf first, root last. */
  readonly certificateChain: readonly string[];
  /** Response JSON up to the signature's value: `{"keyName":…,"signature":"`. */
  readonly responseHead: string;
  /** Response JSON after the signature's value: `","certificateChain":[…]` (no closing brace). */
  readonly responseChain: string;
  /**
   * Set when the cache learned of a change to this key after the entry was loaded: a signature
   * made with it is re-checked against the database before it is returned.
   */
  stale: boolean;
}

export type ActiveKeySource = (keyName: string) => Promise<ActiveKeyRecord | null>;

/** Optional injection token for ActiveKeyCacheOptions (tests). */
export const ACTIVE_KEY_CACHE_OPTIONS = Symbol('ACTIVE_KEY_CACHE_OPTIONS');

export interface ActiveKeyCacheOptions {
  /** Replaces the database query (unit tests). */
  source?: ActiveKeySource;
  now?: () => number;
}

/** After the change listener lost its connection, entries live this short a time (notifications may be missed). */
const RESYNC_WINDOW_MS = 5_000;
const RESYNC_TTL_MS = 1_000;

/**
 * Which version of a key signs, per key name, from memory: the signing hot path never queries for
 * it. Entries are dropped when a change is announced on KEYS_CHANNEL (any replica), when the
 * change listener reconnects ('*'), and in any case after SIGNET_SIGN_KEY_CACHE_SECONDS.
 *
 * Contract for code that changes versions (rotation, revocation, retirement):
 * 1. inside the transaction: `await activeKeyCache.announce(manager, keyName)`;
 * 2. after commit (optional; the notification arrives anyway): `activeKeyCache.invalidate(keyName)`.
 * A signature made with an entry invalidated meanwhile is re-checked before it is returned
 * (SigningService), so a retired or revoked version never returns a signature after the change
 * reached this replica.
 */
@Injectable()
export class ActiveKeyCache implements OnModuleInit {
  private readonly entries = new Map<string, ActiveKey & { expiresAt: number }>();
  private readonly loading = new Map<string, Promise<ActiveKey>>();
  /** Bumped by every invalidation: a load that overlapped one is not cached. */
  private epoch = 0;
  private resyncUntil = 0;
  private readonly ttlMs: number;
  private readonly source: ActiveKeySource;
  private readonly now: () => number;

  constructor(
    private readonly keys: SigningKeysRepository,
    private readonly notifier: ChangeNotifier,
    @Inject(SIGNET_CONFIG) config: SignetConfig,
    @Optional() @Inject(ACTIVE_KEY_CACHE_OPTIONS) options?: ActiveKeyCacheOptions,
  ) {
    this.ttlMs = config.signing.keyCacheSeconds * 1000;
    this.source = options?.source ?? ((name) => this.keys.activeKey(name));
    this.now = options?.now ?? Date.now;
  }

  onModuleInit(): void {
    this.notifier.on(KEYS_CHANNEL, (payload) => {
      if (payload === '*') {
        this.resyncUntil = this.now() + RESYNC_WINDOW_MS;
        this.invalidateAll();
      } else {
        this.invalidate(payload);
      }
    });
  }

  /** The active version of `keyName`: 404 NOT_FOUND for no such key, 409 NO_ACTIVE_VERSION for none. */
  get(keyName: string): Promise<ActiveKey> {
    const entry = this.entries.get(keyName);
    if (entry !== undefined && entry.expiresAt > this.now()) return Promise.resolve(entry);
    return this.load(keyName);
  }

  /** get(keyName) when it would answer from the cache at once: the cached entry, else undefined. */
  peek(keyName: string): ActiveKey | undefined {
    const entry = this.entries.get(keyName);
    return entry !== undefined && entry.expiresAt > this.now() ? entry : undefined;
  }

  /** Forgets `keyName` on this replica at once (e.g. right after committing a change to it). */
  invalidate(keyName: string): void {
    this.epoch++;
    const entry = this.entries.get(keyName);
    if (entry) entry.stale = true;
    this.entries.delete(keyName);
    this.loading.delete(keyName);
  }

  invalidateAll(): void {
    this.epoch++;
    for (const entry of this.entries.values()) entry.stale = true;
    this.entries.clear();
    this.loading.clear();
  }

  /** Announces a change to `keyName` to every replica; call inside the transaction making it. */
  announce(manager: EntityManager, keyName: string): Promise<void> {
    return this.notifier.notify(manager, KEYS_CHANNEL, keyName);
  }

  private load(keyName: string): Promise<ActiveKey> {
    const pending = this.loading.get(keyName);
    if (pending) return pending;
    const epoch = this.epoch;
    const loaded = this.source(keyName).then(
      (record) => {
        if (this.loading.get(keyName) === loaded) this.loading.delete(keyName);
        const now = this.now();
        const entry = {
          ...toActiveKey(keyName, record),
          expiresAt: now + (now < this.resyncUntil ? Math.min(this.ttlMs, RESYNC_TTL_MS) : this.ttlMs),
        };
        if (this.epoch === epoch) this.entries.set(keyName, entry);
        else entry.stale = true;
        return entry;
      },
      (error: unknown) => {
        if (this.loading.get(keyName) === loaded) this.loading.delete(keyName);
        throw error;
      },
    );
    this.loading.set(keyName, loaded);
    return loaded;
  }
}

function toActiveKey(keyName: string, record: ActiveKeyRecord | null): ActiveKey {
  if (!record) throw keyNotFound(keyName);
  const version = record.version;
  if (!version)
    throw new DomainError(ErrorCode.NO_ACTIVE_VERSION, `key "${keyName}" has no active version`, { key: keyName });
  if (!version.certificate) {
    throw new DomainError(
      ErrorCode.NO_ACTIVE_VERSION,
      `key "${keyName}" version ${version.version} has no certificate`,
      { key: keyName, version: version.version },
    );
  }
  if (!isKeySpec(record.keySpec)) throw new Error(`key ${keyName} has an unknown key spec ${record.keySpec}`);
  const info = KEY_SPEC_INFO[record.keySpec];
  const certificateChain = [version.certificate, ...version.chain].map((der) => der.toString('base64'));
  return {
    keyId: record.keyId,
    keyName: record.keyName,
    spec: record.keySpec,
    info,
    requires: Object.freeze([...record.requires]),
    versionId: version.id,
    version: version.version,
    keyUri: version.keyUri,
    notBeforeMs: version.notBefore?.getTime() ?? null,
    notAfterMs: version.notAfter?.getTime() ?? null,
    certificateChain: Object.freeze(certificateChain),
    responseHead:
      `{"keyName":${JSON.stringify(record.keyName)},"keyVersion":${version.version},"keySpec":${JSON.stringify(record.keySpec)},` +
      `"signingAlgorithm":${JSON.stringify(info.signingAlgorithm)},"signature":"`,
    responseChain: `","certificateChain":${JSON.stringify(certificateChain)}`,
    stale: false,
  };
}
