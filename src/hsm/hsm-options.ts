import * as os from 'node:os';
import * as path from 'node:path';
/**
 * Options of the hsm module. The foundation's config module builds this plain object from the
 * environment (SIGNET_PKCS11_MODULE, …); the hsm module validates it once at boot.
 */
export interface HsmOptions {
  /** Path of the PKCS#11 module (.so / .dylib). */
  modulePath: string;
  /** Token holding signing keys and the sealing key. */
  tokenLabel: string;
  pin: string;
  /** Token for CA keys; the signing token when absent. */
  caTokenLabel?: string;
  /** Required when caTokenLabel names another token. */
  caPin?: string;
  /** Sessions on the signing token; derived from UV_THREADPOOL_SIZE when absent. */
  poolSize?: number;
  /** Sessions on a separate CA token (default 2). */
  caPoolSize?: number;
  /** How long a request may wait for a session before failing with HSM_UNAVAILABLE (default 30 s). */
  acquireTimeoutMs?: number;
  recovery?: Partial<RecoveryOptions>;
  /** CKA_LABEL prefix of sealing keys; generation n is `<prefix>-<n>` (default `signet-seal`). */
  sealingKeyLabelPrefix?: string;
  /**
   * Where signatures are computed. A number n ≥ 1: n worker threads doing synchronous
   * C_SignInit + C_Sign (best for a local software token, where signing is CPU work). 0: the async
   * C_Sign of pkcs11js on libuv's thread pool (best for network and hardware HSMs, where latency
   * dominates and many operations should be in flight). 'auto' (default): worker threads, one per
   * CPU up to 4, for SoftHSM2; libuv otherwise.
   */
  signWorkers?: number | 'auto';
  /**
   * Whether each signing thread maps its own instance of the module ('own') or shares the
   * process's ('shared'). One SoftHSM2 instance serialises its threads on process-wide mutexes, so
   * 'auto' (default) is 'own' for SoftHSM2 and 'shared' for anything else: vendor modules expect
   * one instance per process. Ignored when signWorkers is 0.
   */
  signThreadModule?: 'own' | 'shared' | 'auto';
  /**
   * Directory where each signing thread writes its private copy of the module, deleted once
   * mapped (default: the OS temporary directory). It must allow mapping executables: on a noexec
   * /tmp, name another one, or the threads fall back to sharing the process's instance (logged).
   */
  moduleCopyDir?: string;
}

export interface RecoveryOptions {
  /** Attempts per recovery before the token is reported down. */
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** While down, a new recovery is attempted this often. */
  downRetryMs: number;
  /** Times one request is re-run after a successful recovery. */
  maxOperationRetries: number;
  /**
   * How often each ready pool checks one idle session (C_GetSessionInfo; 0 = never). A session
   * closed, logged out or finalised behind the store's back then starts a recovery at once, not
   * when a request meets it — with signing on threads of their own, the pools sit idle for long.
   */
  probeIntervalMs: number;
}

export interface ResolvedHsmOptions {
  modulePath: string;
  signing: { tokenLabel: string; pin: string; poolSize: number };
  /** Undefined when CA keys share the signing token. */
  ca?: { tokenLabel: string; pin: string; poolSize: number };
  acquireTimeoutMs: number;
  recovery: RecoveryOptions;
  sealingKeyLabelPrefix: string;
  /** UV_THREADPOOL_SIZE as libuv will use it. */
  uvThreadpoolSize: number;
  /** Signing worker threads; 0 = async C_Sign on libuv's pool. */
  signWorkers: number;
  /** Each signing thread on its own instance of the module. */
  signThreadsOwnModule: boolean;
  moduleCopyDir?: string;
  warnings: string[];
}

export const DEFAULT_RECOVERY: RecoveryOptions = {
  maxAttempts: 5,
  initialBackoffMs: 50,
  maxBackoffMs: 2000,
  downRetryMs: 5000,
  maxOperationRetries: 2,
  probeIntervalMs: 10_000,
};

/** libuv's default and ceiling for UV_THREADPOOL_SIZE. */
const UV_DEFAULT_THREADS = 4;
const UV_MAX_THREADS = 1024;
const DEFAULT_CA_POOL_SIZE = 2;

/**
 * libuv reads UV_THREADPOOL_SIZE once, when the pool first starts; setting it from code is too
 * late or racy, so the start script sets it and we only read it.
 */
export function uvThreadpoolSize(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.UV_THREADPOOL_SIZE;
  const parsed = raw === undefined ? NaN : Number.parseInt(raw, 10);
  if (!Number.isFinite(parsed) || parsed < 1) return UV_DEFAULT_THREADS;
  return Math.min(parsed, UV_MAX_THREADS);
}

/**
 * Sessions the HSM pools may keep busy at once. Every in-flight C_Sign occupies one libuv thread,
 * so the pools together stay below the thread count, leaving two threads (one when the pool is
 * tiny) for fs, dns and zlib work.
 */
export function derivePoolSize(uvThreads: number): number {
  return Math.max(1, uvThreads - Math.min(2, uvThreads - 1));
}

