import { ckrCode } from './pkcs11-errors';
import type { Pkcs11Api, Pkcs11Method } from './pkcs11-api';

export interface ArmOptions {
  /** How many matching calls fail (default 1; Infinity until `disarm`). */
  count?: number;
  /** Functions that fail; default: every C_ function except initialise/finalise and session cleanup. */
  methods?: readonly Pkcs11Method[];
}

/** Replaces one PKCS#11 function: receives the real function (bound) and the call's arguments. */
export type Pkcs11Interceptor = (real: (...args: unknown[]) => unknown, args: unknown[]) => unknown;

interface ArmedFault {
  ckr: string;
  code: number;
  remaining: number;
  methods?: ReadonlySet<string>;
}

/** Cleanup paths stay unaffected by default, so a count means "n failing operations". */
const NOT_FAULTED_BY_DEFAULT = new Set([
  'C_Initialize',
  'C_Finalize',
  'C_GetInfo',
  'C_CloseSession',
  'C_CloseAllSessions',
]);

/**
 * Test seam in front of pkcs11js: makes named PKCS#11 functions fail with a chosen return code,
 * or replaces them. SoftHSM2 cannot produce CKR_DEVICE_REMOVED or CKR_TOKEN_NOT_PRESENT on demand,
 * so tests arm them here. Production never constructs one: the store then calls pkcs11js directly.
 */
export class Pkcs11FaultInjector {
  private faults: ArmedFault[] = [];
  private readonly interceptors = new Map<string, Pkcs11Interceptor>();
  private readonly fired = new Map<string, number>();

  arm(ckr: string, options: ArmOptions = {}): void {
    const code = ckrCode(ckr);
    if (code === undefined) throw new Error(`unknown PKCS#11 return code ${ckr}`);
    this.faults.push({
      ckr,
      code,
      remaining: options.count ?? 1,
      methods: options.methods ? new Set(options.methods) : undefined,
    });
  }

  disarm(): void {
    this.faults = [];
  }

  /** Replaces `method` until the returned function is called. */
  intercept(method: Pkcs11Method, interceptor: Pkcs11Interceptor): () => void {
    this.interceptors.set(method, interceptor);
    return () => {
      if (this.interceptors.get(method) === interceptor) this.interceptors.delete(method);
    };
  }

  /** How often a code was injected. */
  firedCount(ckr: string): number {
    return this.fired.get(ckr) ?? 0;
  }

  get armed(): boolean {
    return this.faults.some((f) => f.remaining > 0);
  }

  /** A Pkcs11Api that consults the armed faults before calling the current real binding. */
  wrap(current: () => Pkcs11Api): Pkcs11Api {
    return new Proxy({} as Pkcs11Api, {
      get: (_target, property) => {
        const real = current() as unknown as Record<string | symbol, unknown>;
        const value = real[property];
        if (typeof value !== 'function' || typeof property !== 'string' || !property.startsWith('C_')) return value;
        const bound = (value as (...args: unknown[]) => unknown).bind(real);
        return (...args: unknown[]) => this.invoke(property, bound, args);
      },
    });
  }

  /**
   * For calls made off the main thread (the signing worker threads): throws the armed fault for
   * `method`, as the wrapped binding would. Interceptors do not apply there.
   */
  check(method: Pkcs11Method): void {
    const error = this.take(method);
    if (error) throw error;
  }

  private take(method: string): Error | undefined {
    const fault = this.faults.find(
      (f) => f.remaining > 0 && (f.methods ? f.methods.has(method) : !NOT_FAULTED_BY_DEFAULT.has(method)),
    );
    if (!fault) return undefined;
    fault.remaining--;
    this.fired.set(fault.ckr, (this.fired.get(fault.ckr) ?? 0) + 1);
    // Same shape as pkcs11js's errors: the CKR_ name as message, the numeric code alongside.
    return Object.assign(new Error(fault.ckr), { code: fault.code, method });
  }

  private invoke(method: string, real: (...args: unknown[]) => unknown, args: unknown[]): unknown {
    const error = this.take(method);
    if (error) {
      const callback = args[args.length - 1];
      if (typeof callback === 'function') {
        setImmediate(() => (callback as (e: Error | null, r: unknown) => void)(error, null));
        return undefined;
      }
      throw error;
    }
    const interceptor = this.interceptors.get(method);
    return interceptor ? interceptor(real, args) : real(...args);
  }
}
