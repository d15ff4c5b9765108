import { execFileSync } from 'node:child_process';
import { constants, createHash, verify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  HASH_LENGTH,
  KEY_SPECS,
  KEY_SPEC_INFO,
  type HashAlgorithm,
  type KeySpec,
  nodeHashName,
} from '../../src/pki/key-spec';
import { ecdsaRawToDer } from '../../src/hsm/ecdsa-signature';
import type { HsmOptions } from '../../src/hsm/hsm-options';
import { type Pkcs11KeyStoreDeps, Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
import { testHsm } from '../support/opencryptoki';
import type { TestToken } from '../support/softhsm';

/** Recovery tuned for tests: fast backoff, quick retry while down, no idle-session probe (faults armed by a test must meet that test's operations). */
export const FAST_RECOVERY = {
  initialBackoffMs: 5,
  maxBackoffMs: 50,
  downRetryMs: 100,
  maxAttempts: 4,
  probeIntervalMs: 0,
} as const;

/** The PKCS#11 implementation of this run: SoftHSM2, or openCryptoki's soft token (SIGNET_TEST_HSM=opencryptoki). */
export const TEST_HSM = testHsm();
export const TEST_HSM_NAME = TEST_HSM === 'opencryptoki' ? 'openCryptoki' : 'SoftHSM2';

/** The key specs the run's module offers: openCryptoki's soft token lists no EC mechanism, so RSA only. */
export const TEST_KEY_SPECS: readonly KeySpec[] =
  TEST_HSM === 'opencryptoki' ? KEY_SPECS.filter((spec) => KEY_SPEC_INFO[spec].kind === 'RSA') : KEY_SPECS;
/** The spec of keys and CAs a test uses when the spec is not what it is about. */
export const TEST_KEY_SPEC: KeySpec = TEST_HSM === 'opencryptoki' ? 'RSA-3072' : 'EC-256';

/**
 * Every place a signature can be computed: worker threads (synchronous C_Sign), each on its own
 * instance of the module or sharing the process's, and libuv's pool (async C_Sign). Not on
 * openCryptoki: a private copy of libopencryptoki still loads the one shared token library (the
 * STDLL) that every copy shares, so an "own" instance is not one (docs/hsm.md).
 */
const ALL_SIGNING_MODES = [
  { mode: 'on 2 worker threads, each on its own instance of the module', signWorkers: 2, signThreadModule: 'own' },
  {
    mode: "on 2 worker threads sharing the process's instance of the module",
    signWorkers: 2,
    signThreadModule: 'shared',
  },
  { mode: "with pkcs11js's async C_Sign on libuv's pool", signWorkers: 0, signThreadModule: 'auto' },
] as const;
export const SIGNING_MODES =
  TEST_HSM === 'opencryptoki' ? ALL_SIGNING_MODES.filter((m) => m.signThreadModule !== 'own') : ALL_SIGNING_MODES;

export async function openStore(
  token: TestToken,
  options: Partial<HsmOptions> = {},
  deps: Pkcs11KeyStoreDeps = {},
): Promise<Pkcs11KeyStore> {
  const store = new Pkcs11KeyStore(
    {
      modulePath: token.modulePath,
      tokenLabel: token.tokenLabel,
      pin: token.pin,
      poolSize: 4,
      recovery: FAST_RECOVERY,
      ...options,
    },
    deps,
  );
  await store.open();
  return store;
}

export interface SignedSample {
  message: Buffer;
  digest: Buffer;
  hash: HashAlgorithm;
}

export function sample(spec: KeySpec, text = `payload for ${spec}`): SignedSample {
  const hash = KEY_SPEC_INFO[spec].hash;
  const message = Buffer.from(text);
  const digest = createHash(nodeHashName(hash)).update(message).digest();
  if (digest.length !== HASH_LENGTH[hash]) throw new Error('digest length mismatch');
  return { message, digest, hash };
}

/** Verifies with Node's crypto over the original message. */
export function verifyWithNode(
  spec: KeySpec,
  spki: Buffer,
  s: SignedSample,
  signature: Buffer,
  rsaPadding: 'pss' | 'pkcs1' = 'pss',
): boolean {
  const key = { key: spki, format: 'der' as const, type: 'spki' as const };
  if (KEY_SPEC_INFO[spec].kind === 'EC')
    return verify(nodeHashName(s.hash), s.message, { ...key, dsaEncoding: 'ieee-p1363' }, signature);
  if (rsaPadding === 'pkcs1')
    return verify(nodeHashName(s.hash), s.message, { ...key, padding: constants.RSA_PKCS1_PADDING }, signature);
  return verify(
    nodeHashName(s.hash),
    s.message,
    { ...key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: HASH_LENGTH[s.hash] },
    signature,
  );
}

function spkiPem(spki: Buffer): string {
  const lines = spki.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN PUBLIC KEY-----\n${lines.join('\n')}\n-----END PUBLIC KEY-----\n`;
}

/**
 * Verifies with the OpenSSL command line: `openssl dgst` hashes the original message itself, so a
 * pass proves the HSM signed the right digest with the right padding. Returns OpenSSL's output.
 */
export function verifyWithOpenSsl(
  spec: KeySpec,
  spki: Buffer,
  s: SignedSample,
  signature: Buffer,
  rsaPadding: 'pss' | 'pkcs1' = 'pss',
): string {
  const dir = mkdtempSync(join(tmpdir(), 'signet-openssl-'));
  try {
    const files = { pub: join(dir, 'pub.pem'), msg: join(dir, 'msg.bin'), sig: join(dir, 'sig.bin') };
    writeFileSync(files.pub, spkiPem(spki));
    writeFileSync(files.msg, s.message);
    const ec = KEY_SPEC_INFO[spec].kind === 'EC';
    // OpenSSL wants ECDSA signatures DER-encoded.
    writeFileSync(files.sig, ec ? ecdsaRawToDer(signature) : signature);
    const args = ['dgst', `-${nodeHashName(s.hash)}`];
    if (!ec && rsaPadding === 'pss') {
      args.push(
        '-sigopt',
        'rsa_padding_mode:pss',
        '-sigopt',
        `rsa_pss_saltlen:${HASH_LENGTH[s.hash]}`,
        '-sigopt',
        `rsa_mgf1_md:${nodeHashName(s.hash)}`,
      );
    }
    args.push('-verify', files.pub, '-signature', files.sig, files.msg);
    return execFileSync('openssl', args, { encoding: 'utf8' }).trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Waits, bounded and generously, for a state to be reached (never a wall-clock assertion). */
export async function waitFor(condition: () => boolean, what = 'the condition', timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