function requireText(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw new Error(`hsm: '${field}' cannot be empty`);
  return value;
}

function requireLabel(field: string, value: unknown): string {
  const label = requireText(field, value);
  if (Buffer.byteLength(label, 'utf8') > 32) throw new Error(`hsm: '${field}' must be at most 32 bytes`);
  return label;
}

const MAX_AUTO_SIGN_WORKERS = 4;
const SESSIONS_PER_SIGN_WORKER = 8;

/** 'auto': worker threads for SoftHSM2 (CPU-bound, local), libuv's pool for anything else. */
/** Whether a module file is SoftHSM2's: the one module whose defaults (signing threads, token lock) differ. */
export function isSoftHsmModule(modulePath: string): boolean {
  return /softhsm/i.test(path.basename(modulePath));
}

export function resolveSignWorkers(value: HsmOptions['signWorkers'], modulePath: string): number {
  if (value === undefined || value === 'auto') {
    return isSoftHsmModule(modulePath) ? Math.min(MAX_AUTO_SIGN_WORKERS, Math.max(1, os.availableParallelism())) : 0;
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 64)
    throw new Error("hsm: 'signWorkers' must be 'auto' or an integer 0..64");
  return value;
}

/** 'auto': an own module instance per signing thread for SoftHSM2 only. */
export function resolveSignThreadModule(value: HsmOptions['signThreadModule'], modulePath: string): boolean {
  if (value === undefined || value === 'auto') return isSoftHsmModule(modulePath);
  if (value !== 'own' && value !== 'shared')
    throw new Error("hsm: 'signThreadModule' must be 'own', 'shared' or 'auto'");
  return value === 'own';
}

function optionalPositiveInt(field: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1)
    throw new Error(`hsm: '${field}' must be a positive integer`);
  return value;
}

/** Validates once at boot; messages name the field, never a PIN's value. */
export function resolveHsmOptions(options: HsmOptions, env: NodeJS.ProcessEnv = process.env): ResolvedHsmOptions {
  const warnings: string[] = [];
  const modulePath = requireText('modulePath', options.modulePath);
  const tokenLabel = requireLabel('tokenLabel', options.tokenLabel);
  const pin = requireText('pin', options.pin);
  const uvThreads = uvThreadpoolSize(env);
  if (env.UV_THREADPOOL_SIZE === undefined) {
    warnings.push(
      `UV_THREADPOOL_SIZE is not set: libuv uses ${UV_DEFAULT_THREADS} threads; start Signet through its start script`,
    );
  }

  let ca: ResolvedHsmOptions['ca'];
  if (options.caTokenLabel !== undefined && options.caTokenLabel !== tokenLabel) {
    const caTokenLabel = requireLabel('caTokenLabel', options.caTokenLabel);
    const caPin = requireText('caPin', options.caPin);
    ca = {
      tokenLabel: caTokenLabel,
      pin: caPin,
      poolSize: optionalPositiveInt('caPoolSize', options.caPoolSize) ?? DEFAULT_CA_POOL_SIZE,
    };
  }

  const signWorkers = resolveSignWorkers(options.signWorkers, modulePath);
  const budget = derivePoolSize(uvThreads);
  // On signing threads a session is only a handle while its job waits in a batch: several per thread.
  const derived = Math.max(1, budget - (ca?.poolSize ?? 0), signWorkers * SESSIONS_PER_SIGN_WORKER);
  let poolSize = optionalPositiveInt('poolSize', options.poolSize) ?? derived;
  const total = poolSize + (ca?.poolSize ?? 0);
  if (signWorkers === 0 && total > uvThreads) {
    // More sessions than threads buys no parallelism: the extra C_Sign calls queue inside libuv while holding a session.
    warnings.push(`HSM sessions (${total}) exceed UV_THREADPOOL_SIZE (${uvThreads}); signing pool capped`);
    poolSize = Math.max(1, uvThreads - (ca?.poolSize ?? 0));
  }

  const recovery = { ...DEFAULT_RECOVERY, ...options.recovery };
  for (const [field, value] of Object.entries(recovery)) {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0)
      throw new Error(`hsm: 'recovery.${field}' must be a non-negative number`);
  }
  if (recovery.maxAttempts < 1) throw new Error("hsm: 'recovery.maxAttempts' must be at least 1");

  return {
    modulePath,
    signing: { tokenLabel, pin, poolSize },
    ca,
    acquireTimeoutMs: optionalPositiveInt('acquireTimeoutMs', options.acquireTimeoutMs) ?? 30_000,
    recovery,
    sealingKeyLabelPrefix: options.sealingKeyLabelPrefix ?? 'signet-seal',
    uvThreadpoolSize: uvThreads,
    signWorkers,
    signThreadsOwnModule: resolveSignThreadModule(options.signThreadModule, modulePath),
    moduleCopyDir:
      options.moduleCopyDir === undefined ? undefined : requireText('moduleCopyDir', options.moduleCopyDir),
    warnings,
  };
}
