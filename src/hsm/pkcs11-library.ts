import { realpathSync } from 'node:fs';
import * as pkcs11js from 'pkcs11js';
import type { HsmLogger } from './hsm-logger';
import { silentLogger } from './hsm-logger';
import { type Handle, PKCS11_METHODS, type Pkcs11Api, TOKEN_FILE_METHODS, trimPkcs11Label } from './pkcs11-api';
import { toPkcs11Error } from './pkcs11-errors';
import { shareTokenLockWith, withModuleInstanceLock } from './module-instance-lock';
import { softHsmTokenLockFile } from './softhsm-token-lock';

/** Something holding sessions that must be drained before the library is finalised. */
export interface LibraryClient {
  prepareForLibraryReset(): Promise<void>;
}

export interface TokenSlot {
  slot: Handle;
  label: string;
  serialNumber: string;
}

/**
 * A loaded PKCS#11 module, shared by everything in the process that uses the same module file.
 *
 * C_Initialize is process-global per module (a second call returns CKR_CRYPTOKI_ALREADY_INITIALIZED),
 * so all stores go through one instance: reference-counted acquire/release, one C_Initialize with
 * CKF_OS_LOCKING_OK (concurrent calls from libuv threads crash SoftHSM2 without it), and one
 * coordinated re-initialisation that first drains every client.
 *
 * The registry lives on `globalThis`: process-wide in Node, but per test file under jest (each test
 * file has its own global). Jest runs test files of one worker one after another, so a test file
 * that closes its stores leaves the library finalised for the next one; a file that leaks a store
 * leaves it initialised, and the next file joins that initialisation (see `locateToken`).
 * The native addon itself is loaded once per process either way (jest requires `.node` files
 * through Node's own require cache).
 */
export class Pkcs11Library {
  private static readonly registryKey = Symbol.for('signet.hsm.pkcs11-libraries');

  private readonly binding: pkcs11js.PKCS11;
  /** The binding with every token-level call made under the process-wide module lock. */
  private readonly tokenOrderedApi: Pkcs11Api;
  private references = 0;
  private initialized = false;
  /** False when C_Initialize found the module already initialised by someone else in this process. */
  private ownsInitialization = false;
  private generationValue = 0;
  private resetting?: Promise<void>;
  private readonly clients = new Set<LibraryClient>();

