import * as os from 'node:os';
import {
  DEFAULT_RECOVERY,
  derivePoolSize,
  resolveHsmOptions,
  resolveSignThreadModule,
  resolveSignWorkers,
  uvThreadpoolSize,
} from './hsm-options';

/** Signing on libuv's pool, where sessions are bounded by its threads. */
const base = { modulePath: '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 'signet', pin: '1234', signWorkers: 0 };

describe('hsm-options', () => {
  it('reads UV_THREADPOOL_SIZE as libuv does (default 4, at most 1024)', () => {
    expect(uvThreadpoolSize({})).toBe(4);
    expect(uvThreadpoolSize({ UV_THREADPOOL_SIZE: '16' })).toBe(16);
    expect(uvThreadpoolSize({ UV_THREADPOOL_SIZE: 'lots' })).toBe(4);
    expect(uvThreadpoolSize({ UV_THREADPOOL_SIZE: '0' })).toBe(4);
    expect(uvThreadpoolSize({ UV_THREADPOOL_SIZE: '5000' })).toBe(1024);
  });

  it('leaves libuv threads for fs, dns and zlib when deriving the pool size', () => {
    expect([1, 2, 3, 4, 16, 64].map(derivePoolSize)).toEqual([1, 1, 1, 2, 14, 62]);
  });

  it('derives the signing pool from UV_THREADPOOL_SIZE, minus the CA pool when CA keys have their own token', () => {
    expect(resolveHsmOptions(base, { UV_THREADPOOL_SIZE: '16' })).toMatchObject({
      signing: { poolSize: 14 },
      ca: undefined,
      uvThreadpoolSize: 16,
      warnings: [],
    });
    const withCa = resolveHsmOptions(
      { ...base, caTokenLabel: 'signet-ca', caPin: '5678' },
      { UV_THREADPOOL_SIZE: '16' },
    );
    expect(withCa.signing.poolSize).toBe(12);
    expect(withCa.ca).toEqual({ tokenLabel: 'signet-ca', pin: '5678', poolSize: 2 });
  });

  it('shares the signing token when the CA token label is absent or the same', () => {
    expect(resolveHsmOptions({ ...base, caTokenLabel: 'signet' }, { UV_THREADPOOL_SIZE: '8' }).ca).toBeUndefined();
  });

  it('caps sessions at the libuv thread count and warns when UV_THREADPOOL_SIZE is unset', () => {
    const resolved = resolveHsmOptions({ ...base, poolSize: 32 }, {});
    expect(resolved.signing.poolSize).toBe(4);
    expect(resolved.warnings).toEqual([
      expect.stringContaining('UV_THREADPOOL_SIZE is not set'),
      expect.stringContaining('exceed UV_THREADPOOL_SIZE (4)'),
    ]);
    expect(resolveHsmOptions({ ...base, poolSize: 8 }, { UV_THREADPOOL_SIZE: '16' }).signing.poolSize).toBe(8);
  });

  it('gives each signing thread 8 sessions by default, not bounded by the libuv pool', () => {
    expect(resolveHsmOptions({ ...base, signWorkers: 2 }, { UV_THREADPOOL_SIZE: '6' })).toMatchObject({
      signing: { poolSize: 16 },
      signWorkers: 2,
      warnings: [],
    });
    expect(resolveHsmOptions({ ...base, signWorkers: 2 }, { UV_THREADPOOL_SIZE: '64' }).signing.poolSize).toBe(62);
    expect(resolveHsmOptions({ ...base, signWorkers: 2, poolSize: 40 }, { UV_THREADPOOL_SIZE: '4' })).toMatchObject({
      signing: { poolSize: 40 },
      warnings: [],
    });
  });

  it('gives each signing thread its own module instance for SoftHSM2 only, unless told otherwise', () => {
    expect(resolveSignThreadModule(undefined, '/usr/lib/softhsm/libsofthsm2.so')).toBe(true);
    expect(resolveSignThreadModule('auto', '/opt/vendor/libcloudhsm_pkcs11.so')).toBe(false);
    expect(resolveSignThreadModule('shared', '/usr/lib/softhsm/libsofthsm2.so')).toBe(false);
    expect(resolveSignThreadModule('own', '/opt/vendor/libcloudhsm_pkcs11.so')).toBe(true);
    expect(() => resolveSignThreadModule('private' as 'own', '/usr/lib/softhsm/libsofthsm2.so')).toThrow(
      "'signThreadModule' must be 'own', 'shared' or 'auto'",
    );
  });

  it('signs on worker threads for SoftHSM2 and on the libuv pool for other modules unless told otherwise', () => {
    const cpus = Math.min(4, os.availableParallelism());
    expect(resolveSignWorkers(undefined, '/usr/lib/softhsm/libsofthsm2.so')).toBe(cpus);
    expect(resolveSignWorkers('auto', '/opt/vendor/libcloudhsm_pkcs11.so')).toBe(0);
    expect(resolveSignWorkers(0, '/usr/lib/softhsm/libsofthsm2.so')).toBe(0);
    expect(resolveSignWorkers(3, '/opt/vendor/libcloudhsm_pkcs11.so')).toBe(3);
    for (const bad of [-1, 1.5, 65, 'many']) {
      expect(() => resolveSignWorkers(bad as number, '/usr/lib/softhsm/libsofthsm2.so')).toThrow(
        "'signWorkers' must be 'auto' or an integer 0..64",
      );
    }
  });

  it('fills recovery defaults and lets tests shorten them', () => {
    expect(resolveHsmOptions(base, {}).recovery).toEqual(DEFAULT_RECOVERY);
    expect(resolveHsmOptions({ ...base, recovery: { downRetryMs: 10 } }, {}).recovery.downRetryMs).toBe(10);
  });

  it.each([
    [{ modulePath: '' }, "hsm: 'modulePath' cannot be empty"],
    [{ tokenLabel: ' ' }, "hsm: 'tokenLabel' cannot be empty"],
    [{ tokenLabel: 'x'.repeat(33) }, "hsm: 'tokenLabel' must be at most 32 bytes"],
    [{ pin: '' }, "hsm: 'pin' cannot be empty"],
    [{ caTokenLabel: 'ca' }, "hsm: 'caPin' cannot be empty"],
    [{ poolSize: 0 }, "hsm: 'poolSize' must be a positive integer"],
    [{ poolSize: 1.5 }, "hsm: 'poolSize' must be a positive integer"],
    [{ recovery: { maxAttempts: 0 } }, "hsm: 'recovery.maxAttempts' must be at least 1"],
  ])('refuses %j with a message naming the field', (override, message) => {
    expect(() => resolveHsmOptions({ ...base, ...override } as never, {})).toThrow(message);
  });

  it('never puts a PIN in an error message', () => {
    expect(() => resolveHsmOptions({ ...base, pin: 'secret-pin', poolSize: -1 }, {})).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining('secret-pin') }),
    );
  });
});
