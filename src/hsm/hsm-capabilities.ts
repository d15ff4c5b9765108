import * as pkcs11js from 'pkcs11js';
import { KEY_SPECS, KEY_SPEC_INFO, type KeySpec } from '../pki/key-spec';
import type { Handle, Pkcs11Api } from './pkcs11-api';

/**
 * What a token can do for Signet, read once at start from its mechanism list (C_GetMechanismList,
 * C_GetMechanismInfo): modules differ — openCryptoki's software token has RSA but no EC and no
 * AES-GCM — and a request the token cannot serve must fail with a clear error naming the missing
 * mechanism, not a CKR_MECHANISM_INVALID from deep in a signature.
 */
export interface HsmCapabilities {
  /** Key specs the token can generate and sign with. */
  keySpecs: KeySpec[];
  /** Each feature the token lacks ('EC-256', 'rsa-pkcs1', 'sealing', …) → what is missing. */
  missing: Record<string, string[]>;
}

/** Features beyond key specs: PKCS#1 v1.5 signatures on request, and sealing secrets at rest. */
export type HsmFeature = KeySpec | 'rsa-pkcs1' | 'sealing';

const MECHANISM_NAMES: Record<number, string> = {
  [pkcs11js.CKM_EC_KEY_PAIR_GEN]: 'CKM_EC_KEY_PAIR_GEN',
  [pkcs11js.CKM_ECDSA]: 'CKM_ECDSA',
  [pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN]: 'CKM_RSA_PKCS_KEY_PAIR_GEN',
  [pkcs11js.CKM_RSA_PKCS_PSS]: 'CKM_RSA_PKCS_PSS',
  [pkcs11js.CKM_RSA_PKCS]: 'CKM_RSA_PKCS',
  [pkcs11js.CKM_AES_KEY_GEN]: 'CKM_AES_KEY_GEN',
  [pkcs11js.CKM_AES_GCM]: 'CKM_AES_GCM',
};

function required(feature: HsmFeature): number[] {
  if (feature === 'rsa-pkcs1') return [pkcs11js.CKM_RSA_PKCS];
  if (feature === 'sealing') return [pkcs11js.CKM_AES_KEY_GEN, pkcs11js.CKM_AES_GCM];
  return KEY_SPEC_INFO[feature].kind === 'EC'
    ? [pkcs11js.CKM_EC_KEY_PAIR_GEN, pkcs11js.CKM_ECDSA]
    : [pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN, pkcs11js.CKM_RSA_PKCS_PSS];
}

/** Bits for RSA, as C_GetMechanismInfo reports them (PKCS#11: bits for RSA key-pair generation). */
function keySizeRange(api: Pkcs11Api, slot: Handle, mechanism: number): { min: number; max: number } | undefined {
  try {
    const info = api.C_GetMechanismInfo(slot, mechanism);
    // 0..0 is what some modules report when they do not say.
    return info.maxKeySize > 0 ? { min: info.minKeySize, max: info.maxKeySize } : undefined;
  } catch {
    return undefined;
  }
}

export function probeCapabilities(api: Pkcs11Api, slot: Handle): HsmCapabilities {
  const listed = new Set(api.C_GetMechanismList(slot));
  const missing: Record<string, string[]> = {};
  const rsaRange = listed.has(pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN)
    ? keySizeRange(api, slot, pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN)
    : undefined;
  const features: HsmFeature[] = [...KEY_SPECS, 'rsa-pkcs1', 'sealing'];
  for (const feature of features) {
    const absent = required(feature)
      .filter((m) => !listed.has(m))
      .map((m) => MECHANISM_NAMES[m]);
    const bits = KEY_SPECS.includes(feature as KeySpec) ? KEY_SPEC_INFO[feature as KeySpec].modulusBits : undefined;
    if (absent.length === 0 && bits !== undefined && rsaRange && (bits < rsaRange.min || bits > rsaRange.max)) {
      absent.push(
        `CKM_RSA_PKCS_KEY_PAIR_GEN for ${bits}-bit keys (the token generates ${rsaRange.min}..${rsaRange.max})`,
      );
    }
    if (absent.length > 0) missing[feature] = absent;
  }
  return { keySpecs: KEY_SPECS.filter((spec) => !missing[spec]), missing };
}

/** One line for `signet status` and the start-up log. */
export function describeCapabilities(tokenLabel: string, capabilities: HsmCapabilities): string {
  const lacking = Object.entries(capabilities.missing).map(
    ([feature, mechanisms]) => `${feature} (missing ${mechanisms.join(', ')})`,
  );
  return (
    `token '${tokenLabel}': key specs ${capabilities.keySpecs.join(', ') || 'none'}` +
    (lacking.length ? `; unavailable: ${lacking.join('; ')}` : '')
  );
}

/** Where a token offers no EC (openCryptoki's soft token), Signet's own keys fall back to this. */
export const FALLBACK_KEY_SPEC: KeySpec = 'RSA-3072';

/**
 * The key spec for a key Signet creates by itself (development CAs, the audit checkpoint key):
 * `preferred` when the token of `role` offers it, else RSA-3072. Health without capabilities
 * (a key store that probes nothing) keeps `preferred`.
 */
export function offeredKeySpec(
  health: { tokens: Array<{ role: string; capabilities?: HsmCapabilities }> },
  preferred: KeySpec,
  role: 'signing' | 'ca',
): KeySpec {
  const token = health.tokens.find((t) => t.role === role || t.role === 'signing+ca');
  if (!token?.capabilities || token.capabilities.keySpecs.includes(preferred)) return preferred;
  return FALLBACK_KEY_SPEC;
}