  private constructor(
    readonly modulePath: string,
    private readonly logger: HsmLogger,
  ) {
    this.binding = new pkcs11js.PKCS11();
    try {
      this.binding.load(modulePath);
    } catch (err) {
      throw new Error(
        `hsm: cannot load PKCS#11 module ${modulePath}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    this.tokenOrderedApi = tokenOrdered(this.binding);
  }

  private static registry(): Map<string, Pkcs11Library> {
    const holder = globalThis as unknown as Record<symbol, Map<string, Pkcs11Library> | undefined>;
    return (holder[Pkcs11Library.registryKey] ??= new Map());
  }

  /** Loads (once) and initialises the module; pair every call with `release()`. */
  static acquire(modulePath: string, logger: HsmLogger = silentLogger): Pkcs11Library {
    let resolved: string;
    try {
      resolved = realpathSync(modulePath);
    } catch {
      throw new Error(`hsm: PKCS#11 module not found: ${modulePath}`);
    }
    const registry = Pkcs11Library.registry();
    let library = registry.get(resolved);
    if (!library) {
      library = new Pkcs11Library(resolved, logger);
      registry.set(resolved, library);
    }
    library.references++;
    try {
      library.ensureInitialized();
    } catch (err) {
      library.release();
      throw err;
    }
    return library;
  }

  /** Users of the module in this process (this realm under jest); 0 when it is not initialised by us. */
  static referenceCount(modulePath: string): number {
    try {
      return Pkcs11Library.registry().get(realpathSync(modulePath))?.references ?? 0;
    } catch {
      return 0;
    }
  }

  /**
   * Finalises the module when the last user releases it. The shared object stays mapped: unloading
   * a module whose threads or atexit handlers may still run is a classic source of crashes.
   */
  release(): void {
    if (this.references === 0) return;
    this.references--;
    if (this.references > 0) return;
    if (this.initialized && this.ownsInitialization) {
      try {
        this.tokenOrderedApi.C_Finalize();
      } catch {
        // already finalised by someone else: nothing left to release
      }
    }
    this.initialized = false;
    this.ownsInitialization = false;
  }

  /** The module's functions; token-level ones wait for the process-wide module lock (module-instance-lock.ts). */
  get api(): Pkcs11Api {
    return this.tokenOrderedApi;
  }

  /** Incremented by every re-initialisation: sessions and object handles from an older generation are gone. */
  get generation(): number {
    return this.generationValue;
  }

  get referenceCount(): number {
    return this.references;
  }

  register(client: LibraryClient): () => void {
    this.clients.add(client);
    return () => this.clients.delete(client);
  }

  /** Resolves when no re-initialisation is in progress. */
  whenStable(): Promise<void> {
    return this.resetting ?? Promise.resolve();
  }

  /**
   * Finalises and initialises the module again, after every client has drained its in-flight
   * operations (finalising under a running C_Sign is undefined behaviour). Single-flight: callers
   * that observed the same generation share one re-initialisation.
   */
  reinitialize(observedGeneration: number): Promise<void> {
    if (this.resetting) return this.resetting;
    if (observedGeneration !== this.generationValue) return Promise.resolve();
    this.resetting = (async () => {
      await Promise.all([...this.clients].map((client) => client.prepareForLibraryReset()));
      try {
        this.tokenOrderedApi.C_Finalize();
      } catch {
        // CKR_CRYPTOKI_NOT_INITIALIZED: someone finalised it for us
      }
      this.initialized = false;
      this.ensureInitialized();
      this.generationValue++;
      this.logger.warn(`hsm: PKCS#11 module re-initialised (generation ${this.generationValue})`);
    })().finally(() => {
      this.resetting = undefined;
    });
    return this.resetting;
  }

  /**
   * Finds the slot of the token labelled `label`. If it is absent and the module was initialised by
   * somebody else in this process with nobody of ours holding sessions (under jest: a test file that
   * leaked a store, with another SOFTHSM2_CONF), initialise it again once so this process's
   * configuration is read.
   */
  locateToken(label: string, api: Pkcs11Api = this.tokenOrderedApi): TokenSlot | undefined {
    // The whole scan under the process-wide module lock (see module-instance-lock.ts).
    const find = (): TokenSlot | undefined => withModuleInstanceLock(() => findUnlocked());
    const findUnlocked = (): TokenSlot | undefined => {
      for (const slot of api.C_GetSlotList(true)) {
        const info = readTokenInfo(api, slot);
        if (!info) continue;
        if ((info.flags & pkcs11js.CKF_TOKEN_INITIALIZED) !== 0 && trimPkcs11Label(info.label) === label) {
          return { slot, label, serialNumber: trimPkcs11Label(info.serialNumber) };
        }
      }
      return undefined;
    };
    const found = find();
    if (found || this.ownsInitialization || this.clients.size > 0 || this.resetting) return found;
    this.logger.warn(
      `hsm: token '${label}' not visible in a module initialised elsewhere in this process; re-initialising it`,
    );
    try {
      this.tokenOrderedApi.C_Finalize();
    } catch {
      // not initialised after all
    }
    this.initialized = false;
    this.ensureInitialized();
    this.generationValue++;
    return find();
  }

  private ensureInitialized(): void {
    if (this.initialized) return;
    // SoftHSM2 reads its token files in C_Initialize: from here on, token-level calls are ordered
    // with every other process using the same token directory.
    shareTokenLockWith(softHsmTokenLockFile(this.modulePath));
    try {
      this.tokenOrderedApi.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
      this.ownsInitialization = true;
    } catch (err) {
      const p11 = toPkcs11Error(err, 'C_Initialize');
      if (p11?.ckr !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw p11 ?? err;
      // Someone else in this process initialised it (hopefully with OS locking): share it, never finalise it.
      this.ownsInitialization = false;
    }
    this.initialized = true;
  }
}

/**
 * The binding's functions, bound to it; the token-level ones (TOKEN_FILE_METHODS) run under the
 * process-wide module lock. Signing and object calls are the binding's own functions, bound: the
 * signing path pays nothing for the lock.
 */
function tokenOrdered(binding: pkcs11js.PKCS11): Pkcs11Api {
  const api: Record<string, unknown> = {};
  for (const method of PKCS11_METHODS) {
    const real = (binding[method] as (...args: unknown[]) => unknown).bind(binding);
    api[method] = TOKEN_FILE_METHODS.has(method)
      ? (...args: unknown[]) => withModuleInstanceLock(() => real(...args))
      : real;
  }
  return api as unknown as Pkcs11Api;
}

/**
 * A slot's token info, or undefined when SoftHSM2 answers CKR_GENERAL_ERROR: it does so for a
 * token file it read while another process was rewriting it (a login rewrites it; POSIX locks do not
 * order several module instances of one process, so with per-thread instances such reads happen).
 * The token then counts as not seen, and every caller handles that: the key store re-initialises
 * the module and looks again, the dev-token setup checks the token directory, recovery escalates to
 * a re-initialisation. (A file torn elsewhere makes the token vanish from the slot list instead.)
 */
function readTokenInfo(api: Pkcs11Api, slot: Handle): ReturnType<Pkcs11Api['C_GetTokenInfo']> | undefined {
  try {
    return api.C_GetTokenInfo(slot);
  } catch (err) {
    if (toPkcs11Error(err, 'C_GetTokenInfo')?.ckr === 'CKR_GENERAL_ERROR') return undefined;
    throw err;
  }
}
