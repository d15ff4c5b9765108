import { DomainError, ErrorCode } from '../common/errors';
import { loadConfig } from '../config/config';
import type { ChangeNotifier } from '../database/change-notifier';
import { ActiveKeyCache, ActiveKeyRecord, KEYS_CHANNEL } from './active-key-cache';

/** A stand-in for ChangeNotifier: records the subscription, lets the test deliver notifications. */
class FakeNotifier {
  readonly handlers = new Map<string, Array<(payload: string) => void>>();
  on(channel: string, handler: (payload: string) => void): void {
    this.handlers.set(channel, [...(this.handlers.get(channel) ?? []), handler]);
  }
  deliver(channel: string, payload: string): void {
    for (const handler of this.handlers.get(channel) ?? []) handler(payload);
  }
}

function record(version: number, overrides: Partial<ActiveKeyRecord> = {}): ActiveKeyRecord {
  return {
    keyId: 'k1',
    keyName: 'release',
    keySpec: 'EC-256',
    requires: [],
    version: {
      id: `v${version}`,
      version,
      keyUri: `pkcs11:id=${version}`,
      certificate: Buffer.from([1, 2, 3]),
      chain: [Buffer.from([4]), Buffer.from([5])],
      notBefore: null,
      notAfter: null,
    },
    ...overrides,
  };
}

describe(ActiveKeyCache.name, () => {
  let now: number;
  let loads: number;
  let current: ActiveKeyRecord | null;
  let notifier: FakeNotifier;
  let cache: ActiveKeyCache;
  let gate: Promise<void> | undefined;

  beforeEach(() => {
    now = 1_000_000;
    loads = 0;
    current = record(1);
    gate = undefined;
    notifier = new FakeNotifier();
    cache = new ActiveKeyCache(
      undefined as never,
      notifier as unknown as ChangeNotifier,
      loadConfig({ SIGNET_SIGN_KEY_CACHE_SECONDS: '10' }),
      {
        now: () => now,
        source: async () => {
          loads++;
          const answer = current;
          await gate;
          return answer;
        },
      },
    );
    cache.onModuleInit();
  });

  it('loads once and then serves from memory until the TTL runs out', async () => {
    const first = await cache.get('release');
    expect(first).toMatchObject({
      keyName: 'release',
      version: 1,
      versionId: 'v1',
      certificateChain: ['AQID', 'BA==', 'BQ=='],
      stale: false,
    });
    await cache.get('release');
    now += 9_999;
    await cache.get('release');
    expect(loads).toBe(1);
    now += 2;
    current = record(2);
    expect((await cache.get('release')).version).toBe(2);
    expect(loads).toBe(2);
  });

  it('precomputes the response JSON around the signature', async () => {
    const key = await cache.get('release');
    const json = JSON.parse(`${key.responseHead}SIG${key.responseChain}}`);
    expect(json).toEqual({
      keyName: 'release',
      keyVersion: 1,
      keySpec: 'EC-256',
      signingAlgorithm: 'ECDSA-SHA-256',
      signature: 'SIG',
      certificateChain: ['AQID', 'BA==', 'BQ=='],
    });
  });

  it('shares one load between concurrent first requests', async () => {
    let open!: () => void;
    gate = new Promise((resolve) => (open = resolve));
    const waiting = Promise.all([cache.get('release'), cache.get('release'), cache.get('release')]);
    open();
    const results = await waiting;
    expect(loads).toBe(1);
    expect(new Set(results).size).toBe(1);
  });

  it('drops a key announced on the channel and marks entries already handed out as stale', async () => {
    expect(notifier.handlers.has(KEYS_CHANNEL)).toBe(true);
    const before = await cache.get('release');
    current = record(2);
    notifier.deliver(KEYS_CHANNEL, 'other-key');
    expect(before.stale).toBe(false);
    notifier.deliver(KEYS_CHANNEL, 'release');
    expect(before.stale).toBe(true);
    expect((await cache.get('release')).version).toBe(2);
  });

  it("drops everything on '*' (listener reconnected) and keeps entries short-lived for a while after", async () => {
    const before = await cache.get('release');
    notifier.deliver(KEYS_CHANNEL, '*');
    expect(before.stale).toBe(true);
    await cache.get('release');
    expect(loads).toBe(2);
    now += 1_001; // past the short resync TTL, well within the normal one
    await cache.get('release');
    expect(loads).toBe(3);
    now += 10_000; // resync window over: the normal TTL again
    await cache.get('release');
    now += 5_000;
    await cache.get('release');
    expect(loads).toBe(4);
  });

  it('does not cache a load that overlapped an invalidation, and hands it out as stale', async () => {
    let open!: () => void;
    gate = new Promise((resolve) => (open = resolve));
    const inFlight = cache.get('release');
    cache.invalidate('release');
    open();
    expect((await inFlight).stale).toBe(true);
    gate = undefined;
    await cache.get('release');
    expect(loads).toBe(2);
  });

  it('answers 404 for an unknown key and 409 NO_ACTIVE_VERSION for a key without one, caching neither', async () => {
    current = null;
    await expect(cache.get('nope')).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
    current = record(1, { version: null });
    await expect(cache.get('release')).rejects.toMatchObject({ code: ErrorCode.NO_ACTIVE_VERSION });
    current = record(1);
    expect((await cache.get('release')).version).toBe(1);
    expect(loads).toBe(3);
  });

  it('passes a database failure through without caching it', async () => {
    const failing = new ActiveKeyCache(undefined as never, notifier as unknown as ChangeNotifier, loadConfig({}), {
      source: async () => {
        throw new DomainError(ErrorCode.DATABASE_UNAVAILABLE, 'down');
      },
    });
    await expect(failing.get('release')).rejects.toMatchObject({ code: ErrorCode.DATABASE_UNAVAILABLE });
    await expect(failing.get('release')).rejects.toMatchObject({ code: ErrorCode.DATABASE_UNAVAILABLE });
  });
});
